//! The trainer as the last operator of the graph: it takes batches from the
//! live stream's bounded channel, or from TFRecord files.

use std::path::PathBuf;

use anyhow::Context as _;
use nezha_stages::batch::Batching;
use nezha_stages::stage::Stage;
use nezha_stages::tfrecord::{decode_instance, open_records};
use nezha_stages::Batch;
use nezha_train::trainer::{train, StopReason, TrainConfig, TrainSummary};

use crate::pipeline::{start, Plan, TrainInput, TrainSource};

pub fn run(plan: &Plan, cfg: &TrainConfig, input: &TrainInput) -> anyhow::Result<()> {
    // `stop_after` ends the data where that step ends; the trainer then
    // checkpoints, and a resumed run skips what this one consumed.
    let limit = match input.stop_at_step {
        Some(k) => {
            let done = nezha_train::trainer::checkpoint::latest_data_position(&cfg.output_dir)?;
            let per_step = cfg.grad_accumulation as u64;
            let start = if cfg.resume { done.unwrap_or(0) } else { 0 };
            Some((start + k * per_step) as usize)
        }
        None => None,
    };
    let limit = limit.unwrap_or(usize::MAX);
    let summary = match &input.source {
        TrainSource::Stream => {
            let mut running = start::<Batch>(plan)?;
            let result = train(cfg, running.items.by_ref().map(Ok).take(limit));
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
            train(
                cfg,
                TfRecordBatches::new(files.clone(), batch_size, seq_len, max_predictions)
                    .take(limit),
            )?
        }
    };
    report(cfg, &summary);
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
