//! Behaviour of the model pieces that the parity fixtures do not pin down:
//! the relative index and table, masking, dropout, losses, init, weight files
//! and configs.

use nezha_stages::Batch;
use nezha_train::model::params::truncated_normal;
use nezha_train::model::params::ParamStore;
use nezha_train::model::relative_position::{relative_index, relative_positions, sinusoid_table};
use nezha_train::model::{
    pretraining_loss, weights, Activation, Mode, NezhaConfig, NezhaForPreTraining, NezhaModel,
    PreTrainingInputs,
};
use tch::{Device, Kind, Tensor};

/// libtorch's generator is process-global and tests run on parallel threads:
/// every test that seeds it holds this lock.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn small_config() -> NezhaConfig {
    NezhaConfig {
        vocab_size: 50,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_relative_position: 3,
        ..NezhaConfig::tiny()
    }
}

fn batch(ids: &[&[i64]], seq_len: usize) -> Batch {
    let p = 2;
    let mut b = Batch::with_capacity(ids.len(), seq_len, p);
    b.size = ids.len();
    for (r, row) in ids.iter().enumerate() {
        for i in 0..seq_len {
            b.input_ids.push(*row.get(i).unwrap_or(&0));
            b.input_mask.push((i < row.len()) as i64);
            b.segment_ids
                .push((i < row.len() && i >= row.len() / 2) as i64);
        }
        b.masked_lm_positions.extend([1, 0]);
        b.masked_lm_ids.extend([row[1], 0]);
        b.masked_lm_weights.extend([1.0, 0.0]);
        b.next_sentence_labels.push((r % 2) as i64);
    }
    b
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

#[test]
fn relative_index_is_clipped_shifted_distance() {
    let idx = relative_index(5, 2, Device::Cpu);
    let got = Vec::<i64>::try_from(idx.reshape([-1])).unwrap();
    #[rustfmt::skip]
    let want = vec![
        2, 3, 4, 4, 4,
        1, 2, 3, 4, 4,
        0, 1, 2, 3, 4,
        0, 0, 1, 2, 3,
        0, 0, 0, 1, 2,
    ];
    assert_eq!(got, want);
}

#[test]
fn table_uses_the_shifted_index_as_sinusoid_argument() {
    let t = sinusoid_table(64, 64);
    assert_eq!(t.size(), vec![129, 64]);
    // Distance 0 is row 64: sin(64), cos(64), …, not (0, 1, …): the
    // reference's `_generate_relative_positions_embeddings` takes the
    // shifted index as the argument (docs/notes/model.md).
    let row = to_vec(&t.get(64));
    assert!((row[0] - 64f64.sin()).abs() < 1e-7 && (row[0] - 0.920).abs() < 1e-3);
    assert!((row[1] - 64f64.cos()).abs() < 1e-7 && (row[1] - 0.392).abs() < 1e-3);
    // Interleaved: column 2k+1 is the cosine of column 2k's angle.
    let a = 7.0 / 10000f64.powf(10.0 / 64.0);
    let r7 = to_vec(&t.get(7));
    assert!((r7[10] - a.sin()).abs() < 1e-7 && (r7[11] - a.cos()).abs() < 1e-7);
    // R gathers rows of the table by the index.
    let r = relative_positions(&t, 70, 64);
    assert_eq!(r.size(), vec![70, 70, 64]);
    assert!(r.get(0).get(69).equal(&t.get(128)));
    assert!(r.get(69).get(0).equal(&t.get(0)));
    assert!(r.get(5).get(5).equal(&t.get(64)));
}

#[test]
fn padding_does_not_leak_into_real_positions() {
    let _rng = rng_lock();
    tch::manual_seed(1);
    let model = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    let a = batch(&[&[2, 7, 9, 4, 5], &[3, 8, 6]], 8);
    let mut b = a.clone();
    // Different ids and segments in the padding of row 1.
    for i in 3..8 {
        b.input_ids[8 + i] = 40 + i as i64;
        b.segment_ids[8 + i] = 1;
    }
    let run = |bt: &Batch| {
        let inp = PreTrainingInputs::from_batch(bt, 50, 2, Device::Cpu).unwrap();
        tch::no_grad(|| model.forward(&inp, Mode::eval()))
    };
    let (oa, ob) = (run(&a), run(&b));
    let real = |t: &Tensor| t.get(1).narrow(0, 0, 3);
    assert!(real(&oa.sequence_output).allclose(&real(&ob.sequence_output), 1e-6, 1e-6, false));
    assert!(oa.mlm_logits.allclose(&ob.mlm_logits, 1e-6, 1e-6, false));
    assert!(oa.nsp_logits.allclose(&ob.nsp_logits, 1e-6, 1e-6, false));
    // Whereas a change at a real position does show.
    let mut c = a.clone();
    c.input_ids[8 + 2] = 11;
    assert!(!run(&c)
        .nsp_logits
        .allclose(&oa.nsp_logits, 1e-6, 1e-6, false));
}

#[test]
fn dropout_follows_the_seed_and_is_off_in_eval() {
    let _rng = rng_lock();
    tch::manual_seed(2);
    let model = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    let inp =
        PreTrainingInputs::from_batch(&batch(&[&[2, 7, 9, 4, 5]], 6), 50, 2, Device::Cpu).unwrap();
    let run = |seed: i64, mode: Mode| {
        tch::manual_seed(seed);
        tch::no_grad(|| model.forward(&inp, mode)).sequence_output
    };
    assert!(run(5, Mode::train()).equal(&run(5, Mode::train())));
    assert!(!run(5, Mode::train()).equal(&run(6, Mode::train())));
    assert!(run(5, Mode::eval()).equal(&run(6, Mode::eval())));
    assert!(!run(5, Mode::train()).equal(&run(5, Mode::eval())));
}

#[test]
fn activation_choice_matters() {
    let _rng = rng_lock();
    let mut cfg = small_config();
    let inp =
        PreTrainingInputs::from_batch(&batch(&[&[2, 7, 9, 4, 5]], 6), 50, 2, Device::Cpu).unwrap();
    let mut outs = Vec::new();
    for act in [Activation::GeluTanh, Activation::GeluErf] {
        cfg.hidden_act = act;
        tch::manual_seed(3);
        let m = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();
        outs.push(tch::no_grad(|| m.forward(&inp, Mode::eval())).sequence_output);
    }
    let d = (&outs[0] - &outs[1]).abs().max().double_value(&[]);
    assert!(d > 1e-7 && d < 1e-2, "tanh vs erf gelu differ by {d}");
}

#[test]
fn losses_follow_the_tf_formulas() {
    let _rng = rng_lock();
    tch::manual_seed(4);
    let model = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    let mut b = batch(&[&[2, 7, 9, 4, 5], &[3, 8, 6, 1]], 6);
    // Row 0: two real predictions with weights 1 and 0.5; row 1: one.
    b.masked_lm_positions = vec![1, 3, 2, 0];
    b.masked_lm_ids = vec![7, 4, 6, 0];
    b.masked_lm_weights = vec![1.0, 0.5, 1.0, 0.0];
    let inp = PreTrainingInputs::from_batch(&b, 50, 2, Device::Cpu).unwrap();
    let out = tch::no_grad(|| model.forward(&inp, Mode::eval()));
    let loss = pretraining_loss(&out, &inp);
    let logits = to_vec(&out.mlm_logits);
    let nll = |row: usize, id: usize| {
        let r = &logits[row * 50..(row + 1) * 50];
        let max = r.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + r.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        lse - r[id]
    };
    let want_mlm = (nll(0, 7) + 0.5 * nll(1, 4) + nll(2, 6)) / (2.5 + 1e-5);
    let nsp = to_vec(&out.nsp_logits);
    let nsp_nll = |row: usize, label: usize| {
        let (a, c) = (nsp[2 * row], nsp[2 * row + 1]);
        let m = a.max(c);
        m + ((a - m).exp() + (c - m).exp()).ln() - nsp[2 * row + label]
    };
    let want_nsp = (nsp_nll(0, 0) + nsp_nll(1, 1)) / 2.0;
    assert!((loss.mlm.double_value(&[]) - want_mlm).abs() < 1e-5);
    assert!((loss.nsp.double_value(&[]) - want_nsp).abs() < 1e-5);
    assert!((loss.total.double_value(&[]) - want_mlm - want_nsp).abs() < 2e-5);
    // Accuracy is weighted like the loss.
    let argmax = |row: usize| {
        let r = &logits[row * 50..(row + 1) * 50];
        (0..50).max_by(|&i, &j| r[i].total_cmp(&r[j])).unwrap()
    };
    let hits = [(0, 7, 1.0), (1, 4, 0.5), (2, 6, 1.0)]
        .iter()
        .map(|&(r, id, w)| if argmax(r) == id { w } else { 0.0 })
        .sum::<f64>();
    assert!((loss.mlm_accuracy.double_value(&[]) - hits / 2.5).abs() < 1e-6);
}

#[test]
fn truncated_normal_stays_within_two_sigma() {
    let _rng = rng_lock();
    tch::manual_seed(5);
    let t = truncated_normal(&[200_000], 0.02);
    let v = to_vec(&t);
    assert!(v.iter().all(|x| x.abs() <= 0.04));
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    // A normal truncated at ±2σ has σ·0.8796.
    assert!(mean.abs() < 3e-4, "mean {mean}");
    assert!((std / 0.02 - 0.8796).abs() < 0.01, "std {std}");
}

#[test]
fn init_is_tf_style_and_seeded() {
    let _rng = rng_lock();
    tch::manual_seed(6);
    let a = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    tch::manual_seed(6);
    let b = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    for ((na, ta), (nb, tb)) in a.params.named().iter().zip(b.params.named()) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs under the same seed");
        let v = to_vec(ta);
        if na.ends_with("LayerNorm.weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{na}");
        } else if na.ends_with("bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{na}");
        } else {
            assert!(
                v.iter().all(|x| x.abs() <= 0.04) && v.iter().any(|&x| x != 0.0),
                "{na}"
            );
        }
    }
    // No absolute position table, one MLM output bias, tied decoder.
    let names: Vec<&str> = a.params.named().iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.iter().any(|n| n.contains("position_embeddings")));
    assert!(names.contains(&"cls.predictions.bias"));
    assert!(!names.iter().any(|n| n.contains("decoder")));
}

