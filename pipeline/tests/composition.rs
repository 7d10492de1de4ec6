//! Composing pipelines from outside the core: a sink registered by this
//! test crate, a pipeline put together in code, and the printed plan.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nezha_pipeline::registry::{Built, OwnedParams, OwnedSection, Registry, Settings};
use nezha_pipeline::sink::{Consumes, Sink};
use nezha_pipeline::{start, Plan, Resolved, RunOptions, Spec};
use nezha_stages::error::Result;
use nezha_stages::params::Params;
use nezha_stages::Batch;
use serde::Deserialize;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

/// A sink that counts the sequences it gets, and the masked predictions
/// its own `[tally]` section asks it to look for.
struct Tally {
    sequences: Arc<AtomicU64>,
    limit: u64,
    label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TallyParams {
    /// Stop after this many batches.
    batches: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TallySection {
    label: String,
}

impl Sink for Tally {
    fn consumes(&self) -> Consumes {
        Consumes::Batches
    }

    fn run(&self, plan: &Plan, _: &RunOptions) -> anyhow::Result<()> {
        let mut running = start::<Batch>(plan)?;
        for batch in running.items.by_ref().take(self.limit as usize) {
            self.sequences
                .fetch_add(batch.size as u64, Ordering::Relaxed);
        }
        running.stop();
        running.finish()
    }

    fn owned_settings(&self) -> Vec<(&'static str, Settings)> {
        vec![("tally", Settings::new().set("label", &self.label))]
    }
}

fn registry(counter: Arc<AtomicU64>) -> Registry {
    let mut r = Registry::builtin();
    r.sink.add(
        "tally",
        &[OwnedSection::of::<TallySection>("tally")],
        move |p: &Params,
              t: TallyParams,
              owned: &OwnedParams,
              _: &Resolved|
              -> Result<Built<Box<dyn Sink>>> {
            let Some(section) = owned.get("tally").copied().flatten() else {
                return Err(p.error(
                    p.span.clone(),
                    "[sink] kind = \"tally\" needs [tally]".into(),
                ));
            };
            let own: TallySection = section.parse()?;
            Ok(Built::new(
                Box::new(Tally {
                    sequences: counter.clone(),
                    limit: t.batches,
                    label: own.label,
                }),
                Settings::new().set("batches", t.batches),
            ))
        },
    );
    r
}

/// What `Plan::build` says about a pipeline it refuses.
fn refusal(spec: Spec, registry: &Registry) -> String {
    match Plan::build(spec, RunOptions::default(), registry) {
        Ok(_) => panic!("the pipeline was accepted"),
        Err(e) => e.to_string(),
    }
}

fn builder(sink: &str) -> nezha_pipeline::spec::SpecBuilder {
    Spec::builder()
        .top("seed", 7)
        .top("workers", 2)
        .set(
            "ingest",
            "input",
            data().join("sanguo.txt").to_str().unwrap(),
        )
        .set("sentences", "kind", "punct")
        .set(
            "wordpiece",
            "vocab",
            data().join("vocab.txt").to_str().unwrap(),
        )
        .set("instances", "max_seq_length", 64)
        .set("instances", "dupe_factor", 1)
        .set("batching", "batch_size", 4)
        .set("sink", "kind", sink)
}

#[test]
fn a_sink_registered_outside_the_core_runs_a_pipeline() {
    let counter = Arc::new(AtomicU64::new(0));
    let spec = builder("tally")
        .set("sink", "batches", 5)
        .set("tally", "label", "seen")
        .build_in(Path::new("."));
    let plan = Plan::build(spec, RunOptions::default(), &registry(counter.clone())).unwrap();
    assert_eq!(plan.sink.consumes(), Consumes::Batches);
    plan.run(&RunOptions::default()).unwrap();
    assert_eq!(counter.load(Ordering::Relaxed), 5 * 4);
    // Its own section and settings show in the printed plan.
    let printed = plan.to_toml();
    assert!(printed.contains("[tally]\nlabel = \"seen\""), "{printed}");
    assert!(printed.contains("batches = 5"), "{printed}");

    // The registry it is missing from does not know it, and says which do.
    let spec = builder("tally")
        .set("sink", "batches", 5)
        .build_in(Path::new("."));
    let err = refusal(spec, &Registry::builtin());
    assert!(
        err.contains("unknown kind \"tally\"") && err.contains("check"),
        "{err}"
    );

    // Its section is refused when another sink is chosen.
    let spec = builder("check")
        .set("tally", "label", "x")
        .build_in(Path::new("."));
    let err = refusal(spec, &registry(counter));
    assert!(
        err.contains("[tally] is read by another kind of sink"),
        "{err}"
    );
}

#[test]
fn the_printed_plan_fills_every_default_and_runs_as_it_is() {
    let spec = builder("check").build_in(Path::new("."));
    let plan = Plan::build(spec.clone(), RunOptions::default(), &Registry::builtin()).unwrap();
    let printed = plan.to_toml();
    for line in [
        "seed = 7",
        "workers = 2",
        "kind = \"text\"",
        "document_per_file = true",
        "kind = \"punct\"",
        "do_lower_case = true",
        "kind = \"streaming\"",
        "short_seq_prob = 0.1",
        "reservoir_documents = 1000",
        "shuffle_buffer = 10000",
        "kind = \"static\"",
        "masked_lm_prob = 0.15",
        "max_predictions_per_seq = 20",
        "keep_remainder = false",
        "kind = \"check\"",
    ] {
        assert!(printed.contains(line), "{line:?} missing from\n{printed}");
    }
    // Read back, it is the same pipeline.
    let again = Plan::build(
        Spec::from_text(Path::new("printed.toml"), &printed),
        RunOptions::default(),
        &Registry::builtin(),
    )
    .unwrap();
    assert_eq!(again.to_toml(), printed);
    assert_eq!(again.resolved.instances, plan.resolved.instances);
    assert_eq!(again.resolved.masking, plan.resolved.masking);
}

#[test]
fn a_pipeline_in_code_equals_the_same_pipeline_in_toml() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "seed = 7\nworkers = 2\n[ingest]\ninput = {:?}\n[sentences]\nkind = \"punct\"\n\
         [wordpiece]\nvocab = {:?}\n[instances]\nmax_seq_length = 64\ndupe_factor = 1\n\
         [batching]\nbatch_size = 4\n[sink]\nkind = \"check\"\n",
        data().join("sanguo.txt"),
        data().join("vocab.txt"),
    );
    let file = dir.path().join("p.toml");
    std::fs::write(&file, toml).unwrap();
    let from_file = Plan::load(&file, RunOptions::default()).unwrap();
    let from_code = Plan::build(
        builder("check").build_in(dir.path()),
        RunOptions::default(),
        &Registry::builtin(),
    )
    .unwrap();
    assert_eq!(from_code.to_toml(), from_file.to_toml());
}

#[test]
fn builder_errors_point_into_the_pipeline_they_describe() {
    let spec = builder("check")
        .set("instances", "max_seq_length", 4)
        .build_in(Path::new("."));
    let err = refusal(spec, &Registry::builtin());
    assert!(err.contains("<pipeline built in code>:"), "{err}");
    assert!(
        err.contains("[instances] max_seq_length: 4 is too small"),
        "{err}"
    );
}
