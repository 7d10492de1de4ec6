//! `[sink] kind = "check"`: every batch checked and counted, nothing
//! written. Under `nezha launch` each process checks its share of the
//! worker slots.

use std::time::Instant;

use nezha_stages::error::Result;
use nezha_stages::params::Params;
use nezha_stages::sinks::BatchCounter;
use nezha_stages::Batch;

use crate::plan::Plan;
use crate::progress::InputProgress;
use crate::rank_env::RankEnv;
use crate::registry::{Built, NoParams, OwnedParams, Settings};
use crate::resolve::{Resolved, RunOptions};
use crate::run::{start_shard, Shard};
use crate::sink::{Consumes, Sink};

pub struct CheckSink;

pub(super) fn build(
    _: &Params,
    _: NoParams,
    _: &OwnedParams,
    _: &Resolved,
) -> Result<Built<Box<dyn Sink>>> {
    Ok(Built::new(Box::new(CheckSink), Settings::new()))
}

impl Sink for CheckSink {
    fn consumes(&self) -> Consumes {
        Consumes::Batches
    }

    fn run(&self, plan: &Plan, _: &RunOptions) -> anyhow::Result<()> {
        let env = RankEnv::from_env()?;
        let shard = env
            .as_ref()
            .map_or(Shard { index: 0, count: 1 }, |e| Shard {
                index: e.rank,
                count: e.world_size,
            });
        let who = env.map_or(String::new(), |e| format!("{}: ", e.who()));
        let t0 = Instant::now();
        let counter = check_batches(plan, shard)?;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{who}checked {} batches: {} sequences, {} tokens, {} masked predictions, {:.1}% random next; {:.0} sequences/s over {:.2}s",
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
            "{who}masked {predicted:.2}% of the tokens (other than [CLS] and [SEP]): {as_mask:.2}% [MASK], {random:.2}% random, {:.2}% kept",
            predicted - as_mask - random
        );
        Ok(())
    }
}

/// Runs the plan's `shard` into the bounded channel and checks every batch.
pub fn check_batches(plan: &Plan, shard: Shard) -> anyhow::Result<BatchCounter> {
    let vocab = plan.resolved.vocab();
    let vocab_size = vocab.id_space();
    let mut running = start_shard::<Batch>(plan, shard)?;
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
