//! `nezha finetune classify`: `run_classifier.py`'s run, its switches and
//! its output files (see [`crate::cli`]). Every input is read, checked and
//! encoded before anything is written.

use anyhow::{bail, Result};

use super::{predict, Encoder, LabelMap, Layout, Part, TsvColumns};
use crate::checkpoint::{ours, Architecture};
use crate::cli::{self, spanned, ClassifyArgs};
use crate::config::{ClassifySettings, Task};
use crate::epochs::MetricsLog;
use crate::run_record::RunRecord;

pub fn run(a: &ClassifyArgs) -> Result<()> {
    let (common, loaded) = a.common.resolve(Task::Classify)?;
    let c = &common;
    let f = &loaded.file;
    let s = c.switches;
    let d = ClassifySettings::default();
    // The layout and columns: the training run's when predicting with its
    // model, and a flag or task file may only repeat them.
    let given_layout = a
        .task_name
        .or(loaded.task_name)
        .map(|l| l.name().to_string());
    let layout: Layout =
        cli::layout_setting(c, "task_name", |r| r.task_name.clone(), given_layout)?
            .map_or(Ok(d.layout), |n| n.parse())?;
    let text_a = cli::layout_setting(
        c,
        "text_a",
        |r| r.text_a.clone(),
        a.text_a.clone().or(spanned(&f.text_a)),
    )?;
    let text_b = cli::layout_setting(
        c,
        "text_b",
        |r| Some(r.text_b.clone()),
        a.text_b.clone().or(spanned(&f.text_b)).map(Some),
    )?;
    let label = cli::layout_setting(
        c,
        "label_column",
        |r| r.label_column.clone(),
        a.label_column.clone().or(spanned(&f.label_column)),
    )?;
    let columns = TsvColumns {
        text_a: text_a.unwrap_or(d.columns.text_a),
        text_b: text_b.unwrap_or(d.columns.text_b),
        label: label.unwrap_or(d.columns.label),
    };
    let vocab = cli::vocab(c)?;
    let data_dir = c.data_dir()?;
    let read = |part| layout.read(&layout.path(data_dir, part), &columns);
    let train = s.train.then(|| read(Part::Train)).transpose()?;
    let dev = s.eval.then(|| read(Part::Dev)).transpose()?;
    if let Some(dev) = &dev {
        super::require_labels(dev, "--do_eval")?;
    }
    let test = match cli::predict_path(c, layout.path(data_dir, Part::Test))? {
        Some(path) => Some(layout.read(&path, &columns)?),
        None => None,
    };
    if let Some(e) = test
        .iter()
        .flatten()
        .find(|e| e.text_b.is_some() != layout.is_pair(&columns))
    {
        bail!(
            "{}: {} the training layout ({}) {}",
            e.origin,
            if e.text_b.is_some() {
                "a sentence pair, but"
            } else {
                "one sentence, but"
            },
            layout.name(),
            if layout.is_pair(&columns) {
                "has pairs"
            } else {
                "has single sentences"
            }
        );
    }

    let init = cli::read_init(c)?;
    let labels = match &train {
        Some(train) => match layout.fixed_labels() {
            Some(names) => LabelMap::fixed(names, train)?,
            None => LabelMap::from_training(train)?,
        },
        None => {
            let w = cli::fine_tuned(c, init.as_ref(), Task::Classify)?;
            LabelMap {
                names: cli::saved_labels(c, w)?,
            }
        }
    };
    let enc = Encoder::new(vocab, c.do_lower_case, c.max_seq_length)?;
    let tr = train
        .as_ref()
        .map(|t| enc.encode_all(t, &labels))
        .transpose()?;
    let dv = dev
        .as_ref()
        .map(|d| enc.encode_all(d, &labels))
        .transpose()?;
    let labelled_test = test
        .as_ref()
        .filter(|t| t.iter().all(|e| e.label.is_some()))
        .map(|t| enc.encode_all(t, &labels))
        .transpose()?;
    let test_inputs: Option<Vec<_>> = test
        .as_ref()
        .map(|t| t.iter().map(|e| enc.inputs(e)).collect());
    let cfg = cli::with_checkpoints(c, Some(labels.names.clone()));
    if let Some(tr) = &tr {
        crate::epochs::plan(tr.len(), "training examples", &cfg)?;
    }
    let mut model = cli::build_model(
        c,
        Architecture::SequenceClassification {
            num_labels: labels.len() as i64,
        },
        init.as_ref(),
    )?;

    let out = cli::output_dir(c)?;
    let mut log = MetricsLog::new(out);
    let mut best_epoch = None;
    if let Some(tr) = &tr {
        println!(
            "train {} examples{}, labels {:?}",
            tr.len(),
            dv.as_ref()
                .map_or(String::new(), |d| format!(", dev {}", d.len())),
            labels.names
        );
        let outcome = super::fine_tune(&mut model, tr, dv.as_deref(), &cfg, |r| {
            match &r.dev {
                Some(dev) => println!(
                    "epoch {} step {} train loss {:.4} dev accuracy {:.4} macro-F1 {:.4} ({:.0}s)",
                    r.epoch, r.global_step, r.train_loss, dev.accuracy, dev.macro_f1, r.seconds
                ),
                None => println!(
                    "epoch {} step {} train loss {:.4} ({:.0}s)",
                    r.epoch, r.global_step, r.train_loss, r.seconds
                ),
            }
            log.line(r)
        })?;
        println!("kept epoch {}", outcome.best_epoch);
        best_epoch = Some(outcome.best_epoch);
        ours::write(
            &out.join("model.safetensors"),
            &model.weights(Some(labels.names.clone()))?,
        )?;
        cli::write_labels(out, &labels.names)?;
        record(c, layout, &columns).write(out, &c.vocab_file)?;
    } else if let Some(dv) = &dv {
        let (_, scores) = super::evaluate(&model, dv, c.train.eval_batch_size)?;
        println!(
            "dev accuracy {:.4} macro-F1 {:.4} ({} examples)",
            scores.accuracy, scores.macro_f1, scores.examples
        );
        log.line(&serde_json::json!({"dev": scores}))?;
    }
    cli::export_hf(c, &model, Some(labels.names.clone()))?;
    if let (Some(test), Some(inputs)) = (&test, &test_inputs) {
        let probabilities = predict::probabilities(&model, inputs, c.train.predict_batch_size)?;
        if let Some(te) = &labelled_test {
            let (_, scores) = super::evaluate(&model, te, c.train.predict_batch_size)?;
            println!(
                "test accuracy {:.4} macro-F1 {:.4} ({} examples)",
                scores.accuracy, scores.macro_f1, scores.examples
            );
            log.line(&serde_json::json!({"best_epoch": best_epoch, "test": scores}))?;
        }
        predict::write(out, test, &probabilities, &labels)?;
        println!(
            "predicted {} examples: {}",
            test.len(),
            out.join("test_results.tsv").display()
        );
    }
    Ok(())
}

fn record(c: &cli::Common, layout: Layout, columns: &TsvColumns) -> RunRecord {
    RunRecord {
        task: Task::Classify.name().into(),
        max_seq_length: c.max_seq_length,
        do_lower_case: c.do_lower_case,
        task_name: Some(layout.name().into()),
        text_a: Some(columns.text_a.clone()),
        text_b: columns.text_b.clone(),
        label_column: Some(columns.label.clone()),
        doc_stride: None,
        max_query_length: None,
    }
}
