//! Reference TF checkpoints written by TensorFlow 2.21's own Saver
//! (scripts/fixtures/tf_checkpoint.py → tests/fixtures/tf_checkpoint/):
//! read with the reference names, optimizer state skipped, the same weights
//! and model outputs as the Hugging Face-named safetensors written alongside,
//! and misfitting checkpoints refused by variable name.

use std::path::{Path, PathBuf};

use nezha_finetune::checkpoint::bundle::{self, Bundle};
use nezha_finetune::checkpoint::{self, tf, Architecture, Format, ModelWeights};
use nezha_finetune::{HeadOutput, NezhaForFinetuning};
use nezha_train::model::{weights, Mode, NezhaConfig, NezhaForPreTraining, PreTrainingInputs};
use nezha_train::tensorfile;
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/tf_checkpoint")
        .join(name)
}

fn ckpt(dir: &str) -> PathBuf {
    fixture(dir).join("model.ckpt")
}

fn config() -> NezhaConfig {
    let meta = tensorfile::load(&fixture("pretrain.safetensors"))
        .unwrap()
        .metadata;
    serde_json::from_str(&meta[weights::CONFIG_KEY]).unwrap()
}

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// Every tensor of `w` is bit-identical to the same-named one in `file`,
/// and `file` has no others.
fn assert_same_tensors(w: &ModelWeights, file: &Path) {
    let st = tensorfile::load(file).unwrap();
    let mut names: Vec<&str> = w.tensors.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    let mut want: Vec<&str> = st.tensors.iter().map(|(n, _)| n.as_str()).collect();
    want.sort();
    assert_eq!(names, want);
    for (n, t) in &w.tensors {
        let o = st.get(n).unwrap();
        assert_eq!(t.size(), o.size(), "{n}");
        assert!(t.equal(o), "{n} differs");
    }
}

