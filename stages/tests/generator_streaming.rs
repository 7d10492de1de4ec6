//! The streaming-mode instance stage, followed by the masking stage.

use std::path::Path;
use std::sync::Arc;

use nezha_stages::instances::{StreamingInstances, StreamingParams};
use nezha_stages::masking::{MaskingParams, MaskingStage};
use nezha_stages::stage::{run_all, Stage};
use nezha_stages::{Instance, TokenizedDocument, Vocab};

fn vocab() -> Arc<Vocab> {
    let words: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..995).map(|i| format!("w{i}")))
        .collect();
    Arc::new(Vocab::parse(&words.join("\n"), Path::new("test-vocab")).unwrap())
}

/// Token ids encode where they come from: document d, segment s, position t
/// is `TAG + d * 10_000 + s * 100 + t`, so tests can tell actual next from
/// random next segments.
const TAG: u32 = 1_000_000;

fn corpus(num_docs: u64, seed: u64) -> Vec<TokenizedDocument> {
    // A cheap deterministic shape generator, independent of the code under test.
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    (0..num_docs)
        .map(|d| {
            let segments = (0..1 + next(30))
                .map(|s| {
                    (0..3 + next(40))
                        .map(|t| TAG + (d * 10_000 + s * 100 + t) as u32)
                        .collect()
                })
                .collect();
            TokenizedDocument { index: d, segments }
        })
        .collect()
}

fn params(seed: u64, worker: usize) -> StreamingParams {
    StreamingParams {
        max_seq_length: 128,
        short_seq_prob: 0.1,
        dupe_factor: 3,
        reservoir_docs: 50,
        shuffle_buffer: 500,
        seed,
        worker,
    }
}

fn origin(token: u32) -> (u32, u32) {
    let x = token - TAG;
    (x / 10_000, x % 10_000 / 100)
}

fn generate(p: StreamingParams, docs: Vec<TokenizedDocument>) -> Vec<Instance> {
    run_all(&mut StreamingInstances::new(p, &vocab()).unwrap(), docs).unwrap()
}

#[test]
fn same_seed_and_worker_give_the_same_stream() {
    let a = generate(params(1, 0), corpus(300, 1));
    let b = generate(params(1, 0), corpus(300, 1));
    assert_eq!(a, b);
    assert!(a.len() > 1000, "{} instances", a.len());
}

#[test]
fn other_seeds_and_workers_give_other_streams() {
    let a = generate(params(1, 0), corpus(300, 1));
    let other_seed = generate(params(2, 0), corpus(300, 1));
    let other_worker = generate(params(1, 1), corpus(300, 1));
    assert_ne!(a, other_seed);
    assert_ne!(a, other_worker);
}

#[test]
fn memory_stays_bounded() {
    let p = params(3, 0);
    let mut stage = StreamingInstances::new(p, &vocab()).unwrap();
    let mut emitted = 0;
    for doc in corpus(2000, 3) {
        stage.push(doc, &mut |_| emitted += 1).unwrap();
        assert!(stage.reservoir_len() <= p.reservoir_docs);
        assert!(stage.buffered() <= p.shuffle_buffer);
    }
    assert_eq!(stage.reservoir_len(), p.reservoir_docs);
    assert_eq!(stage.buffered(), p.shuffle_buffer);
    stage.finish(&mut |_| emitted += 1).unwrap();
    assert_eq!(stage.buffered(), 0);
    assert!(emitted > 10 * p.shuffle_buffer);
}

