//! How many optimizer steps a live stream holds, known before training so
//! that a run asking for more is refused up front rather than ending with
//! "the data ran out" hours in.
//!
//! One pass of this rank's stream is counted (the pipeline makes batches
//! hundreds of times faster than the trainer takes them) and kept in
//! `output_dir/stream-size.json`, reused while the pipeline file, the input
//! files and the rank layout are unchanged, as Megatron keeps its sample
//! index beside the data. Over `epochs` passes the stream holds
//! `epochs × batches per pass`: exactly so with dynamic masking, which cuts
//! every pass alike (the batches that straddle passes only add), and to
//! within the few percent by which static masking's re-cut passes differ.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use nezha_pipeline::progress::InputProgress;
use nezha_pipeline::{start_pass, Plan, Shard};
use nezha_stages::atomic_file::write_file;
use nezha_stages::Batch;
use serde::{Deserialize, Serialize};

/// What a count was made of: a cached count is reused only for the same.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CountedFrom {
    pipeline: String,
    /// Each input file with its length and modification time (ns).
    inputs: Vec<(PathBuf, u64, u128)>,
    rank: usize,
    world: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    counted_from: CountedFrom,
    batches_per_pass: u64,
}

/// This rank's stream, in batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSize {
    pub batches_per_pass: u64,
    pub epochs: u64,
}

impl StreamSize {
    /// Optimizer steps the stream holds at `batches_per_step` batches each.
    pub fn steps(&self, batches_per_step: u64) -> u64 {
        self.batches_per_pass * self.epochs / batches_per_step.max(1)
    }

    /// The epochs `steps` steps need.
    pub fn epochs_for(&self, steps: u64, batches_per_step: u64) -> u64 {
        (steps * batches_per_step).div_ceil(self.batches_per_pass.max(1))
    }
}

/// Refuses a run of `steps` steps of `batches_per_step` batches that
/// `shard`'s stream of `plan` cannot feed, from one pass counted (or read
/// back from `output_dir`). The count is kept only for a run that goes on,
/// so a refused run writes nothing.
pub fn check_stream_holds(
    plan: &Plan,
    shard: Shard,
    output_dir: &Path,
    steps: u64,
    batches_per_step: u64,
) -> anyhow::Result<StreamSize> {
    let epochs = plan.resolved.generation.epochs() as u64;
    let counted_from = counted_from(plan, shard)?;
    let cache = output_dir.join("stream-size.json");
    let cached = read_cache(&cache, &counted_from);
    let size = StreamSize {
        batches_per_pass: match cached {
            Some(n) => n,
            None => count_pass(plan, shard)?,
        },
        epochs,
    };
    let held = size.steps(batches_per_step);
    if steps > held {
        anyhow::bail!(
            "{}: [train] steps = {steps}, but the stream holds {held} steps ({} batches per \
             pass on this rank × [masking] epochs = {} ÷ {batches_per_step} batches per \
             step); set [masking] epochs = {} or more, or steps = {held} or fewer",
            plan.file().display(),
            size.batches_per_pass,
            size.epochs,
            size.epochs_for(steps, batches_per_step),
        );
    }
    if cached.is_none() {
        let cached = Cached {
            counted_from,
            batches_per_pass: size.batches_per_pass,
        };
        std::fs::create_dir_all(output_dir)
            .with_context(|| format!("creating {}", output_dir.display()))?;
        write_file(&cache, &serde_json::to_vec_pretty(&cached)?)?;
    }
    Ok(size)
}

fn counted_from(plan: &Plan, shard: Shard) -> anyhow::Result<CountedFrom> {
    let files = plan
        .ingest
        .as_ref()
        .map(|i| i.files.to_vec())
        .unwrap_or_default();
    let inputs = files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).with_context(|| format!("reading {}", f.display()))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            Ok((f, meta.len(), mtime))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(CountedFrom {
        pipeline: plan.spec.source.clone(),
        inputs,
        rank: shard.index,
        world: shard.count,
    })
}

/// A count made of the same, or nothing (missing, unreadable or stale
/// caches are counted again: the cache only saves time).
fn read_cache(path: &Path, counted_from: &CountedFrom) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let cached: Cached = serde_json::from_slice(&bytes).ok()?;
    (cached.counted_from == *counted_from).then_some(cached.batches_per_pass)
}

fn count_pass(plan: &Plan, shard: Shard) -> anyhow::Result<u64> {
    let mut running = start_pass::<Batch>(plan, shard)?;
    let progress = (shard.index == 0).then(|| {
        InputProgress::new(
            running.total_bytes,
            running.bytes_read.clone(),
            "batches: counting one pass of the stream",
        )
    });
    let mut batches = 0u64;
    for _ in running.items.by_ref() {
        batches += 1;
        if batches.is_multiple_of(64) {
            if let Some(p) = &progress {
                p.update(batches);
            }
        }
    }
    if let Some(p) = &progress {
        p.finish();
    }
    running
        .finish()
        .context("counting the batches of one pass of the stream")?;
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_epochs_needed() {
        let s = StreamSize {
            batches_per_pass: 10,
            epochs: 3,
        };
        assert_eq!(s.steps(1), 30);
        assert_eq!(s.steps(4), 7);
        assert_eq!(s.epochs_for(31, 1), 4);
        assert_eq!(s.epochs_for(30, 1), 3);
        assert_eq!(s.epochs_for(8, 4), 4);
    }
}
