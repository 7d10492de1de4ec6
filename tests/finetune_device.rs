//! `nezha finetune --device cuda` on a machine or build without CUDA: the
//! process exits non-zero with the trainer's message and writes nothing,
//! for each task, before reading any data.

use std::process::Command;

#[test]
fn cuda_without_a_cuda_device_is_refused_and_nothing_is_written() {
    if tch::Cuda::is_available() {
        eprintln!("skipped: this machine has a CUDA device");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for task in ["classify", "ner", "mrc"] {
        let out = dir.path().join(task);
        let o = Command::new(env!("CARGO_BIN_EXE_nezha"))
            .args(["finetune", task, "--device", "cuda", "--do_train"])
            .args(["--data_dir", "no-such-dir", "--vocab_file", "no-such-vocab"])
            .arg("--output_dir")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{task}: {stderr}");
        assert!(
            stderr.contains("cuda requested but libtorch has no CUDA device"),
            "{task}: {stderr}"
        );
        assert!(!out.exists(), "{task}: {out:?} was created");
    }
}