#[test]
fn instances_are_well_formed_and_segments_come_from_the_right_place() {
    let p = params(4, 2);
    let v = vocab();
    let instances = generate(p, corpus(400, 4));
    for inst in &instances {
        let t = &inst.tokens;
        let a = inst.segment_a_len as usize;
        assert!(t.len() <= p.max_seq_length);
        assert_eq!((t[0], t[a - 1], t[t.len() - 1]), (v.cls, v.sep, v.sep));
        let (body_a, body_b) = (&t[1..a - 1], &t[a..t.len() - 1]);
        assert!(!body_a.is_empty() && !body_b.is_empty());
        assert!(
            inst.masked_positions.is_empty(),
            "the instance stage does not mask"
        );
        let (doc_a, _) = origin(body_a[0]);
        assert!(
            body_a.iter().all(|&x| origin(x).0 == doc_a),
            "A spans documents"
        );
        let (doc_b, _) = origin(body_b[0]);
        assert!(
            body_b.iter().all(|&x| origin(x).0 == doc_b),
            "B spans documents"
        );
        if inst.is_random_next {
            // Drawn from the window of recent documents, never the current
            // one unless ten draws in a row hit it.
            assert!(doc_b <= doc_a && doc_a - doc_b < p.reservoir_docs as u32);
        } else {
            // Actual next: B continues A within the document.
            assert_eq!(doc_a, doc_b);
            assert!(origin(*body_b.first().unwrap()).1 > origin(*body_a.last().unwrap()).1);
        }
    }
    let same_doc_random = instances
        .iter()
        .filter(|i| {
            let a = i.segment_a_len as usize;
            i.is_random_next && origin(i.tokens[1]).0 == origin(i.tokens[a]).0
        })
        .count();
    // Only the first document, alone in the window, may draw from itself.
    assert!(
        same_doc_random <= 3 * 30,
        "{same_doc_random} random-next instances drew their own document"
    );
}

#[test]
fn next_sentence_labels_are_roughly_balanced() {
    let instances = generate(params(5, 0), corpus(1000, 5));
    let random = instances.iter().filter(|i| i.is_random_next).count();
    let share = random as f64 / instances.len() as f64;
    // Chunks of one segment always take a random B, so the share is a bit
    // above one half.
    assert!((0.45..0.65).contains(&share), "random-next share {share}");
}

#[test]
fn masking_after_streaming_is_well_formed() {
    let v = vocab();
    let mp = MaskingParams {
        masked_lm_prob: 0.15,
        max_predictions_per_seq: 20,
    };
    let unmasked = generate(params(6, 0), corpus(200, 6));
    let masked = run_all(
        &mut MaskingStage::new(mp, v.clone(), 6, 0).unwrap(),
        unmasked.clone(),
    )
    .unwrap();
    assert_eq!(masked.len(), unmasked.len());
    for (m, u) in masked.iter().zip(&unmasked) {
        assert_eq!(m.masked_positions.len(), mp.num_to_predict(u.tokens.len()));
        assert_eq!(m.masked_positions.len(), m.masked_labels.len());
        assert!(m.masked_positions.windows(2).all(|w| w[0] < w[1]));
        for (&pos, &label) in m.masked_positions.iter().zip(&m.masked_labels) {
            assert_eq!(label, u.tokens[pos as usize]);
            assert!(label != v.cls && label != v.sep);
        }
        let changed = m
            .tokens
            .iter()
            .zip(&u.tokens)
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed <= m.masked_positions.len());
        assert_eq!(
            (m.segment_a_len, m.is_random_next),
            (u.segment_a_len, u.is_random_next)
        );
    }
}

#[test]
fn empty_documents_are_skipped_and_empty_segments_refused() {
    let p = params(7, 0);
    let mut stage = StreamingInstances::new(p, &vocab()).unwrap();
    let mut out = Vec::new();
    stage
        .push(
            TokenizedDocument {
                index: 0,
                segments: vec![],
            },
            &mut |i| out.push(i),
        )
        .unwrap();
    assert_eq!(stage.reservoir_len(), 0);
    let err = stage
        .push(
            TokenizedDocument {
                index: 9,
                segments: vec![vec![TAG], vec![]],
            },
            &mut |i| out.push(i),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("document 9") && err.contains("empty segment"),
        "{err}"
    );
}

#[test]
fn zero_reservoir_is_a_config_error() {
    let mut p = params(8, 0);
    p.reservoir_docs = 0;
    let err = StreamingInstances::new(p, &vocab())
        .unwrap_err()
        .to_string();
    assert!(err.contains("reservoir_docs"), "{err}");
}