fn sample_inputs(cfg: &NezhaConfig) -> PreTrainingInputs {
    tch::manual_seed(3);
    let (b, l, p) = (2, 11, 3);
    let ids = Tensor::randint_low(1, cfg.vocab_size, [b, l], (Kind::Int64, Device::Cpu));
    let mask = Tensor::from_slice(&[[1i64; 11], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]].concat())
        .reshape([b, l]);
    let seg = Tensor::from_slice(
        &[
            [0i64, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
            [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
        ]
        .concat(),
    )
    .reshape([b, l]);
    PreTrainingInputs {
        input_ids: ids,
        input_mask: mask,
        segment_ids: seg,
        masked_lm_positions: Tensor::from_slice(&[1i64, 4, 9, 0, 2, 5]).reshape([b, p]),
        masked_lm_ids: Tensor::from_slice(&[3i64, 4, 5, 6, 7, 8]).reshape([b, p]),
        masked_lm_weights: Tensor::ones([b, p], (Kind::Float, Device::Cpu)),
        next_sentence_labels: Tensor::from_slice(&[0i64, 1]),
    }
}

fn pretraining_outputs(m: &NezhaForPreTraining, inp: &PreTrainingInputs) -> Vec<Tensor> {
    let o = tch::no_grad(|| m.forward(inp, Mode::eval()));
    vec![
        o.sequence_output,
        o.pooled_output,
        o.mlm_logits,
        o.nsp_logits,
    ]
}

#[test]
fn pretraining_checkpoint_loads_and_skips_optimizer_state() {
    let cfg = config();
    let (w, report) = tf::read(&ckpt("pretrain"), &cfg, None).unwrap();
    assert_eq!(w.architecture, Architecture::PreTraining);
    assert_eq!(report.global_step, Some(123));
    assert_eq!(report.vocab_padding, None);
    let n_vars = w.tensors.len();
    // Two LAMB slots per variable, the two Adam slots, global_step and the
    // two loss-scale variables.
    assert_eq!(
        report.skipped.len(),
        2 * n_vars + 2 + 3,
        "{:?}",
        report.skipped
    );
    for s in &report.skipped {
        assert!(
            s.ends_with("/lamb_m")
                || s.ends_with("/lamb_v")
                || s.ends_with("/adam_m")
                || s.ends_with("/adam_v")
                || ["global_step", "loss_scale", "good_steps"].contains(&s.as_str()),
            "unexpected skip {s}"
        );
    }
    // Kernels transposed, nothing else: bit-identical to HF orientation.
    assert_same_tensors(&w, &fixture("pretrain.safetensors"));
}

#[test]
fn tf_and_safetensors_weights_give_the_same_outputs() {
    let cfg = config();
    let (w, _) = tf::read(&ckpt("pretrain"), &cfg, None).unwrap();
    let mut from_tf = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();
    weights::load_tensors(&mut from_tf, w.tensors).unwrap();
    let mut from_st = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();
    weights::load(&mut from_st, &fixture("pretrain.safetensors")).unwrap();
    let fresh = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();

    let inp = sample_inputs(&cfg);
    let a = pretraining_outputs(&from_tf, &inp);
    let b = pretraining_outputs(&from_st, &inp);
    let c = pretraining_outputs(&fresh, &inp);
    for ((x, y), z) in a.iter().zip(&b).zip(&c) {
        assert!(x.equal(y), "TF and safetensors outputs differ");
        // And the comparison is not vacuous: other weights, other outputs.
        assert!((x - z).abs().max().double_value(&[]) > 1e-3);
    }
}

#[test]
fn config_is_found_beside_the_checkpoint() {
    let (w, _) = checkpoint::read(&ckpt("pretrain"), Format::Tf, None, None).unwrap();
    // bert_config.json says "gelu": the TF reference's tanh form.
    assert_eq!(w.config, config());
    let e = err_of(checkpoint::read(&ckpt("padded"), Format::Tf, None, None));
    assert!(e.contains("bert_config.json"), "{e}");
}

#[test]
fn padded_vocabulary_is_sliced() {
    let cfg = config();
    let (w, report) = tf::read(&ckpt("padded"), &cfg, None).unwrap();
    assert_eq!(report.vocab_padding, Some((40, 37)));
    assert_same_tensors(&w, &fixture("pretrain.safetensors"));
}

#[test]
fn vocabulary_that_is_not_padding_is_refused() {
    // The padded checkpoint read with a much smaller vocabulary.
    let cfg = NezhaConfig {
        vocab_size: 20,
        ..config()
    };
    let e = err_of(tf::read(&ckpt("padded"), &cfg, None));
    assert!(
        e.contains("bert/embeddings/word_embeddings")
            && e.contains("[40, 16]")
            && e.contains("vocab_size 20"),
        "{e}"
    );
}

#[test]
fn wrong_shape_is_refused_naming_the_variable() {
    let e = err_of(tf::read(&ckpt("wrong_shape"), &config(), None));
    assert!(
        e.contains("bert/encoder/layer_1/intermediate/dense/kernel")
            && e.contains("[24, 16]")
            && e.contains("[16, 24]"),
        "{e}"
    );
}

#[test]
fn missing_variable_is_refused_naming_it() {
    let e = err_of(tf::read(&ckpt("missing"), &config(), None));
    assert!(
        e.contains("bert/pooler/dense/bias") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn extra_layer_is_refused() {
    let e = err_of(tf::read(&ckpt("extra_layer"), &config(), None));
    assert!(
        e.contains("bert/encoder/layer_2/") && e.contains("num_hidden_layers = 2"),
        "{e}"
    );
    // With a three-layer config it is fine.
    let cfg = NezhaConfig {
        num_hidden_layers: 3,
        ..config()
    };
    tf::read(&ckpt("extra_layer"), &cfg, None).unwrap();
}

#[test]
fn absolute_position_embeddings_are_refused() {
    let e = err_of(tf::read(&ckpt("absolute_pos"), &config(), None));
    assert!(
        e.contains("bert/embeddings/position_embeddings") && e.contains("absolute position"),
        "{e}"
    );
}

#[test]
fn classifier_checkpoint_reads_as_a_sentence_classifier() {
    let cfg = config();
    let (w, report) = tf::read(&ckpt("classifier"), &cfg, None).unwrap();
    assert_eq!(
        w.architecture,
        Architecture::SequenceClassification { num_labels: 3 }
    );
    assert_eq!(report.global_step, Some(77));
    assert!(report
        .skipped
        .iter()
        .all(|s| s.ends_with("/adam_m") || s.ends_with("/adam_v") || s == "global_step"));
    assert_same_tensors(&w, &fixture("classifier.safetensors"));

    // Read as a tagger (the NER script's head has the same names), the
    // pooler is left out.
    let arch = Architecture::TokenClassification { num_labels: 3 };
    let (w, report) = tf::read(&ckpt("classifier"), &cfg, Some(arch)).unwrap();
    assert_eq!(w.architecture, arch);
    assert!(report
        .skipped
        .contains(&"bert/pooler/dense/kernel".to_string()));
    assert!(w.get("nezha.pooler.dense.weight").is_none());
}

#[test]
fn squad_checkpoint_reads_as_question_answering() {
    let (w, report) = tf::read(&ckpt("squad"), &config(), None).unwrap();
    assert_eq!(w.architecture, Architecture::QuestionAnswering);
    assert_eq!(
        report.skipped,
        vec!["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
    );
    assert_same_tensors(&w, &fixture("squad.safetensors"));
}

#[test]
fn pretraining_checkpoint_starts_a_fine_tuning_model() {
    let cfg = config();
    let (w, _) = tf::read(&ckpt("pretrain"), &cfg, None).unwrap();
    let arch = Architecture::SequenceClassification { num_labels: 3 };
    let mut m = NezhaForFinetuning::new(&cfg, arch, Device::Cpu).unwrap();
    let report = m.load(&w).unwrap();
    assert!(!report.head_loaded);
    assert_eq!(report.fresh, vec!["classifier.weight", "classifier.bias"]);
    // The encoder and pooler are the checkpoint's.
    for (n, t) in m.trainable() {
        if let Some(src) = w.get(&n) {
            assert!(t.equal(src), "{n}");
        }
    }
    // Asking for a head the checkpoint does not have is an error, not a
    // silently fresh head, when reading a whole model.
    let e = err_of(tf::read(&ckpt("pretrain"), &cfg, Some(arch)));
    assert!(e.contains("output_weights") && e.contains("missing"), "{e}");
}

#[test]
fn fine_tuned_classifier_checkpoint_loads_whole() {
    let cfg = config();
    let (w, _) = tf::read(&ckpt("classifier"), &cfg, None).unwrap();
    let mut m = NezhaForFinetuning::new(&cfg, w.architecture, Device::Cpu).unwrap();
    let report = m.load(&w).unwrap();
    assert!(report.head_loaded && report.fresh.is_empty());
    let inp = sample_inputs(&cfg);
    let HeadOutput::Sequence(logits) = tch::no_grad(|| {
        m.forward(
            &inp.input_ids,
            &inp.input_mask,
            &inp.segment_ids,
            None,
            Mode::eval(),
        )
    }) else {
        panic!("not a sequence head")
    };
    assert_eq!(logits.size(), [2, 3]);
    // The same model saved and read back gives the same weights.
    let back = m.weights(None).unwrap();
    for ((n, a), (m2, b)) in w.tensors.iter().zip(&back.tensors) {
        assert_eq!(n, m2);
        assert!(a.equal(b), "{n}");
    }
}

#[test]
fn corrupt_data_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.ckpt.index", "model.ckpt.data-00000-of-00001"] {
        std::fs::copy(fixture("squad").join(f), dir.path().join(f)).unwrap();
    }
    let data = dir.path().join("model.ckpt.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    // The first bytes belong to the alphabetically first variable.
    bytes[2] ^= 0x40;
    std::fs::write(&data, bytes).unwrap();
    let e = err_of(tf::read(&dir.path().join("model.ckpt"), &config(), None));
    assert!(
        e.contains("CRC-32C") && e.contains("bert/embeddings/LayerNorm/beta"),
        "{e}"
    );
}

/// Our writer reproduces TensorFlow's files byte for byte from the same
/// variables (model, slots, int64 global_step), so TensorFlow reads what we
/// write.
#[test]
fn writer_reproduces_tensorflow_bytes() {
    for dir in ["pretrain", "classifier", "squad", "padded"] {
        let b = Bundle::open(&ckpt(dir)).unwrap();
        // TF's Saver wrote the data in name order; the index is sorted too.
        let vars: Vec<(String, Tensor)> = b
            .entries
            .iter()
            .map(|e| (e.name.clone(), b.read_tensor(e).unwrap()))
            .collect();
        let out = tempfile::tempdir().unwrap();
        let prefix = out.path().join("model.ckpt");
        bundle::write(&prefix, &vars).unwrap();
        for suffix in [".index", ".data-00000-of-00001"] {
            let name = format!("model.ckpt{suffix}");
            let ours = std::fs::read(out.path().join(&name)).unwrap();
            let theirs = std::fs::read(fixture(dir).join(&name)).unwrap();
            assert!(ours == theirs, "{dir}/{name} differs from TensorFlow's");
        }
    }
}

#[test]
fn written_checkpoints_read_back() {
    let cfg = config();
    let (w, _) = tf::read(&ckpt("classifier"), &cfg, None).unwrap();
    let out = tempfile::tempdir().unwrap();
    let prefix = out.path().join("model.ckpt");
    tf::write(&prefix, &w, Some(9)).unwrap();
    let (back, report) = tf::read(&prefix, &cfg, None).unwrap();
    assert_eq!(report.global_step, Some(9));
    assert_eq!(back.architecture, w.architecture);
    for ((n, a), (_, b)) in w.tensors.iter().zip(&back.tensors) {
        assert!(a.equal(b), "{n}");
    }
}
