//! The trainer as the last operator of the graph: it takes batches from the
//! live stream's bounded channel, or from TFRecord files.
//!
//! Started with torchrun's environment (`nezha launch` sets it), the process
//! is one rank of a data-parallel run: it joins the others ([`join`]), runs
//! its share of the dataflow's worker slots ([`Shard`]) or every
//! world-th batch of the TFRecord files, and trains with its gradients
//! averaged over all ranks.

use std::path::PathBuf;

use anyhow::Context as _;
use nezha_stages::batch::Batching;
use nezha_stages::stage::Stage;
use nezha_stages::tfrecord::{decode_instance, open_records};
use nezha_stages::Batch;
use nezha_train::trainer::{
    train_data_parallel, DataParallel, StopReason, TrainConfig, TrainSummary,
};

use super::launch::{join, Joined, RankEnv};
use crate::pipeline::{start_shard, Plan, Shard, TrainInput, TrainSource};

pub fn run(plan: &Plan, cfg: &TrainConfig, input: &TrainInput) -> anyhow::Result<()> {
    let Some(env) = RankEnv::from_env()? else {
        return run_rank(plan, cfg, input, None);
    };
    let who = env.who();
    if plan.ctx.reference && matches!(input.source, TrainSource::Stream) {
        anyhow::bail!(
            "{who}: [instances] kind = \"reference\" runs on one worker of one process; \
             data-parallel training streams with kind = \"streaming\", or reads tfrecords"
        );
    }
    let mut cfg = cfg.clone();
    let cuda = cfg.parse_device()?.is_cuda();
    if cuda && cfg.device.trim() == "cuda" {
        // Each process binds its own device.
        cfg.device = format!("cuda:{}", env.local_rank);
    }
    if !cuda && cfg.threads.is_none() {
        // The machine's cores are shared by its ranks, as torchrun's
        // OMP_NUM_THREADS does.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cfg.threads = Some((cores / env.local_world_size).max(1) as i32);
    }
    let joined = join(
        &env,
        &plan.file,
        plan.source.as_bytes(),
        cuda,
        input.collective_timeout,
    )?;
    let result = run_rank(plan, &cfg, input, Some(&joined));
    if let Err(e) = &result {
        // The others' diagnosis then says why this rank left.
        joined
            .heartbeat
            .leave(&format!("failed: {}", format!("{e:#}").replace('\n', " ")));
    }
    result
}

fn run_rank(
    plan: &Plan,
    cfg: &TrainConfig,
    input: &TrainInput,
    joined: Option<&Joined>,
) -> anyhow::Result<()> {
    let (rank, world) = joined.map_or((0, 1), |j| (j.env.rank, j.env.world_size));
    let dp = joined.map(|j| DataParallel {
        group: &j.group,
        bucket_bytes: nezha_dist::DEFAULT_BUCKET_BYTES,
        heartbeat: Some(&j.heartbeat),
    });
    let train = |batches: &mut dyn Iterator<Item = anyhow::Result<Batch>>| {
        train_data_parallel(cfg, batches, dp.as_ref())
    };
    // `stop_after` ends the data where that step ends; the trainer then
    // checkpoints, and a resumed run skips what this one consumed.
    let limit = match input.stop_at_step {
        Some(k) => {
            let done =
                nezha_train::trainer::checkpoint::latest_rank_position(&cfg.output_dir, rank)?;
            let per_step = cfg.grad_accumulation as u64;
            let start = if cfg.resume { done.unwrap_or(0) } else { 0 };
            Some((start + k * per_step) as usize)
        }
        None => None,
    };
    let limit = limit.unwrap_or(usize::MAX);
    let summary = match &input.source {
        TrainSource::Stream => {
            let shard = Shard {
                index: rank,
                count: world,
            };
            let mut running = start_shard::<Batch>(plan, shard)?;
            let result = train(&mut running.items.by_ref().map(Ok).take(limit));
            // The trainer may stop before the stream ends: ask the workers to
            // stop too, then collect their errors (a data error wins).
            running.stop();
            let data = running.finish();
            let summary = result?;
            data?;
            summary
        }
        TrainSource::TfRecords(files) => {
            let seq_len = plan.ctx.max_seq_length.expect("[instances] built");
            let max_predictions = plan
                .ctx
                .masking
                .as_ref()
                .expect("[masking] built")
                .max_predictions_per_seq;
            let batch_size = plan
                .ctx
                .batch_size
                .context("training from TFRecords needs [batching] batch_size")?;
            // Rank r takes batches r, r + world, …: global step k's batches
            // are then records k·world·b .. (k+1)·world·b, what one process
            // with batch world·b would take.
            train(
                &mut TfRecordBatches::new(files.clone(), batch_size, seq_len, max_predictions)
                    .enumerate()
                    .filter(|(i, b)| b.is_err() || i % world == rank)
                    .map(|(_, b)| b)
                    .take(limit),
            )?
        }
    };
    if rank == 0 {
        report(cfg, &summary);
    }
    Ok(())
}

