//! `[eval] holdout`: the held-out documents reach the evaluation stream
//! and never the training stream. Each document of a synthetic corpus is
//! written in characters no other document uses, so every token of an
//! instance names the document it came from.

use std::collections::HashMap;

use nezha_pipeline::{start, start_held_out, Plan};
use nezha_stages::Batch;

mod common;
use common::root;

const DOCS: usize = 40;
const CHARS_PER_DOC: usize = 12;

/// Single CJK characters of the vocab, with their ids.
fn cjk_tokens() -> Vec<(char, u32)> {
    std::fs::read_to_string(root().join("data/vocab.txt"))
        .unwrap()
        .lines()
        .enumerate()
        .filter_map(|(id, t)| {
            let mut chars = t.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if ('\u{4e00}'..='\u{9fff}').contains(&c) => Some((c, id as u32)),
                _ => None,
            }
        })
        .collect()
}

/// A batch's tokens before masking: each masked position's label put back
/// (a random replacement token may be any document's).
fn original_tokens(b: &Batch) -> Vec<i64> {
    let mut tokens = b.input_ids.clone();
    for row in 0..b.size {
        for k in 0..b.max_predictions {
            let slot = row * b.max_predictions + k;
            if b.masked_lm_weights[slot] > 0.0 {
                let at = row * b.seq_len + b.masked_lm_positions[slot] as usize;
                tokens[at] = b.masked_lm_ids[slot];
            }
        }
    }
    tokens
}

#[test]
fn held_out_documents_never_reach_training() {
    nezha_pipeline::registry::install(nezha::register);
    let dir = tempfile::tempdir().unwrap();
    let tokens = cjk_tokens();
    let mut owner: HashMap<u32, usize> = HashMap::new();
    let mut docs = Vec::new();
    for d in 0..DOCS {
        let own = &tokens[d * CHARS_PER_DOC..(d + 1) * CHARS_PER_DOC];
        for (_, id) in own {
            owner.insert(*id, d);
        }
        let sentences: Vec<String> = (0..8)
            .map(|s| {
                (0..10)
                    .map(|k| own[(s * 7 + k * 3) % CHARS_PER_DOC].0)
                    .chain(['。'])
                    .collect()
            })
            .collect();
        docs.push(sentences.join("\n"));
    }
    std::fs::write(dir.path().join("corpus.txt"), docs.join("\n\n")).unwrap();
    let toml = format!(
        r#"workers = 2
[ingest]
input = "corpus.txt"
[wordpiece]
vocab = "{}"
[instances]
max_seq_length = 32
dupe_factor = 3
[masking]
max_predictions_per_seq = 4
[batching]
batch_size = 2
[sink]
kind = "train"
[train]
model = "tiny"
output_dir = "out"
steps = 1
[eval]
holdout = 0.3
"#,
        root().join("data/vocab.txt").display()
    );
    let file = dir.path().join("p.toml");
    std::fs::write(&file, toml).unwrap();
    let plan = Plan::load(&file, Default::default()).unwrap();

    let docs_of = |batches: Vec<Batch>| -> Vec<usize> {
        let mut seen: Vec<usize> = batches
            .iter()
            .flat_map(original_tokens)
            .filter_map(|t| owner.get(&(t as u32)).copied())
            .collect();
        seen.sort();
        seen.dedup();
        seen
    };
    let mut training = start::<Batch>(&plan).unwrap();
    let trained = docs_of(training.items.by_ref().collect());
    training.finish().unwrap();
    let mut evaluation = start_held_out(&plan).unwrap();
    let held_out = docs_of(evaluation.items.by_ref().collect());
    evaluation.finish().unwrap();

    assert!(!held_out.is_empty() && !trained.is_empty());
    assert!(
        (3..=20).contains(&held_out.len()),
        "{} of {DOCS} documents held out at 0.3",
        held_out.len()
    );
    let leaked: Vec<_> = held_out.iter().filter(|d| trained.contains(d)).collect();
    assert!(
        leaked.is_empty(),
        "held-out documents {leaked:?} reached training"
    );
    assert_eq!(
        held_out.len() + trained.len(),
        DOCS,
        "every document is on one side"
    );
}
