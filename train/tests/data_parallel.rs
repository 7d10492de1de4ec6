//! Data parallelism on the CPU over Gloo on loopback: two processes with
//! batch b train to the same parameters as one process with batch 2b on the
//! same stream (with and without gradient accumulation, with the gradient
//! all-reduce overlapping backward or after it), only rank 0 writes,
//! and a checkpoint of two ranks refuses a resume by one.
//!
//! A test spawns its own binary once per rank, filtered to the same test,
//! with torchrun's variables; the child sees them and plays its rank.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nezha_c10d::{GlooDevice, Heartbeat, ProcessGroup, Store};
use nezha_stages::Batch;
use nezha_train::model::NezhaConfig;
use nezha_train::optim::Schedule;
use nezha_train::trainer::{self, checkpoint, metrics, DataParallel, TrainConfig};

const CHILD: &str = "NEZHA_TRAIN_DP_TEST_CHILD";
/// Sequences per rank per micro-batch.
const B: usize = 3;
const SEQ: usize = 16;
const PREDICTIONS: usize = 3;
const STEPS: u64 = 4;

static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn model_config() -> NezhaConfig {
    NezhaConfig {
        // Dropout masks cannot be the same for a batch of 2b and two of b.
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..common::small_model()
    }
}

fn config(dir: &Path, accum: u32) -> TrainConfig {
    let mut c = TrainConfig::new(model_config(), dir);
    c.schedule = Schedule::new(2e-3, 1, STEPS);
    c.grad_accumulation = accum;
    c.save_every = 2;
    c.progress_bar = false;
    c.tensorboard = false;
    c.plot = false;
    c.seed = 11;
    c.threads = Some(1);
    c
}

/// Row `row` of global micro-batch `k`: a pure function of (k, row), so any
/// split of a batch into ranks sees the same sequences. Every sequence has
/// the same number of weighted predictions, so the mean of the ranks' losses
/// is the loss of the whole batch (the MLM loss divides by the batch's Σw).
fn push_row(b: &mut Batch, k: u64, row: u64) {
    common::push_row(b, &mut common::Lcg::new(k * 1000 + row), SEQ, PREDICTIONS);
}

/// Micro-batch `k` of the stream as seen by `rank` of `world` ranks of
/// `B` sequences each: rows rank·B .. (rank+1)·B of the global batch.
fn shard(k: u64, rank: usize, world: usize) -> Batch {
    let size = if world == 1 { 2 * B } else { B };
    let mut b = Batch::with_capacity(size, SEQ, PREDICTIONS);
    b.size = size;
    let first = if world == 1 { 0 } else { rank * B };
    for row in first..first + size {
        push_row(&mut b, k, row as u64);
    }
    b
}

fn stream(rank: usize, world: usize) -> impl Iterator<Item = anyhow::Result<Batch>> {
    (0..).map(move |k| Ok(shard(k, rank, world)))
}

/// The child's side: join over loopback and train this rank's share.
fn play_rank(accum: u32, overlap: bool) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("child without {k}"));
    let rank: usize = var("RANK").parse().unwrap();
    let world: usize = var("WORLD_SIZE").parse().unwrap();
    let port: u16 = var("MASTER_PORT").parse().unwrap();
    let dir = PathBuf::from(var("NEZHA_TEST_OUT"));
    let timeout = Duration::from_secs(60);
    let store =
        std::sync::Arc::new(Store::new("127.0.0.1", port, world, rank == 0, timeout).unwrap());
    let group = ProcessGroup::gloo_on(
        &store,
        rank,
        world,
        timeout,
        &GlooDevice::Hostname("127.0.0.1".into()),
    )
    .unwrap();
    let heartbeat =
        Heartbeat::start(store.clone(), rank, world, Duration::from_millis(200)).unwrap();
    let dp = DataParallel {
        group: &group,
        bucket_bytes: 16 * 1024, // several buckets even for this model
        heartbeat: Some(&heartbeat),
    };
    let mut cfg = config(&dir, accum);
    cfg.overlap_all_reduce = overlap;
    let summary = trainer::train_data_parallel(&cfg, stream(rank, world), Some(&dp)).unwrap();
    assert_eq!(summary.step, STEPS);
    assert_eq!(summary.batches_consumed, STEPS * accum as u64);
    assert_eq!(summary.last_checkpoint.is_some(), rank == 0);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `test` as `world` child processes and requires all to succeed