/// The backbone alone has the pretraining model's `nezha.*` parameters,
/// drawn first and in the same order (so the same seed gives the same
/// encoder), computes the same sequence and pooled outputs, and leaves the
/// pooler out when asked, as Hugging Face's `add_pooling_layer=False`.
#[test]
fn backbone_is_the_pretraining_model_without_heads() {
    let _rng = rng_lock();
    let cfg = small_config();
    tch::manual_seed(5);
    let full = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();
    tch::manual_seed(5);
    let mut ps = ParamStore::new(Device::Cpu);
    let backbone = NezhaModel::new(&mut ps, "nezha", &cfg, true).unwrap();
    let body: Vec<&(String, Tensor)> = full
        .params
        .named()
        .iter()
        .filter(|(n, _)| n.starts_with("nezha."))
        .collect();
    let with_pooler = ps.named().len();
    assert_eq!(body.len(), with_pooler);
    for ((na, ta), (nb, tb)) in body.into_iter().zip(ps.named()) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na}");
    }
    assert!(full
        .params
        .named()
        .iter()
        .skip(with_pooler)
        .all(|(n, _)| n.starts_with("cls.")));

    let b = batch(&[&[2, 7, 9, 3, 11, 3], &[2, 5, 3, 8, 3]], 6);
    let inp = PreTrainingInputs::from_batch(&b, 50, 2, Device::Cpu).unwrap();
    let want = tch::no_grad(|| full.forward(&inp, Mode::eval()));
    let got = tch::no_grad(|| {
        backbone.forward(
            &inp.input_ids,
            &inp.input_mask,
            &inp.segment_ids,
            Mode::eval(),
        )
    });
    assert!(got.sequence_output.equal(&want.sequence_output));
    assert!(got.pooled_output.unwrap().equal(&want.pooled_output));

    let mut ps = ParamStore::new(Device::Cpu);
    let bare = NezhaModel::new(&mut ps, "nezha", &cfg, false).unwrap();
    assert!(bare.pooler.is_none());
    assert!(ps
        .named()
        .iter()
        .all(|(n, _)| !n.starts_with("nezha.pooler.")));
    assert_eq!(ps.named().len(), with_pooler - 2);
    let out = tch::no_grad(|| {
        bare.forward(
            &inp.input_ids,
            &inp.input_mask,
            &inp.segment_ids,
            Mode::eval(),
        )
    });
    assert!(out.pooled_output.is_none());
    assert_eq!(out.sequence_output.size(), [2, 6, cfg.hidden_size]);
}

