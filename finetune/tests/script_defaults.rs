//! The defaults of scripts/run_downstream_*.sh are the reference scripts'
//! (huawei-noah/Pretrained-Language-Model `NEZHA-TensorFlow/`):
//! `run_classifier.py`'s flags (seq 128, batch 32, lr 3e-5, 3 epochs) and
//! `scripts/run_clf.sh`'s 5 epochs for LCQMC; `scripts/run_seq_labelling.sh`
//! (seq 256, batch 16, 10 epochs); `scripts/run_reading.sh` (seq 512,
//! stride 128, batch 4, lr 3e-5, 1 epoch, cased). Each script is run with
//! `NEZHA=echo`, so what it would pass to `nezha finetune` is read back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `--flag value` pairs the script passes, with `env` set.
fn flags(script: &str, env: &[(&str, &str)]) -> HashMap<String, String> {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts").join(script))
        .env("NEZHA", "echo")
        .env("DATA_DIR", "d")
        .env("VOCAB_FILE", "v")
        .env("OUTPUT_DIR", "o");
    for var in [
        "TASK_NAME",
        "MAX_SEQ_LENGTH",
        "TRAIN_BATCH_SIZE",
        "LEARNING_RATE",
        "NUM_TRAIN_EPOCHS",
        "DOC_STRIDE",
        "DO_LOWER_CASE",
        "INIT_CHECKPOINT",
        "BERT_CONFIG_FILE",
        "TEXT_B",
        "TRAIN_FILE",
        "PREDICT_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    words
        .windows(2)
        .filter(|w| w[0].starts_with("--"))
        .map(|w| (w[0].trim_start_matches("--").to_string(), w[1].clone()))
        .collect()
}

fn check(got: &HashMap<String, String>, want: &[(&str, &str)]) {
    for (k, v) in want {
        assert_eq!(
            got.get(*k).map(String::as_str),
            Some(*v),
            "--{k} in {got:?}"
        );
    }
}

#[test]
fn classifier_defaults_are_run_classifier_and_run_clf() {
    let want = [
        ("max_seq_length", "128"),
        ("train_batch_size", "32"),
        ("learning_rate", "3e-5"),
        ("num_train_epochs", "3"),
    ];
    check(&flags("run_downstream_classifier.sh", &[]), &want);
    let lcqmc = flags("run_downstream_classifier.sh", &[("TASK_NAME", "lcqmc")]);
    check(&lcqmc, &[("num_train_epochs", "5"), ("task_name", "lcqmc")]);
    // A variable still wins.
    let set = flags(
        "run_downstream_classifier.sh",
        &[("TASK_NAME", "lcqmc"), ("NUM_TRAIN_EPOCHS", "2.5")],
    );
    check(&set, &[("num_train_epochs", "2.5")]);
}

#[test]
fn ner_defaults_are_run_seq_labelling() {
    check(
        &flags("run_downstream_ner.sh", &[]),
        &[
            ("max_seq_length", "256"),
            ("train_batch_size", "16"),
            ("learning_rate", "3e-5"),
            ("num_train_epochs", "10"),
        ],
    );
}

#[test]
fn reading_defaults_are_run_reading() {
    let got = flags("run_downstream_reading.sh", &[]);
    check(
        &got,
        &[
            ("max_seq_length", "512"),
            ("doc_stride", "128"),
            ("train_batch_size", "4"),
            ("learning_rate", "3e-5"),
            ("num_train_epochs", "1.0"),
            ("do_lower_case", "false"),
        ],
    );
    assert!(!got.contains_key("train_file"));
    let files = flags(
        "run_downstream_reading.sh",
        &[("TRAIN_FILE", "t.json"), ("PREDICT_FILE", "p.json")],
    );
    check(
        &files,
        &[("train_file", "t.json"), ("predict_file", "p.json")],
    );
}
