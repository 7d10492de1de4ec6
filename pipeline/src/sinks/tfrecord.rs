//! `[sink] kind = "tfrecord"`: the reference's TFRecord files.

use std::time::Instant;

use nezha_stages::data::Instance;
use nezha_stages::error::Result;
use nezha_stages::ingest::InputList;
use nezha_stages::params::Params;
use nezha_stages::sinks::{TfRecordSink, WriteSummary};
use serde::Deserialize;
use toml::Spanned;

use crate::plan::Plan;
use crate::progress::InputProgress;
use crate::rank_env::RankEnv;
use crate::registry::{Built, OwnedParams, Settings};
use crate::resolve::{Resolved, RunOptions};
use crate::run::start;
use crate::sink::{Consumes, Sink};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TfRecordParams {
    /// One path, a comma-separated list, or a list: the reference spreads
    /// instances over its output files round-robin.
    output: Spanned<InputList>,
    gzip: Option<bool>,
}

/// Writes the stream into TFRecord files; they appear only when complete.
pub struct TfRecordOutput(pub TfRecordSink);

pub(super) fn build(
    p: &Params,
    t: TfRecordParams,
    _: &OwnedParams,
    resolved: &Resolved,
) -> Result<Built<Box<dyn Sink>>> {
    let outputs: Vec<std::path::PathBuf> = t
        .output
        .get_ref()
        .entries()
        .iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| resolved.resolve(s))
        .collect();
    if outputs.is_empty() {
        return Err(p.invalid(&t.output, "output", "names no file"));
    }
    let gzip = t.gzip.unwrap_or(false);
    let settings = Settings::new().set("output", &outputs).set("gzip", gzip);
    let sink = TfRecordSink {
        outputs,
        gzip,
        max_seq_length: resolved.instances.max_seq_length,
        max_predictions_per_seq: resolved.masking.max_predictions_per_seq,
    };
    Ok(Built::new(Box::new(TfRecordOutput(sink)), settings))
}

impl Sink for TfRecordOutput {
    fn consumes(&self) -> Consumes {
        Consumes::Instances
    }

    fn run(&self, plan: &Plan, _: &RunOptions) -> anyhow::Result<()> {
        if let Some(env) = RankEnv::from_env()? {
            anyhow::bail!(
                "{}: [sink] kind = \"tfrecord\" writes its files from one process; run it \
                 with `nezha run`, not under `nezha launch`",
                env.who()
            );
        }
        let summary = write_tfrecords(plan, &self.0)?;
        print_write_summary(&summary);
        Ok(())
    }
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
