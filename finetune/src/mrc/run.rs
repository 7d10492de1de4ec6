//! `nezha finetune mrc`: `run_squad.py`'s run, with its `--train_file` and
//! `--predict_file`, its switches and its output files (see
//! [`crate::cli`]). Every input is read and checked before anything is
//! written.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};

use super::{predictions, read_squad, AnswerSearch, MrcExample, Windower};
use crate::checkpoint::{ours, Architecture};
use crate::cli::{self, setting, spanned, MrcArgs};
use crate::config::{MrcSettings, Task};
use crate::epochs::MetricsLog;
use crate::run_record::RunRecord;

/// A SQuAD/CMRC file, the questions it leaves out reported.
fn read(path: &Path) -> Result<Vec<MrcExample>> {
    let f = read_squad(path)?;
    cli::report_skipped(
        path,
        "question(s) whose answer is not in the context",
        &f.skipped,
    );
    ensure!(
        !f.examples.is_empty(),
        "{}: no usable questions",
        path.display()
    );
    Ok(f.examples)
}

/// `what`'s questions must have answers.
fn require_answers(examples: &[MrcExample], what: &str) -> Result<()> {
    if let Some(e) = examples.iter().find(|e| e.answers.is_empty()) {
        bail!("{}: no answers, and {what} needs them", e.origin);
    }
    Ok(())
}

pub fn run(a: &MrcArgs) -> Result<()> {
    let (common, loaded) = a.common.resolve(Task::Mrc)?;
    let c = &common;
    let f = &loaded.file;
    let s = c.switches;
    let d = MrcSettings::default();
    // The windows default to the training run's when predicting with its
    // model.
    let saved = c.trained.as_ref().map(|t| &t.record);
    let doc_stride = setting(
        a.doc_stride.or(spanned(&f.doc_stride)),
        saved.and_then(|r| r.doc_stride),
        d.doc_stride,
    );
    let max_query_length = setting(
        a.max_query_length.or(spanned(&f.max_query_length)),
        saved.and_then(|r| r.max_query_length),
        d.max_query_length,
    );
    let search = AnswerSearch {
        n_best_size: setting(a.n_best_size, spanned(&f.n_best_size), d.search.n_best_size),
        max_answer_length: setting(
            a.max_answer_length,
            spanned(&f.max_answer_length),
            d.search.max_answer_length,
        ),
    };
    let vocab = cli::vocab(c)?;
    let file = |flag: &Option<PathBuf>, key: &Option<toml::Spanned<String>>, name: &str| match flag
        .clone()
        .or_else(|| loaded.path(&spanned(key)))
    {
        Some(p) => Ok(p),
        None => c.data_dir().map(|d| d.join(name)),
    };
    let train = if s.train {
        let examples = read(&file(&a.train_file, &f.train_file, "train.json")?)?;
        require_answers(&examples, "--do_train")?;
        Some(examples)
    } else {
        None
    };
    let dev = if s.eval {
        let examples = read(&c.data_dir()?.join("dev.json"))?;
        require_answers(&examples, "--do_eval")?;
        Some(examples)
    } else {
        None
    };
    let predict_file = match (
        s.predict,
        a.predict_file
            .clone()
            .or_else(|| loaded.path(&spanned(&f.predict_file))),
    ) {
        (false, _) => None,
        (true, Some(p)) => Some(p),
        (true, None) => match c.data_dir() {
            Ok(d) => Some(d.join("test.json")),
            // Without --do_* flags, no test file is no prediction.
            Err(_) if s.predict_if_present => None,
            Err(e) => return Err(e),
        },
    };
    let test_path: Option<PathBuf> = match predict_file {
        Some(p) => cli::predict_path(c, p)?,
        None => None,
    };
    let test = test_path.as_deref().map(read).transpose()?;
    let w = Windower::new(
        vocab,
        c.do_lower_case,
        c.max_seq_length,
        doc_stride,
        max_query_length,
    )?;
    let tw = train.as_ref().map(|t| w.windows(t));
    let dw = dev.as_ref().map(|d| w.windows(d));
    let cfg = cli::with_checkpoints(c, None);
    if let Some(tw) = &tw {
        crate::epochs::plan(tw.len(), "training windows", &cfg)?;
    }
    let init = cli::read_init(c)?;
    if train.is_none() {
        cli::fine_tuned(c, init.as_ref(), Task::Mrc)?;
    }
    let mut model = cli::build_model(c, Architecture::QuestionAnswering, init.as_ref())?;

    let out = cli::output_dir(c)?;
    let mut log = MetricsLog::new(out);
    let mut best_epoch = None;
    let dev_pair = dev.as_deref().zip(dw.as_deref());
    if let (Some(train), Some(tw)) = (&train, &tw) {
        println!(
            "train {} questions in {} windows{}",
            train.len(),
            tw.len(),
            dev_pair.map_or(String::new(), |(d, w)| format!(
                ", dev {} in {}",
                d.len(),
                w.len()
            ))
        );
        let outcome = super::fine_tune(&mut model, tw, dev_pair, search, &cfg, |r| {
            match &r.dev {
                Some(dev) => println!(
                    "epoch {} step {} train loss {:.4} dev EM {:.2} F1 {:.2} ({:.0}s)",
                    r.epoch, r.global_step, r.train_loss, dev.em, dev.f1, r.seconds
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
        ours::write(&out.join("model.safetensors"), &model.weights(None)?)?;
        RunRecord {
            task: Task::Mrc.name().into(),
            max_seq_length: c.max_seq_length,
            do_lower_case: c.do_lower_case,
            task_name: None,
            text_a: None,
            text_b: None,
            label_column: None,
            doc_stride: Some(doc_stride),
            max_query_length: Some(max_query_length),
        }
        .write(out, &c.vocab_file)?;
    } else if let Some((examples, windows)) = dev_pair {
        let (_, scores) =
            super::evaluate(&model, examples, windows, search, c.train.eval_batch_size)?;
        println!(
            "dev EM {:.2} F1 {:.2} ({} questions)",
            scores.em, scores.f1, scores.examples
        );
        log.line(&serde_json::json!({"dev": scores}))?;
    }
    cli::export_hf(c, &model, None)?;
    if let Some(test) = &test {
        let tw = w.windows(test);
        let nbest = super::predict(&model, test, &tw, search, c.train.predict_batch_size)?;
        if test.iter().all(|e| !e.answers.is_empty()) {
            let gold: Vec<Vec<String>> = test.iter().map(|e| e.answers.clone()).collect();
            let pred: Vec<Option<String>> = nbest.iter().map(|n| Some(n[0].text.clone())).collect();
            let (em, f1) = super::em_f1(&gold, &pred)?;
            let scores = super::MrcScores {
                em,
                f1,
                examples: test.len(),
            };
            println!("test EM {em:.2} F1 {f1:.2} ({} questions)", test.len());
            log.line(&serde_json::json!({"best_epoch": best_epoch, "test": scores}))?;
        }
        predictions::write(out, test, &nbest)?;
        println!(
            "predicted {} questions: {}",
            test.len(),
            out.join("predictions.json").display()
        );
    }
    Ok(())
}
