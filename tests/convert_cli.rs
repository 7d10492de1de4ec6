//! `nezha convert` between a TensorFlow checkpoint written by TensorFlow
//! itself (tests/fixtures/tf_checkpoint, scripts/fixtures/tf_checkpoint.py),
//! a Hugging Face directory and our safetensors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nezha_train::tensorfile;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn convert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nezha"))
        .arg("convert")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let file = tensorfile::load(path).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = file
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn tf_to_hf_to_nezha_keeps_every_weight() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tf = "tests/fixtures/tf_checkpoint/pretrain/model.ckpt";
    let out = convert(&["tf", tf, "hf", d.join("hf").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("lamb_m") && stdout.contains("global_step: 123"),
        "{stdout}"
    );
    assert!(d.join("hf/config.json").exists() && d.join("hf/model.safetensors").exists());

    let via_hf = d.join("via_hf.safetensors");
    let direct = d.join("direct.safetensors");
    for (from, input, output) in [
        ("hf", d.join("hf"), &via_hf),
        ("tf", root().join(tf), &direct),
    ] {
        let out = convert(&[
            from,
            input.to_str().unwrap(),
            "nezha",
            output.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (a, b) = (tensors(&via_hf), tensors(&direct));
    assert!(a.len() > 20);
    assert_eq!(a, b, "TF→HF→nezha differs from TF→nezha");
}

#[test]
fn a_wrong_shape_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.safetensors");
    let out = convert(&[
        "tf",
        "tests/fixtures/tf_checkpoint/wrong_shape/model.ckpt",
        "nezha",
        target.to_str().unwrap(),
        "--config",
        "tests/fixtures/tf_checkpoint/pretrain/bert_config.json",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bert/encoder/layer_1/intermediate/dense/kernel"),
        "{stderr}"
    );
    assert!(!target.exists());
}
