//! The training loop end to end on a tiny model, on the CPU: exact resume,
//! accumulation, learning, outputs, and refusal of bad inputs.

mod common;

use std::path::Path;

use anyhow::Result;
use nezha_stages::Batch;
use nezha_train::model::NezhaConfig;
use nezha_train::optim::Schedule;
use nezha_train::tensorfile;
use nezha_train::trainer::{
    self, checkpoint, metrics, tensorboard, Precision, StopReason, TrainConfig,
};
use prost::Message;

static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// libtorch's generator is process-global: one training run at a time.
fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn config(dir: &Path, total_steps: u64) -> TrainConfig {
    let mut c = TrainConfig::new(common::small_model(), dir);
    c.schedule = Schedule::new(2e-3, 1, total_steps);
    c.save_every = 2;
    c.progress_bar = false;
    c.seed = 7;
    c
}

/// Deterministic synthetic batches: random ids, varied lengths, masked slots.
fn make_batch(seed: u64, size: usize, seq_len: usize, p: usize) -> Batch {
    let mut rng = common::Lcg::new(seed);
    let mut b = Batch::with_capacity(size, seq_len, p);
    b.size = size;
    for _ in 0..size {
        common::push_row(&mut b, &mut rng, seq_len, p);
    }
    b
}

fn batches(n: usize) -> Vec<Result<Batch>> {
    (0..n).map(|i| Ok(make_batch(i as u64, 4, 16, 3))).collect()
}

fn losses(dir: &Path) -> Vec<(u64, f64, f64, f64)> {
    metrics::read(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| (m.step, m.loss, m.mlm_loss, m.nsp_loss))
        .collect()
}

fn final_weights(dir: &Path) -> Vec<(String, tch::Tensor)> {
    let (_, ck) = checkpoint::list(dir).unwrap().pop().unwrap();
    tensorfile::load(&ck.join(checkpoint::MODEL_FILE))
        .unwrap()
        .tensors
}

#[test]
fn resume_continues_exactly() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    let s = trainer::train(&config(&a, 6), batches(6)).unwrap();
    assert_eq!((s.step, s.stopped), (6, StopReason::ReachedTotalSteps));

    // Run b stops after 3 batches (data ends), then resumes over the same
    // stream, skipping the 3 consumed batches.
    let s = trainer::train(&config(&b, 6), batches(3)).unwrap();
    assert_eq!(
        (s.step, s.stopped, s.batches_consumed),
        (3, StopReason::DataExhausted, 3)
    );
    let mut resume = config(&b, 6);
    resume.resume = true;
    let s = trainer::train(&resume, batches(6)).unwrap();
    assert_eq!((s.step, s.batches_consumed), (6, 6));
    assert_eq!(s.metrics.len(), 3);

    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la.len(), 6);
    assert_eq!(la, lb, "per-step losses differ after resume");
    // Dropout is on, so equality is not trivially true of any two runs.
    assert!(la.windows(2).all(|w| w[0].1 != w[1].1));
    for ((n, x), (_, y)) in final_weights(&a).iter().zip(final_weights(&b).iter()) {
        assert!(x.equal(y), "{n} differs after resume");
    }
}

#[test]
fn resume_with_a_positioned_source_skips_nothing() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    trainer::train(&config(&a, 4), batches(4)).unwrap();
    trainer::train(&config(&b, 4), batches(2)).unwrap();
    assert_eq!(checkpoint::latest_data_position(&b).unwrap(), Some(2));
    let mut resume = config(&b, 4);
    resume.resume = true;
    resume.skip_consumed_batches = false;
    trainer::train(&resume, batches(4).into_iter().skip(2)).unwrap();
    assert_eq!(losses(&a), losses(&b));
}