fn report(cfg: &TrainConfig, s: &TrainSummary) {
    let why = match s.stopped {
        StopReason::ReachedTotalSteps => "reached the last step",
        StopReason::DataExhausted => "the data ran out",
    };
    println!(
        "trained to step {} ({why}); {} batches consumed, {} steps skipped as non-finite",
        s.step, s.batches_consumed, s.skipped_steps
    );
    if let (Some(first), Some(last)) = (s.metrics.first(), s.metrics.last()) {
        println!(
            "loss {:.4} -> {:.4}, masked-LM accuracy {:.3} -> {:.3}; data wait {:.2}% of the time",
            first.loss,
            last.loss,
            first.mlm_acc,
            last.mlm_acc,
            100.0 * s.metrics.iter().map(|m| m.data_wait_frac).sum::<f64>()
                / s.metrics.len() as f64
        );
    }
    if let Some(c) = &s.last_checkpoint {
        println!("checkpoint: {}", c.display());
    }
    println!(
        "metrics, TensorBoard events and the loss plot: {}",
        cfg.output_dir.display()
    );
}

/// Batches read back from TFRecord files in the reference layout, files in
/// order, every record checked (CRC, feature names, lengths).
struct TfRecordBatches {
    files: std::vec::IntoIter<PathBuf>,
    records: Option<(
        PathBuf,
        nezha_stages::tfrecord::RecordReader<Box<dyn std::io::Read>>,
    )>,
    batching: Batching,
    ready: std::collections::VecDeque<Batch>,
    seq_len: usize,
    max_predictions: usize,
    index: u64,
    done: bool,
}

impl TfRecordBatches {
    fn new(files: Vec<PathBuf>, batch_size: usize, seq_len: usize, max_predictions: usize) -> Self {
        TfRecordBatches {
            files: files.into_iter(),
            records: None,
            batching: Batching::new(batch_size, seq_len, max_predictions, false),
            ready: Default::default(),
            seq_len,
            max_predictions,
            index: 0,
            done: false,
        }
    }

    fn fill(&mut self) -> anyhow::Result<()> {
        while self.ready.is_empty() && !self.done {
            if self.records.is_none() {
                match self.files.next() {
                    Some(f) => self.records = Some((f.clone(), open_records(&f)?)),
                    None => {
                        self.done = true;
                        break;
                    }
                }
            }
            let (path, reader) = self.records.as_mut().expect("opened above");
            match reader.next() {
                Some(record) => {
                    let bytes = record?;
                    let inst = decode_instance(&bytes, self.seq_len, self.max_predictions)
                        .with_context(|| {
                            format!("{}: record {}", path.display(), reader.records_read() - 1)
                        })?;
                    self.index += 1;
                    let ready = &mut self.ready;
                    self.batching.push(inst, &mut |b| ready.push_back(b))?;
                }
                None => self.records = None,
            }
        }
        Ok(())
    }
}

impl Iterator for TfRecordBatches {
    type Item = anyhow::Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            self.done = true;
            self.ready.clear();
            return Some(Err(e));
        }
        self.ready.pop_front().map(Ok)
    }
}
