//! A held-out share: its documents reach the evaluation stream and never
//! the training stream, on any number of workers.

use std::collections::BTreeSet;

use nezha_pipeline::registry::{Built, OwnedParams, Registry, Settings};
use nezha_pipeline::sink::{Consumes, Sink};
use nezha_pipeline::{start_held_out, start_shard, Plan, Resolved, RunOptions, Shard, Spec};
use nezha_stages::error::Result;
use nezha_stages::holdout::is_held_out;
use nezha_stages::params::Params;
use nezha_stages::{Batch, Document};
use serde::Deserialize;

/// A sink that only holds `fraction` of the documents out; the test
/// drives the streams itself.
struct HoldsOut(f64);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldsOutParams {
    fraction: f64,
}

impl Sink for HoldsOut {
    fn consumes(&self) -> Consumes {
        Consumes::Batches
    }
    fn run(&self, _: &Plan, _: &RunOptions) -> anyhow::Result<()> {
        Ok(())
    }
    fn holdout(&self) -> Option<f64> {
        Some(self.0)
    }
}

fn registry() -> Registry {
    let mut r = Registry::builtin();
    r.sink.add(
        "holds_out",
        &[],
        |_: &Params,
         p: HoldsOutParams,
         _: &OwnedParams,
         _: &Resolved|
         -> Result<Built<Box<dyn Sink>>> {
            Ok(Built::new(Box::new(HoldsOut(p.fraction)), Settings::new()))
        },
    );
    r
}

/// Every token a batch's sequences hold, the masked ones restored.
fn tokens(batches: &[Batch]) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for b in batches {
        let mut ids = b.input_ids.clone();
        for s in 0..b.size {
            for k in 0..b.max_predictions {
                let at = s * b.max_predictions + k;
                if b.masked_lm_weights[at] > 0.0 {
                    ids[s * b.seq_len + b.masked_lm_positions[at] as usize] = b.masked_lm_ids[at];
                }
            }
        }
        out.extend(ids);
    }
    out
}

#[test]
fn held_out_documents_never_reach_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Document i is three sentences of its own word w{i}: a token tells
    // which document it came from.
    let n = 300;
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut corpus = String::new();
    let mut held = BTreeSet::new();
    for i in 0..n {
        let line = format!("w{i} w{i} w{i} w{i}");
        corpus.push_str(&format!("{line}\n{line}\n{line}\n\n"));
        vocab.push(format!("w{i}"));
        let doc = Document {
            index: i,
            origin: String::new(),
            lines: vec![line.clone(), line.clone(), line],
        };
        if is_held_out(&doc, 0.2) {
            held.insert(5 + i as i64);
        }
    }
    std::fs::write(d.join("corpus.txt"), corpus).unwrap();
    std::fs::write(d.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    assert!((30..90).contains(&held.len()), "{} held out", held.len());
    let special: BTreeSet<i64> = (0..5).collect();

    for workers in [1, 3] {
        let spec = Spec::builder()
            .top("workers", workers)
            .set("ingest", "input", "corpus.txt")
            .set("wordpiece", "vocab", "vocab.txt")
            .set("instances", "max_seq_length", 16)
            .set("instances", "dupe_factor", 2)
            .set("masking", "max_predictions_per_seq", 3)
            .set("batching", "batch_size", 2)
            .set("sink", "kind", "holds_out")
            .set("sink", "fraction", 0.2)
            .build_in(d);
        let plan = Plan::build(spec, RunOptions::default(), &registry()).unwrap();
        assert_eq!(plan.holdout, Some(0.2));
        let collect = |mut running: nezha_pipeline::Running<Batch>| {
            let batches: Vec<Batch> = running.items.by_ref().collect();
            running.finish().unwrap();
            batches
        };
        let train = tokens(&collect(
            start_shard(&plan, Shard { index: 0, count: 1 }).unwrap(),
        ));
        let eval = tokens(&collect(start_held_out(&plan).unwrap()));
        let train_words: BTreeSet<i64> = train.difference(&special).copied().collect();
        let eval_words: BTreeSet<i64> = eval.difference(&special).copied().collect();
        assert!(
            train_words.is_disjoint(&held),
            "{workers} workers: a held-out document was trained on"
        );
        assert!(
            !eval_words.is_empty() && eval_words.is_subset(&held),
            "{workers} workers"
        );
        // Nearly every document lands on its side (a document whose
        // instances fill no complete batch may be missing).
        assert!(train_words.len() + held.len() > n as usize * 9 / 10);
    }
}