#[test]
fn accumulation_equals_one_big_batch() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg_model = common::small_model();
    // No dropout, so that two micro-batches and one big batch see the same net.
    cfg_model.hidden_dropout_prob = 0.0;
    cfg_model.attention_probs_dropout_prob = 0.0;
    let (b1, b2) = (make_batch(1, 3, 16, 3), make_batch(2, 3, 16, 3));
    let mut big = b1.clone();
    big.size = 6;
    for (dst, src) in [
        (&mut big.input_ids, &b2.input_ids),
        (&mut big.input_mask, &b2.input_mask),
        (&mut big.segment_ids, &b2.segment_ids),
        (&mut big.masked_lm_positions, &b2.masked_lm_positions),
        (&mut big.masked_lm_ids, &b2.masked_lm_ids),
        (&mut big.next_sentence_labels, &b2.next_sentence_labels),
    ] {
        dst.extend_from_slice(src);
    }
    big.masked_lm_weights
        .extend_from_slice(&b2.masked_lm_weights);

    let run = |name: &str, accum: u32, data: Vec<Batch>| {
        let mut c = config(&tmp.path().join(name), 2);
        c.model = cfg_model.clone();
        c.grad_accumulation = accum;
        // lr is 0 at step 0 (warmup), so take two steps on the same data.
        c.schedule = Schedule::new(1e-2, 1, 5);
        c.schedule.total_steps = 2;
        c.schedule.warmup_steps = 1;
        trainer::train(&c, data.into_iter().map(Ok)).unwrap();
        final_weights(&tmp.path().join(name))
    };
    let acc = run("acc", 2, vec![b1.clone(), b2.clone(), b1, b2]);
    let one = run("one", 1, vec![big.clone(), big]);
    let mut worst = 0f64;
    for ((n, x), (_, y)) in acc.iter().zip(one.iter()) {
        let d = (x - y).abs().max().double_value(&[]);
        worst = worst.max(d);
        assert!(
            d < 2e-6,
            "{n}: accumulated and big-batch updates differ by {d}"
        );
    }
    // And the compared updates are real: the weights left their init.
    tch::manual_seed(7);
    let init = nezha_train::model::NezhaForPreTraining::new(&cfg_model, tch::Device::Cpu).unwrap();
    let moved = acc
        .iter()
        .map(|(n, b)| {
            (init.params.get(n).unwrap() - b)
                .abs()
                .max()
                .double_value(&[])
        })
        .fold(0.0, f64::max);
    assert!(moved > 1e-4, "weights moved only {moved}");
    eprintln!("accumulation vs big batch: worst weight difference {worst:e}");
}

#[test]
fn a_small_model_learns_a_repeated_batch() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path(), 60);
    c.model.hidden_dropout_prob = 0.0;
    c.model.attention_probs_dropout_prob = 0.0;
    c.schedule = Schedule::new(5e-2, 3, 60);
    c.save_every = 100;
    let one = make_batch(11, 4, 16, 3);
    let s = trainer::train(&c, std::iter::repeat_with(|| Ok(one.clone())).take(60)).unwrap();
    eprintln!(
        "repeated batch: loss {:.3} -> {:.3}",
        s.metrics[0].loss, s.metrics[59].loss
    );
    let first = s.metrics[0].loss;
    let last = s.metrics.iter().rev().take(3).map(|m| m.loss).sum::<f64>() / 3.0;
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(s.metrics.iter().rev().take(3).all(|m| m.mlm_acc > 0.5));
}