/// within two minutes.
fn spawn_ranks(test: &str, world: usize, out: &Path) {
    let port = free_port();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..world)
        .map(|rank| {
            Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, test)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_PORT", port.to_string())
                .env("NEZHA_TEST_OUT", out)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut codes = vec![None; world];
    while codes.iter().any(Option::is_none) {
        for (i, c) in children.iter_mut().enumerate() {
            if codes[i].is_none() {
                if let Some(s) = c.try_wait().unwrap() {
                    codes[i] = Some(s.code());
                }
            }
        }
        if Instant::now() > deadline {
            for c in &mut children {
                let _ = c.kill();
            }
            panic!("ranks still running after 120 s: {codes:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        codes.iter().all(|c| *c == Some(Some(0))),
        "rank exit codes {codes:?}"
    );
}

fn final_weights(dir: &Path) -> (checkpoint::Loaded, Vec<(String, tch::Tensor)>) {
    let (_, newest) = checkpoint::list(dir).unwrap().pop().unwrap();
    let loaded = checkpoint::load(&newest).unwrap();
    let model = loaded
        .model
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    (loaded, model)
}

fn equivalence(test: &str, accum: u32, overlap: bool) {
    if std::env::var(CHILD).ok().as_deref() == Some(test) {
        play_rank(accum, overlap);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    spawn_ranks(test, 2, &two);
    {
        let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
        trainer::train(&config(&one, accum), stream(0, 1)).unwrap();
    }

    let (state_two, two_w) = final_weights(&two);
    let (state_one, one_w) = final_weights(&one);
    assert_eq!(state_two.state.step, STEPS);
    assert_eq!(state_two.state.world_size, 2);
    assert_eq!(
        state_two.state.rank_positions,
        vec![STEPS * accum as u64; 2],
        "each rank's data position"
    );
    assert_eq!(state_one.state.world_size, 1);

    // The same parameters: each tensor within 1e-5 of its norm. The
    // attention key biases get no gradient in exact arithmetic (softmax is
    // invariant to them): they stay at rounding-noise level (~1e-9), where
    // any two summation orders differ, so they are held to 1e-8 absolute.
    let init = {
        let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(11);
        nezha_train::model::NezhaForPreTraining::new(&model_config(), tch::Device::Cpu).unwrap()
    };
    let init: std::collections::HashMap<String, tch::Tensor> =
        init.params.handles().into_iter().collect();
    assert_eq!(one_w.len(), two_w.len());
    let mut worst = 0.0f64;
    let mut moved = 0.0f64;
    for ((name, a), (name_b, b)) in two_w.iter().zip(&one_w) {
        assert_eq!(name, name_b);
        let norm = b.norm().double_value(&[]);
        let diff = (a - b).norm().double_value(&[]);
        let largest = (a - b).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-5 * norm || largest <= 1e-8,
            "{name}: two ranks differ from one by {diff:e} (norm {norm:e})"
        );
        if largest > 1e-8 {
            worst = worst.max(diff / norm);
        }
        moved = moved.max((b - &init[name]).norm().double_value(&[]) / norm.max(1e-12));
    }
    eprintln!("accumulation {accum}: largest relative difference {worst:.3e}, update {moved:.3e}");
    assert!(
        moved > 1e-3,
        "training barely changed the weights ({moved:e})"
    );

    // Only rank 0 wrote metrics: one line per step, the whole batch's loss.
    let m_two = metrics::read(&two.join("metrics.jsonl")).unwrap();
    let m_one = metrics::read(&one.join("metrics.jsonl")).unwrap();
    assert_eq!(m_two.len(), STEPS as usize);
    for (a, b) in m_two.iter().zip(&m_one) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-4 * b.loss.abs(),
            "step {}: loss {} with two ranks, {} with one",
            a.step,
            a.loss,
            b.loss
        );
    }

    // A checkpoint of two ranks is not resumed by one.
    let mut cfg = config(&two, accum);
    cfg.resume = true;
    cfg.schedule = Schedule::new(2e-3, 1, STEPS + 2);
    let err = {
        let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
        trainer::train(&cfg, stream(0, 1)).unwrap_err()
    };
    let msg = format!("{err:#}");
    assert!(
        msg.contains("written by a run of 2 process(es) and this run has 1")
            && msg.contains("init_checkpoint"),
        "{msg}"
    );
}

#[test]
fn two_ranks_of_batch_b_equal_one_of_batch_2b() {
    equivalence("two_ranks_of_batch_b_equal_one_of_batch_2b", 1, true);
}

#[test]
fn two_ranks_equal_one_with_gradient_accumulation() {
    equivalence("two_ranks_equal_one_with_gradient_accumulation", 2, true);
}

#[test]
fn two_ranks_equal_one_with_the_all_reduce_after_backward() {
    equivalence(
        "two_ranks_equal_one_with_the_all_reduce_after_backward",
        2,
        false,
    );
}
