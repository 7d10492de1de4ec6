//! A fine-tuning output that cannot be written whole (here the file-size
//! limit, as a full disk would) stops the run naming the file and the OS
//! error, and leaves no partial file under its final name.

mod common;

use std::process::Command;

use common::{root, MODEL_NO_DROPOUT};

#[test]
fn a_failed_model_write_leaves_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut tsv = String::from("label\ttext_a\n");
    for i in 0..16 {
        let (label, text) = if i % 2 == 0 {
            ("pos", "很好")
        } else {
            ("neg", "不好")
        };
        tsv.push_str(&format!("{label}\t{text}{i}\n"));
    }
    std::fs::write(data.join("train.tsv"), &tsv).unwrap();
    std::fs::write(data.join("dev.tsv"), &tsv).unwrap();
    std::fs::write(d.join("model.json"), MODEL_NO_DROPOUT).unwrap();
    // The model file (about 3 MB) does not fit; the logs do.
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 512 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_nezha"))
        .args(["finetune", "classify", "--do_train", "--do_eval"])
        .args(["--data_dir", "data", "--output_dir", "out"])
        .arg("--vocab_file")
        .arg(root().join("data/vocab.txt"))
        .args(["--bert_config_file", "model.json", "--max_seq_length", "16"])
        .args([
            "--train_batch_size",
            "8",
            "--num_train_epochs",
            "1",
            "--threads",
            "1",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("File too large"),
        "{stderr}"
    );
    let left: Vec<String> = std::fs::read_dir(d.join("out"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|f| f == "model.safetensors" || f.contains(".tmp")),
        "left behind: {left:?}"
    );
}