#[test]
fn writes_metrics_events_plot_and_keeps_the_last_checkpoints() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path(), 5);
    c.save_every = 1;
    c.keep_checkpoints = 2;
    trainer::train(&c, batches(5)).unwrap();

    let steps: Vec<u64> = checkpoint::list(tmp.path())
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(steps, vec![4, 5]);
    let m = metrics::read(&tmp.path().join("metrics.jsonl")).unwrap();
    assert_eq!(
        m.iter().map(|m| m.step).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(m[0].lr, 0.0);
    assert!(m
        .iter()
        .all(|m| m.seq_per_s > 0.0 && (0.0..=1.0).contains(&m.data_wait_frac) && !m.skipped));
    assert!(m
        .iter()
        .all(|m| (0.0..=1.0).contains(&m.mlm_acc) && (0.0..=1.0).contains(&m.nsp_acc)));
    assert!(m
        .iter()
        .all(|m| (m.loss - m.mlm_loss - m.nsp_loss).abs() < 1e-5));

    // TensorBoard: valid TFRecord framing and decodable events.
    let tb = tmp.path().join("tensorboard");
    let files: Vec<_> = std::fs::read_dir(&tb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("events.out.tfevents."));
    let bytes = std::fs::read(&files[0]).unwrap();
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        assert_eq!(
            u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()),
            tensorboard::masked_crc(&bytes[at..at + 8])
        );
        let payload = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(crc, tensorboard::masked_crc(payload));
        events.push(tensorboard::Event::decode(payload).unwrap());
        at += 16 + len;
    }
    assert_eq!(events.len(), 6);
    assert!(
        matches!(&events[0].what, Some(tensorboard::What::FileVersion(v)) if v == "brain.Event:2")
    );
    let Some(tensorboard::What::Summary(s)) = &events[3].what else {
        panic!("no summary")
    };
    assert_eq!(events[3].step, 3);
    let loss = s.value.iter().find(|v| v.tag == "train/loss").unwrap();
    assert_eq!(
        loss.value,
        Some(tensorboard::Value::SimpleValue(m[2].loss as f32))
    );

    // The plot: a PNG of the right size, not blank.
    let png = std::fs::read(tmp.path().join("checkpoints/training.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1000);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 800);
    // No temporary files left behind.
    for entry in walk(tmp.path()) {
        assert!(!entry.contains(".tmp-"), "left behind: {entry}");
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn fp16_loss_scaling_skips_overflowing_steps_and_recovers() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path(), 6);
    c.precision = Precision::Fp16;
    // 2^32 overflows fp16 gradients at once; 2 bad steps halve the scale.
    c.loss_scale.initial = 2f64.powi(32);
    let s = trainer::train(&c, batches(200)).unwrap();
    assert_eq!(s.step, 6);
    assert!(
        s.skipped_steps >= 2,
        "expected overflow at scale 2^32, skipped {}",
        s.skipped_steps
    );
    let m = &s.metrics;
    // While skipping, the step does not advance, and the scale falls.
    let first_good = m.iter().position(|m| !m.skipped).unwrap();
    assert!(m[..first_good]
        .iter()
        .all(|x| x.skipped && x.step == 0 && x.grad_norm.is_none()));
    assert!(m[first_good].loss_scale < 2f64.powi(32));
    assert!(m.iter().filter(|x| !x.skipped).all(|x| x.loss.is_finite()));
    // The saved state records the scale reached.
    let (_, ck) = checkpoint::list(tmp.path()).unwrap().pop().unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).unwrap()).unwrap();
    assert!(state["loss_scaler"]["scale"].as_f64().unwrap() < 2f64.powi(32));
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| Path::new(p).is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn bad_inputs_are_refused_and_nothing_is_overwritten() {
    let _rng = rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    trainer::train(&config(&dir, 2), batches(2)).unwrap();
    let before = snapshot(&dir);
    let err =
        |c: &TrainConfig, n: usize| format!("{:#}", trainer::train(c, batches(n)).unwrap_err());

    // A vocab file that does not match the model's vocab size.
    let vocab = tmp.path().join("vocab.txt");
    std::fs::write(
        &vocab,
        (0..100).map(|i| format!("tok{i}\n")).collect::<String>(),
    )
    .unwrap();
    let mut c = config(&tmp.path().join("fresh"), 2);
    c.vocab_file = Some(vocab);
    let e = err(&c, 2);
    assert!(
        e.contains("vocab_size is 120") && e.contains("100 entries"),
        "{e}"
    );
    assert!(
        !tmp.path().join("fresh").exists(),
        "a refused run created its output dir"
    );

    // A fresh run into a directory that holds checkpoints.
    let e = err(&config(&dir, 4), 4);
    assert!(e.contains("already holds checkpoints"), "{e}");

    // Resuming with another model config.
    let mut c = config(&dir, 4);
    c.resume = true;
    c.model.intermediate_size = 48;
    let e = err(&c, 4);
    assert!(
        e.contains("another model config") && e.contains("intermediate_size"),
        "{e}"
    );

    // A batch outside the vocabulary names the batch.
    let mut c = config(&tmp.path().join("oov"), 2);
    c.model.vocab_size = 60;
    let e = err(&c, 2);
    assert!(
        e.contains("batch 0") && e.contains("outside [0, 60)"),
        "{e}"
    );
    assert_eq!(before, snapshot(&dir));

    // A corrupt (same size) and a truncated checkpoint file.
    let (_, ck) = checkpoint::list(&dir).unwrap().pop().unwrap();
    let model_file = ck.join(checkpoint::MODEL_FILE);
    let good = std::fs::read(&model_file).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    for (what, bytes) in [
        ("corrupt", flipped),
        ("truncated", good[..good.len() - 7].to_vec()),
    ] {
        std::fs::write(&model_file, &bytes).unwrap();
        let corrupted = snapshot(&dir);
        let mut c = config(&dir, 4);
        c.resume = true;
        let e = err(&c, 4);
        assert!(
            e.contains("corrupt or truncated") && e.contains("model.safetensors"),
            "{what}: {e}"
        );
        assert_eq!(corrupted, snapshot(&dir), "{what}: files changed");
    }
    std::fs::write(&model_file, &good).unwrap();

    // Resume without any checkpoint.
    let mut c = config(&tmp.path().join("empty"), 2);
    c.resume = true;
    assert!(err(&c, 2).contains("holds no checkpoint"));

    // Resume when the data is shorter than what the checkpoint consumed.
    let mut c = config(&dir, 4);
    c.resume = true;
    let e = err(&c, 1);
    assert!(e.contains("data ended after 1 batches"), "{e}");
    assert_eq!(before, snapshot(&dir));
}

#[test]
fn init_checkpoint_from_hugging_face_names_is_used() {
    let _rng = rng_lock();
    // The HF parity fixture's weights are a valid init for its config.
    let wpath =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/model/model_b.safetensors");
    let meta = tensorfile::load(&wpath).unwrap().metadata;
    let cfg: NezhaConfig = serde_json::from_str(&meta["nezha_config"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path(), 2);
    c.model = cfg;
    c.init_checkpoint = Some(wpath.clone());
    let data: Vec<Result<Batch>> = (0..1)
        .map(|i| {
            let mut b = make_batch(i, 2, 12, 2);
            for id in b.input_ids.iter_mut().chain(b.masked_lm_ids.iter_mut()) {
                *id %= 173;
            }
            Ok(b)
        })
        .collect();
    trainer::train(&c, data).unwrap();
    // lr(0) = 0: the saved weights are the init weights.
    let init = tensorfile::load(&wpath).unwrap();
    for (n, t) in final_weights(tmp.path()) {
        assert!(t.equal(init.get(&n).unwrap()), "{n}");
    }
}