#[test]
fn weight_files_round_trip_and_reject_mismatches() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    tch::manual_seed(7);
    let a = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    weights::save(&a, &path).unwrap();
    tch::manual_seed(8);
    let mut b = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    weights::load(&mut b, &path).unwrap();
    for ((n, ta), (_, tb)) in a.params.named().iter().zip(b.params.named()) {
        assert!(ta.equal(tb), "{n} not restored");
    }

    // Another config: refused with the differing field named.
    let mut other_cfg = small_config();
    other_cfg.intermediate_size = 64;
    let mut other = NezhaForPreTraining::new(&other_cfg, Device::Cpu).unwrap();
    let err = format!("{:#}", weights::load(&mut other, &path).unwrap_err());
    assert!(err.contains("intermediate_size"), "{err}");

    // Truncated file: a clear error, and the model is left untouched.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let before = b.params.get("nezha.pooler.dense.weight").unwrap().copy();
    let err = format!("{:#}", weights::load(&mut b, &cut).unwrap_err());
    assert!(
        err.contains("cut.safetensors") && err.contains("truncated or corrupt"),
        "{err}"
    );
    assert!(b
        .params
        .get("nezha.pooler.dense.weight")
        .unwrap()
        .equal(&before));
}

#[test]
fn foreign_tensors_are_refused() {
    let _rng = rng_lock();
    tch::manual_seed(9);
    let mut m = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    let mut tensors: Vec<(String, Tensor)> = m
        .params
        .named()
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().copy()))
        .collect();
    tensors.push((
        "nezha.embeddings.position_embeddings.weight".into(),
        Tensor::zeros([512, 16], (Kind::Float, Device::Cpu)),
    ));
    let err = format!(
        "{:#}",
        weights::load_tensors(
            &mut m,
            tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect()
        )
        .unwrap_err()
    );
    assert!(
        err.contains("position_embeddings") && err.contains("not a functional-relative-position"),
        "{err}"
    );
    // An untied decoder is refused too.
    tensors.pop();
    tensors.push((
        "cls.predictions.decoder.weight".into(),
        Tensor::zeros([50, 16], (Kind::Float, Device::Cpu)),
    ));
    let err = format!("{:#}", weights::load_tensors(&mut m, tensors).unwrap_err());
    assert!(err.contains("ties"), "{err}");
}

