//! Conversions through our own format: Hugging Face → ours → Hugging Face
//! and TF → ours keep every tensor; our files load in `nezha-train`'s
//! loader; configs that disagree are refused.

use std::path::PathBuf;

use nezha_finetune::checkpoint::{self, ours, Architecture, Format};
use nezha_train::model::{weights, NezhaConfig, NezhaForPreTraining};
use nezha_train::tensorfile;
use tch::Device;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

#[test]
fn hugging_face_to_ours_and_back_keeps_everything() {
    for key in [
        "pretraining",
        "sequence_classification",
        "question_answering",
    ] {
        let hf_dir = root().join(format!("finetune/hf_{key}"));
        let tmp = tempfile::tempdir().unwrap();
        let mine = tmp.path().join("model.safetensors");
        checkpoint::convert(
            &hf_dir,
            Format::HuggingFace,
            &mine,
            Format::Nezha,
            None,
            None,
        )
        .unwrap();
        let back = tmp.path().join("hf");
        checkpoint::convert(&mine, Format::Nezha, &back, Format::HuggingFace, None, None).unwrap();
        let a = tensorfile::load(&hf_dir.join("model.safetensors")).unwrap();
        let b = tensorfile::load(&back.join("model.safetensors")).unwrap();
        assert_eq!(a.tensors.len(), b.tensors.len(), "{key}");
        for (n, t) in &a.tensors {
            assert!(b.get(n).unwrap().equal(t), "{key}: {n}");
        }
        let (w1, _) = checkpoint::read(&hf_dir, Format::HuggingFace, None, None).unwrap();
        let (w2, _) = checkpoint::read(&back, Format::HuggingFace, None, None).unwrap();
        assert_eq!(w1.config, w2.config);
        assert_eq!(w1.architecture, w2.architecture);
        assert_eq!(w1.labels, w2.labels);
    }
}

#[test]
fn our_pretraining_files_are_nezha_train_weight_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("model.safetensors");
    checkpoint::convert(
        &root().join("tf_checkpoint/pretrain/model.ckpt"),
        Format::Tf,
        &mine,
        Format::Nezha,
        None,
        None,
    )
    .unwrap();
    let cfg = NezhaConfig::from_json_file(&root().join("tf_checkpoint/pretrain/bert_config.json"))
        .unwrap();
    let mut m = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();
    weights::load(&mut m, &mine).unwrap();
    let st = tensorfile::load(&root().join("tf_checkpoint/pretrain.safetensors")).unwrap();
    for (n, t) in m.params.named() {
        assert!(st.get(n).unwrap().equal(t), "{n}");
    }
    // And a model saved by nezha-train reads back as pretraining weights.
    let saved = tmp.path().join("saved.safetensors");
    weights::save(&m, &saved).unwrap();
    let (w, dropped) = ours::read(&saved, None, None).unwrap();
    assert_eq!(w.architecture, Architecture::PreTraining);
    assert!(dropped.is_empty());
}

#[test]
fn fine_tuned_files_keep_architecture_and_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("clf.safetensors");
    checkpoint::convert(
        &root().join("finetune/hf_sequence_classification"),
        Format::HuggingFace,
        &mine,
        Format::Nezha,
        None,
        None,
    )
    .unwrap();
    let (w, _) = ours::read(&mine, None, None).unwrap();
    assert_eq!(
        w.architecture,
        Architecture::SequenceClassification { num_labels: 3 }
    );
    assert_eq!(w.labels.unwrap(), vec!["negative", "neutral", "positive"]);
}

#[test]
fn disagreeing_configs_are_refused() {
    let hf_dir = root().join("finetune/hf_question_answering");
    let (w, _) = checkpoint::read(&hf_dir, Format::HuggingFace, None, None).unwrap();
    let other = NezhaConfig {
        max_relative_position: 64,
        ..w.config.clone()
    };
    let e = checkpoint::read(&hf_dir, Format::HuggingFace, Some(&other), None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("max_relative_position"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("m.safetensors");
    checkpoint::write(&mine, Format::Nezha, &w).unwrap();
    let e = checkpoint::read(&mine, Format::Nezha, Some(&other), None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("max_relative_position"), "{e}");
}

#[test]
fn unknown_formats_and_missing_files_are_explained() {
    let e = "onnx".parse::<Format>().unwrap_err().to_string();
    assert!(e.contains("onnx") && e.contains("tf, hf or nezha"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"x").unwrap();
    let e = checkpoint::read(tmp.path(), Format::HuggingFace, None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("pytorch_model.bin"), "{e}");
    let e = format!(
        "{:#}",
        checkpoint::read(
            &tmp.path().join("nothing"),
            Format::Tf,
            Some(&NezhaConfig::tiny()),
            None
        )
        .err()
        .unwrap()
    );
    assert!(e.contains("nothing.index"), "{e}");
}
