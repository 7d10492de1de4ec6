//! SIGTERM to a fine-tuning run: it stops after the step under way with
//! that step's weights kept and the interrupted exit status, writing none
//! of the final outputs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n好\n坏\n很\n不\n";
const MODEL: &str = r#"{
  "vocab_size": 9, "hidden_size": 16, "num_hidden_layers": 1,
  "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
  "max_position_embeddings": 64, "type_vocab_size": 2,
  "initializer_range": 0.02, "max_relative_position": 16
}"#;

#[test]
fn sigterm_stops_fine_tuning_after_the_step_with_its_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    let mut tsv = String::from("label\ttext_a\n");
    for i in 0..200 {
        let (label, text) = if i % 2 == 0 {
            ("pos", "很好")
        } else {
            ("neg", "不好")
        };
        tsv.push_str(&format!("{label}\t{text}\n"));
    }
    std::fs::write(d.join("data/train.tsv"), &tsv).unwrap();
    std::fs::write(d.join("data/dev.tsv"), &tsv).unwrap();
    std::fs::write(d.join("vocab.txt"), VOCAB).unwrap();
    std::fs::write(d.join("model.json"), MODEL).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args(["finetune", "classify", "--do_train", "--do_eval"])
        .args(["--data_dir", "data", "--output_dir", "out"])
        .args([
            "--vocab_file",
            "vocab.txt",
            "--bert_config_file",
            "model.json",
        ])
        .args(["--max_seq_length", "8", "--train_batch_size", "2"])
        .args([
            "--num_train_epochs",
            "1000",
            "--save_checkpoints_steps",
            "1",
        ])
        .args(["--threads", "1"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let checkpoints = d.join("out/checkpoints");
    let started = Instant::now();
    while std::fs::read_dir(&checkpoints).map_or(0, |e| e.count()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoints"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("interrupted: fine-tuning stopped after step "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let step: u64 = line
        .split("after step ")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        checkpoints
            .join(format!("step-{step:08}.safetensors"))
            .exists(),
        "{line}"
    );
    assert!(
        !d.join("out/model.safetensors").exists(),
        "final outputs written"
    );
}
