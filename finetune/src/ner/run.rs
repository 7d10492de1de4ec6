//! `nezha finetune ner`: `run_classifier_ner.py`'s run, its switches and
//! its output files (see [`crate::cli`]). Every input is read, checked and
//! encoded before anything is written.

use std::path::Path;

use anyhow::{bail, Result};

use super::{read_tagged, Sentence, TagEncoder, TagMap};
use crate::checkpoint::{ours, Architecture};
use crate::cli::{self, NerArgs};
use crate::config::Task;
use crate::epochs::MetricsLog;
use crate::run_record::RunRecord;

/// A tagged (or, to predict on, untagged) file, its malformed spans
/// reported.
fn read(path: &Path) -> Result<Vec<Sentence>> {
    let f = read_tagged(path)?;
    cli::report_skipped(path, "sentence(s) with a malformed span", &f.skipped);
    Ok(f.sentences)
}

/// `what`'s sentences must have their tags.
fn require_tags(sentences: &[Sentence], what: &str) -> Result<()> {
    if let Some(s) = sentences.iter().find(|s| !s.is_tagged()) {
        bail!("{}: no tags, and {what} needs a tagged file", s.origin);
    }
    Ok(())
}

pub fn run(a: &NerArgs) -> Result<()> {
    let (common, _) = a.common.resolve(Task::Ner)?;
    let c = &common;
    let s = c.switches;
    let vocab = cli::vocab(c)?;
    let data_dir = c.data_dir()?;
    let train = s
        .train
        .then(|| read(&data_dir.join("train.txt")))
        .transpose()?;
    if let Some(t) = &train {
        require_tags(t, "--do_train")?;
    }
    let dev = s
        .eval
        .then(|| read(&data_dir.join("dev.txt")))
        .transpose()?;
    if let Some(d) = &dev {
        require_tags(d, "--do_eval")?;
    }
    let test = match cli::predict_path(c, data_dir.join("test.txt"))? {
        Some(path) => Some(read(&path)?),
        None => None,
    };

    let init = cli::read_init(c)?;
    let tags = match &train {
        Some(train) => TagMap::from_training(train)?,
        None => {
            let w = cli::fine_tuned(c, init.as_ref(), Task::Ner)?;
            TagMap {
                names: cli::saved_labels(c, w)?,
            }
        }
    };
    let enc = TagEncoder::new(vocab, c.do_lower_case, c.max_seq_length)?;
    let tr = train
        .as_ref()
        .map(|t| enc.encode_all(t, &tags))
        .transpose()?;
    let dv = dev.as_ref().map(|d| enc.encode_all(d, &tags)).transpose()?;
    let te = test
        .as_ref()
        .map(|t| enc.encode_all(t, &tags))
        .transpose()?;
    let cfg = cli::with_checkpoints(c, Some(tags.names.clone()));
    if let Some(tr) = &tr {
        crate::epochs::plan(tr.len(), "training sentences", &cfg)?;
    }
    let mut model = cli::build_model(
        c,
        Architecture::TokenClassification {
            num_labels: tags.len() as i64,
        },
        init.as_ref(),
    )?;

    let out = cli::output_dir(c)?;
    let mut log = MetricsLog::new(out);
    let mut best_epoch = None;
    let dev_pair = dev.as_deref().zip(dv.as_deref());
    if let Some(tr) = &tr {
        println!(
            "train {} sentences{}, tags {:?}",
            tr.len(),
            dv.as_ref()
                .map_or(String::new(), |d| format!(", dev {}", d.len())),
            tags.names
        );
        let outcome = super::fine_tune(&mut model, tr, dev_pair, &tags, &cfg, |r| {
            match &r.dev {
                Some(dev) => println!(
                    "epoch {} step {} train loss {:.4} dev entity P/R/F1 {:.4}/{:.4}/{:.4} token F1 {:.4} ({:.0}s)",
                    r.epoch,
                    r.global_step,
                    r.train_loss,
                    dev.entity.precision,
                    dev.entity.recall,
                    dev.entity.f1,
                    dev.token.f1,
                    r.seconds
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
            &model.weights(Some(tags.names.clone()))?,
        )?;
        cli::write_labels(out, &tags.names)?;
        record(c).write(out, &c.vocab_file)?;
    } else if let Some((sentences, dv)) = dev_pair {
        let (_, scores) = super::evaluate(&model, sentences, dv, &tags, c.train.eval_batch_size)?;
        println!(
            "dev entity P/R/F1 {:.4}/{:.4}/{:.4} ({} sentences)",
            scores.entity.precision, scores.entity.recall, scores.entity.f1, scores.sentences
        );
        log.line(&serde_json::json!({"dev": scores}))?;
    }
    cli::export_hf(c, &model, Some(tags.names.clone()))?;
    if let (Some(test), Some(te)) = (&test, &te) {
        let bs = c.train.predict_batch_size;
        let pred = if test.iter().all(Sentence::is_tagged) {
            let (pred, scores) = super::evaluate(&model, test, te, &tags, bs)?;
            println!(
                "test entity P/R/F1 {:.4}/{:.4}/{:.4} token P/R/F1 {:.4}/{:.4}/{:.4} ({} sentences)",
                scores.entity.precision,
                scores.entity.recall,
                scores.entity.f1,
                scores.token.precision,
                scores.token.recall,
                scores.token.f1,
                scores.sentences
            );
            log.line(&serde_json::json!({"best_epoch": best_epoch, "test": scores}))?;
            pred
        } else {
            super::predict(&model, test, te, &tags, bs)?
        };
        let path = out.join("test_predictions.txt");
        super::write_predictions(&path, test, &pred)?;
        println!("predicted {} sentences: {}", test.len(), path.display());
    }
    Ok(())
}

fn record(c: &cli::Common) -> RunRecord {
    RunRecord {
        task: Task::Ner.name().into(),
        max_seq_length: c.max_seq_length,
        do_lower_case: c.do_lower_case,
        task_name: None,
        text_a: None,
        text_b: None,
        label_column: None,
        doc_stride: None,
        max_query_length: None,
    }
}
