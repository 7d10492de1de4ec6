//! `[eval]`: the trainer evaluates on held-out documents every `every`
//! steps and at the end, into metrics.jsonl, TensorBoard, the plot and
//! eval_results.txt; bad settings are refused before anything runs.

mod common;

use std::path::{Path, PathBuf};

use common::{chapters, nezha, root};
use nezha_train::trainer::metrics;

/// The bundled pipeline on a few chapters, 6 steps of 8 sequences of 64,
/// with `eval` appended.
fn pipeline(dir: &Path, eval: &str) -> PathBuf {
    std::fs::write(dir.join("corpus.txt"), chapters(6).join("\n\n")).unwrap();
    let mut toml = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
    // The bundled [eval] (the last section) gives way to the test's.
    toml.truncate(toml.find("\n[eval]").expect("pipeline.toml has [eval]") + 1);
    let vocab = format!("vocab = \"{}\"", root().join("data/vocab.txt").display());
    for (from, to) in [
        ("input = \"data/sanguo.txt\"", "input = \"corpus.txt\""),
        ("vocab = \"data/vocab.txt\"", vocab.as_str()),
        ("max_seq_length = 128", "max_seq_length = 64"),
        ("batch_size = 32", "batch_size = 8"),
        ("steps = 600", "steps = 6"),
        ("warmup_steps = 60", "warmup_steps = 1"),
        ("save_every = 200", "save_every = 3"),
    ] {
        assert!(toml.contains(from), "pipeline.toml no longer has {from:?}");
        toml = toml.replace(from, to);
    }
    toml.push_str(eval);
    let path = dir.join("p.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn evaluation_shows_in_metrics_tensorboard_the_plot_and_eval_results() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = pipeline(d, "\n[eval]\nholdout = 0.2\nevery = 2\nbatches = 3\n");
    let out = nezha(&["run", p.to_str().unwrap()], d);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("held out at step 6: masked-LM accuracy"),
        "{stdout}"
    );
    let run = d.join("out/tiny");
    let (steps, evals) = metrics::read_all(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(steps.len(), 6);
    let at: Vec<u64> = evals.iter().map(|e| e.step).collect();
    assert_eq!(at, vec![2, 4, 6]);
    for e in &evals {
        assert_eq!(
            (e.eval.global_step, e.eval.batches, e.eval.sequences),
            (e.step, 3, 24)
        );
        assert!(e.eval.masked_lm_loss > 0.0 && e.eval.loss > e.eval.masked_lm_loss);
        assert!((0.0..=1.0).contains(&e.eval.masked_lm_accuracy));
    }
    // The same three batches each time: what changes is the model.
    assert_ne!(evals[0].eval.loss, evals[2].eval.loss);
    let results = std::fs::read_to_string(run.join("eval_results.txt")).unwrap();
    let keys: Vec<&str> = results
        .lines()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "global_step",
            "loss",
            "masked_lm_accuracy",
            "masked_lm_loss",
            "next_sentence_accuracy",
            "next_sentence_loss"
        ]
    );
    let loss: f64 = results
        .lines()
        .find_map(|l| l.strip_prefix("loss = "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((loss - evals[2].eval.loss).abs() <= 1e-6 * loss.abs());
    let events = std::fs::read_dir(run.join("tensorboard"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .next()
        .unwrap();
    let events = String::from_utf8_lossy(&events);
    assert!(events.contains("eval/masked_lm_accuracy") && events.contains("eval/loss"));
    assert!(run.join("checkpoints/training.png").exists());

    // --resume keeps one line per evaluated step.
    let again = nezha(&["run", p.to_str().unwrap(), "--resume"], d);
    assert!(again.status.success());
    let (_, evals) = metrics::read_all(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(evals.iter().filter(|e| e.step == 6).count(), 1);
}

#[test]
fn bad_eval_settings_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (eval, needles) in [
        (
            "holdout = 0.0",
            &["[eval] holdout", "strictly between 0 and 1"][..],
        ),
        (
            "holdout = 1.0",
            &["[eval] holdout", "strictly between 0 and 1"],
        ),
        ("holdout = 0.1\ntfrecords = \"x\"", &["not both"]),
        ("every = 5", &["needs holdout", "or tfrecords"]),
        ("holdout = 0.1\nbatches = 0", &["[eval] batches"]),
        ("holdout = 0.1\nevry = 5", &["evry"]),
    ] {
        let p = pipeline(d, &format!("\n[eval]\n{eval}\n"));
        let out = nezha(&["run", p.to_str().unwrap()], d);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{eval}: accepted");
        assert!(stderr.contains("p.toml:"), "{eval}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{eval}: {stderr} lacks {n:?}");
        }
        assert!(!d.join("out").exists(), "{eval}: something was written");
    }
}

#[test]
fn print_plan_shows_the_eval_section() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(tmp.path(), "\n[eval]\nholdout = 0.05\n");
    let out = nezha(&["run", "--print-plan", p.to_str().unwrap()], tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let eval = &stdout[stdout.find("[eval]\n").expect("an [eval] section")..];
    for line in ["holdout = 0.05\n", "every = 3\n", "batches = 10\n"] {
        assert!(eval.contains(line), "{line:?} missing from {eval}");
    }
}