#[test]
fn reference_config_json_parses_with_defaults() {
    // NEZHA-TensorFlow/nezha/bert_config.json has no max_relative_position.
    let json = r#"{"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
        "intermediate_size": 3072, "max_position_embeddings": 512,
        "num_attention_heads": 12, "num_hidden_layers": 12, "type_vocab_size": 2,
        "vocab_size": 21128, "use_relative_position": true}"#;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bert_config.json");
    std::fs::write(&p, json).unwrap();
    let cfg = NezhaConfig::from_json_file(&p).unwrap();
    assert_eq!(cfg.max_relative_position, 64);
    assert_eq!(cfg.hidden_act, Activation::GeluTanh);
    let mut base = NezhaConfig::base();
    base.use_relative_position = Some(true);
    assert_eq!(cfg, base);

    std::fs::write(
        &p,
        json.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 7"),
    )
    .unwrap();
    let err = format!("{:#}", NezhaConfig::from_json_file(&p).unwrap_err());
    assert!(
        err.contains("bert_config.json") && err.contains("not a multiple"),
        "{err}"
    );
    assert!(NezhaConfig::preset("huge").is_err());
}

#[test]
fn bad_batches_are_reported_not_crashed_on() {
    let mut b = batch(&[&[2, 7, 9]], 4);
    b.input_ids[1] = 50;
    let err = format!(
        "{:#}",
        PreTrainingInputs::from_batch(&b, 50, 2, Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(
        err.contains("input_ids[1] = 50") && err.contains("[0, 50)"),
        "{err}"
    );
    let mut b = batch(&[&[2, 7, 9]], 4);
    b.masked_lm_weights.pop();
    let err = format!(
        "{:#}",
        PreTrainingInputs::from_batch(&b, 50, 2, Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(err.contains("masked_lm_weights"), "{err}");
}

#[test]
fn bf16_compute_tracks_fp32() {
    let _rng = rng_lock();
    tch::manual_seed(10);
    let model = NezhaForPreTraining::new(&small_config(), Device::Cpu).unwrap();
    let inp = PreTrainingInputs::from_batch(
        &batch(&[&[2, 7, 9, 4, 5], &[3, 8, 6]], 6),
        50,
        2,
        Device::Cpu,
    )
    .unwrap();
    let f32_loss =
        tch::no_grad(|| pretraining_loss(&model.forward(&inp, Mode::eval()), &inp)).total;
    let bf16 = Mode {
        train: false,
        compute: Kind::BFloat16,
    };
    let out = tch::no_grad(|| model.forward(&inp, bf16));
    assert_eq!(out.sequence_output.kind(), Kind::Float);
    let bf_loss = pretraining_loss(&out, &inp).total;
    let (a, b) = (f32_loss.double_value(&[]), bf_loss.double_value(&[]));
    assert!(
        a != b && (a - b).abs() < 2e-2 * a.abs(),
        "fp32 {a} vs bf16 {b}"
    );
}
