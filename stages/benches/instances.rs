//! Instances per second of the instance generators and masking, on
//! pre-tokenized documents (so no tokenizer cost), one thread each.
//!
//! `cargo bench -p nezha-stages --bench instances`
//!
//! Data: sentence-like synthetic documents (1–40 segments of 4–44 tokens),
//! and the reference's own tokenized documents of the `en128` golden case,
//! repeated.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nezha_stages::instances::{
    ReferenceInstances, ReferenceParams, StreamingInstances, StreamingParams,
};
use nezha_stages::masking::{MaskingParams, MaskingStage};
use nezha_stages::stage::Stage;
use nezha_stages::{TokenizedDocument, Vocab};

const MAX_SEQ_LENGTH: usize = 128;
const DUPE_FACTOR: usize = 5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn synthetic(num_docs: u64) -> Vec<TokenizedDocument> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    (0..num_docs)
        .map(|index| TokenizedDocument {
            index,
            segments: (0..1 + next(40))
                .map(|_| {
                    (0..4 + next(41))
                        .map(|_| 1000 + next(20_000) as u32)
                        .collect()
                })
                .collect(),
        })
        .collect()
}

fn golden_en128(copies: u64) -> Vec<TokenizedDocument> {
    let path = root().join("tests/fixtures/golden/en128/documents.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("golden documents"))
        .read_to_string(&mut text)
        .expect("golden documents");
    let docs: Vec<Vec<Vec<u32>>> = serde_json::from_str(&text).expect("golden documents");
    (0..copies)
        .flat_map(|_| docs.iter().cloned())
        .enumerate()
        .map(|(index, segments)| TokenizedDocument {
            index: index as u64,
            segments,
        })
        .collect()
}

fn masking_params() -> MaskingParams {
    MaskingParams {
        masked_lm_prob: 0.15,
        max_predictions_per_seq: 20,
    }
}

/// Best of three runs: (instances, seconds).
fn best_of_three(mut run: impl FnMut() -> usize) -> (usize, Duration) {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            let n = run();
            (n, start.elapsed())
        })
        .min_by_key(|&(_, t)| t)
        .unwrap()
}

fn report(what: &str, data: &str, (n, t): (usize, Duration)) {
    println!(
        "{what:<34} {data:<10} {n:>9} instances in {:>7.3} s = {:>10.0} instances/s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
}

fn main() {
    let vocab = Arc::new(Vocab::load(&root().join("data/vocab.txt")).expect("data/vocab.txt"));
    for (data, docs) in [
        ("synthetic", synthetic(20_000)),
        ("en128 x50", golden_en128(50)),
    ] {
        let reference = best_of_three(|| {
            let mut stage = ReferenceInstances::new(ReferenceParams {
                max_seq_length: MAX_SEQ_LENGTH,
                short_seq_prob: 0.1,
                dupe_factor: DUPE_FACTOR,
                masked_lm_prob: 0.15,
                max_predictions_per_seq: 20,
                random_seed: 12345,
                vocab: vocab.clone(),
            })
            .unwrap();
            let mut n = 0;
            for doc in docs.iter().cloned() {
                stage.push(doc, &mut |_| n += 1).unwrap();
            }
            stage.finish(&mut |_| n += 1).unwrap();
            n
        });
        report("reference (PyRandom, masked)", data, reference);

        let params = StreamingParams::new(MAX_SEQ_LENGTH, 0.1, DUPE_FACTOR, 12345, 0);
        let streaming = best_of_three(|| {
            let mut stage = StreamingInstances::new(params, &vocab).unwrap();
            let mut n = 0;
            for doc in docs.iter().cloned() {
                stage.push(doc, &mut |_| n += 1).unwrap();
            }
            stage.finish(&mut |_| n += 1).unwrap();
            n
        });
        report("streaming instances (unmasked)", data, streaming);

        let both = best_of_three(|| {
            let mut stage = StreamingInstances::new(params, &vocab).unwrap();
            let mut masking = MaskingStage::new(masking_params(), vocab.clone(), 12345, 0).unwrap();
            let mut n = 0;
            let mut sink = |inst| masking.push(inst, &mut |_| n += 1).unwrap();
            for doc in docs.iter().cloned() {
                stage.push(doc, &mut sink).unwrap();
            }
            stage.finish(&mut sink).unwrap();
            n
        });
        report("streaming instances + masking", data, both);
    }
}
