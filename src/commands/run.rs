use std::path::Path;
use std::time::Instant;

use nezha_stages::data::Instance;
use nezha_stages::sinks::{BatchCounter, TfRecordSink, WriteSummary};
use nezha_stages::Batch;

use crate::pipeline::{start, Plan, RunOptions, SinkPlan};
use crate::progress::InputProgress;

/// `nezha run pipeline.toml`: runs the graph the file describes.
pub fn run(file: &Path, options: RunOptions) -> anyhow::Result<()> {
    let plan = Plan::load(file, options)?;
    match &plan.sink {
        SinkPlan::TfRecord(sink) => {
            let summary = write_tfrecords(&plan, sink)?;
            print_write_summary(&summary);
        }
        SinkPlan::Check => {
            let t0 = Instant::now();
            let counter = check_batches(&plan)?;
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "checked {} batches: {} sequences, {} tokens, {} masked predictions, {:.1}% random next; {:.0} sequences/s over {:.2}s",
                counter.batches,
                counter.sequences,
                counter.tokens,
                counter.predictions,
                100.0 * counter.random_next as f64 / counter.sequences.max(1) as f64,
                counter.sequences as f64 / secs,
                secs
            );
            let (predicted, as_mask, random) = counter.mask_rates();
            println!(
                "masked {predicted:.2}% of the tokens (other than [CLS] and [SEP]): {as_mask:.2}% [MASK], {random:.2}% random, {:.2}% kept",
                predicted - as_mask - random
            );
        }
        SinkPlan::Train(cfg, input) => super::train::run(&plan, cfg, input)?,
    }
    Ok(())
}

/// Runs the plan into TFRecord files. The files appear only if the whole
/// run succeeds.
pub fn write_tfrecords(plan: &Plan, sink: &TfRecordSink) -> anyhow::Result<WriteSummary> {
    let t0 = Instant::now();
    let mut writers = sink.open()?;
    let mut running = start::<Instance>(plan)?;
    let progress = InputProgress::new(running.total_bytes, running.bytes_read.clone(), "instances");
    let mut n = 0u64;
    let mut failed = None;
    for inst in running.items.by_ref() {
        if let Err(e) = writers.write(&inst) {
            failed = Some(e);
            running.stop();
            break;
        }
        n += 1;
        if n.is_multiple_of(4096) {
            progress.update(n);
        }
    }
    progress.finish();
    running.finish()?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if n == 0 {
        anyhow::bail!(
            "the corpus gave no instances: no input document had any token ({} input files)",
            plan.ingest.as_ref().map_or(0, |i| i.files.len())
        );
    }
    let mut summary = writers.commit()?;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}

pub fn print_write_summary(s: &WriteSummary) {
    println!(
        "wrote {} instances ({:.1} MB) in {:.2}s, {:.0} instances/s:",
        s.records,
        s.bytes as f64 / 1e6,
        s.seconds,
        s.records as f64 / s.seconds.max(1e-9)
    );
    for (path, count) in &s.per_file {
        println!("  {}: {count} records", path.display());
    }
}

/// Runs the plan into the bounded channel and checks every batch.
pub fn check_batches(plan: &Plan) -> anyhow::Result<BatchCounter> {
    let vocab = plan.ctx.vocab.as_ref().expect("wordpiece built");
    let vocab_size = vocab.id_space();
    let mut running = start::<Batch>(plan)?;
    let progress = InputProgress::new(running.total_bytes, running.bytes_read.clone(), "sequences");
    let mut counter = BatchCounter::default();
    let mut failed = None;
    for batch in running.items.by_ref() {
        if let Err(e) = counter.add(&batch, vocab_size) {
            failed = Some(e);
            running.stop();
            break;
        }
        counter.add_masks(&batch, vocab.mask);
        progress.update(counter.sequences);
    }
    progress.finish();
    running.finish()?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if counter.batches == 0 {
        anyhow::bail!("the corpus gave no complete batch");
    }
    Ok(counter)
}
