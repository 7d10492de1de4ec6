//! Weights converted here load in transformers 4.57.6: the TF fixture
//! checkpoints, converted to Hugging Face directories by our converter, were
//! loaded with `from_pretrained` and run by scripts/fixtures/finetune_hf_load.py
//! (tests/fixtures/finetune/from_rust/). This test checks that the converter
//! still writes exactly those bytes, that transformers reported no missing,
//! unexpected or mismatched keys, and that its outputs equal ours on the
//! original TF weights.

use std::path::PathBuf;

use nezha_finetune::checkpoint::{self, tf, Format};
use nezha_finetune::{HeadOutput, NezhaForFinetuning};
use nezha_train::model::{Mode, NezhaConfig, NezhaForPreTraining, PreTrainingInputs};
use nezha_train::tensorfile::{self, TensorFile};
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn config() -> NezhaConfig {
    NezhaConfig::from_json_file(&root().join("tf_checkpoint/pretrain/bert_config.json")).unwrap()
}

fn hf_cases() -> TensorFile {
    tensorfile::load(&root().join("finetune/from_rust/cases.safetensors")).unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
fn converter_writes_the_directories_transformers_loaded() {
    for name in ["pretrain", "classifier"] {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join(name);
        checkpoint::convert(
            &root().join(format!("tf_checkpoint/{name}/model.ckpt")),
            Format::Tf,
            &dir,
            Format::HuggingFace,
            Some(&config()),
            None,
        )
        .unwrap();
        for file in ["config.json", "model.safetensors"] {
            let ours = std::fs::read(dir.join(file)).unwrap();
            let committed =
                std::fs::read(root().join(format!("finetune/from_rust/{name}/{file}"))).unwrap();
            assert!(
                ours == committed,
                "{name}/{file} is no longer what transformers was shown: rerun scripts/fixtures/finetune_hf_load.sh"
            );
        }
        let meta = &hf_cases().metadata;
        let info: serde_json::Value =
            serde_json::from_str(&meta[&format!("loading_info_{name}")]).unwrap();
        for (k, v) in info.as_object().unwrap() {
            assert_eq!(
                v.as_array().unwrap().len(),
                0,
                "{name}: transformers reported {k} = {v}"
            );
        }
        // Our "gelu" (TF's tanh form) became transformers' tanh GELU.
        assert_eq!(meta[&format!("act_{name}")], "GELUTanh");
    }
}

#[test]
fn transformers_outputs_on_converted_weights_equal_ours_on_the_tf_checkpoint() {
    let cfg = config();
    let c = hf_cases();
    let table = c.get("relative_table_hf").unwrap();
    let g = |n: &str| c.get(n).unwrap().shallow_clone();
    let (ids, mask, seg) = (g("input_ids"), g("input_mask"), g("segment_ids"));
    let (b, l) = (ids.size()[0], ids.size()[1]);

    let (w, _) = tf::read(
        &root().join("tf_checkpoint/pretrain/model.ckpt"),
        &cfg,
        None,
    )
    .unwrap();
    let mut m = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();
    nezha_train::model::weights::load_tensors(&mut m, w.tensors).unwrap();
    m.set_relative_table(table).unwrap();
    let positions = Tensor::arange(l, (Kind::Int64, Device::Cpu))
        .unsqueeze(0)
        .repeat([b, 1]);
    let inp = PreTrainingInputs {
        input_ids: ids.shallow_clone(),
        input_mask: mask.shallow_clone(),
        segment_ids: seg.shallow_clone(),
        masked_lm_ids: positions.zeros_like(),
        masked_lm_weights: positions.zeros_like().to_kind(Kind::Float),
        masked_lm_positions: positions,
        next_sentence_labels: Tensor::zeros([b], (Kind::Int64, Device::Cpu)),
    };
    let out = tch::no_grad(|| m.forward(&inp, Mode::eval()));
    let want = g("pretrain.prediction_logits");
    let d = max_abs(&out.mlm_logits, &want.reshape([b * l, cfg.vocab_size]));
    assert!(d <= TOL, "MLM logits differ by {d:e}");
    let d = max_abs(&out.nsp_logits, &g("pretrain.seq_relationship_logits"));
    assert!(d <= TOL, "NSP logits differ by {d:e}");

    let (w, _) = tf::read(
        &root().join("tf_checkpoint/classifier/model.ckpt"),
        &cfg,
        None,
    )
    .unwrap();
    let mut m = NezhaForFinetuning::new(&cfg, w.architecture, Device::Cpu).unwrap();
    m.load(&w).unwrap();
    m.backbone.set_relative_table(table).unwrap();
    let HeadOutput::Sequence(logits) =
        tch::no_grad(|| m.forward(&ids, &mask, &seg, None, Mode::eval()))
    else {
        panic!()
    };
    let d = max_abs(&logits, &g("classifier.logits"));
    assert!(d <= TOL, "classifier logits differ by {d:e}");
}
