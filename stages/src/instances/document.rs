//! The reference's per-document instance algorithm
//! (`create_instances_from_document`), over token ids.
//!
//! The random draws happen in exactly the reference's order, so with a
//! [`crate::pyrandom::PyRandom`] in the reference's state the output is the
//! reference's output.

use std::ops::Range;

use super::pool::DocumentPool;
use crate::data::{Instance, TokenizedDocument};
use crate::error::{Error, Result};
use crate::pyrandom::RandomSource;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceParams {
    pub max_seq_length: usize,
    pub short_seq_prob: f64,
}

impl InstanceParams {
    pub fn validate(&self) -> Result<()> {
        // Below 5 the reference fails: randint(2, max_num_tokens) has an empty
        // range, and truncation would empty A or B.
        if self.max_seq_length < 5 {
            return Err(Error::config(format!(
                "max_seq_length must be at least 5 ([CLS], two [SEP] and one token each for A and B), got {}",
                self.max_seq_length
            )));
        }
        if self.max_seq_length > u32::MAX as usize {
            return Err(Error::config(format!(
                "max_seq_length {} does not fit positions of 32 bits",
                self.max_seq_length
            )));
        }
        if self.short_seq_prob.is_nan() {
            return Err(Error::config("short_seq_prob must be a number, got NaN"));
        }
        Ok(())
    }

    /// Room for A and B: `max_seq_length` minus [CLS] and two [SEP].
    pub fn max_num_tokens(&self) -> usize {
        self.max_seq_length - 3
    }
}

/// Refuses a document with an empty segment: instance generation needs
/// every sentence to have a token. `stage` names the stage in the message.
pub(crate) fn check_segments(doc: &TokenizedDocument, stage: &str) -> Result<()> {
    match doc.segments.iter().position(Vec::is_empty) {
        Some(k) => Err(Error::data(format!(
            "{stage}: document {} has an empty segment (number {k}); sentences without tokens \
             must be dropped before instance generation",
            doc.index
        ))),
        None => Ok(()),
    }
}

/// Total length of a run of segments.
fn total_len(segments: &[Vec<u32>]) -> usize {
    segments.iter().map(Vec::len).sum()
}

/// Appends `range` of the concatenation of `segments` to `out`, without
/// building the concatenation.
fn extend_from_concat(out: &mut Vec<u32>, segments: &[Vec<u32>], range: Range<usize>) {
    let mut offset = 0;
    for seg in segments {
        let (lo, hi) = (offset, offset + seg.len());
        offset = hi;
        if hi <= range.start {
            continue;
        }
        if lo >= range.end {
            break;
        }
        out.extend_from_slice(&seg[range.start.max(lo) - lo..range.end.min(hi) - lo]);
    }
}

/// Cuts documents into instances; holds the parameters and special ids.
#[derive(Clone, Debug)]
pub struct DocumentInstances {
    params: InstanceParams,
    cls: u32,
    sep: u32,
}

impl DocumentInstances {
    pub fn new(params: InstanceParams, cls: u32, sep: u32) -> Result<DocumentInstances> {
        params.validate()?;
        Ok(DocumentInstances { params, cls, sep })
    }

    pub fn params(&self) -> &InstanceParams {
        &self.params
    }

    /// Generates the instances of document `document` of `pool`, in the
    /// reference's order, calling `emit` with each one (unmasked) and the
    /// random source. The reference masks each instance as soon as it is
    /// assembled, with the same generator, before drawing anything for the
    /// next one; `emit` is where a caller does the same.
    ///
    /// Every document of `pool` must have at least one segment and no empty
    /// segment (the stages check this when documents arrive).
    pub fn generate<R, P, F>(&self, pool: &P, document: usize, rng: &mut R, mut emit: F)
    where
        R: RandomSource,
        P: DocumentPool + ?Sized,
        F: FnMut(Instance, &mut R),
    {
        let max_num_tokens = self.params.max_num_tokens();
        let doc = pool.segments(document);
        // Drawn once per call, even for a document that yields one instance.
        let mut target_seq_length = max_num_tokens;
        if rng.random() < self.params.short_seq_prob {
            target_seq_length = rng.randint(2, max_num_tokens as i64) as usize;
        }

        // The chunk being filled is always the run doc[chunk_start..=i].
        let mut chunk_start = 0;
        let mut current_length = 0;
        let mut i = 0;
        while i < doc.len() {
            current_length += doc[i].len();
            if i == doc.len() - 1 || current_length >= target_seq_length {
                let chunk_len = i + 1 - chunk_start;
                let a_end = if chunk_len >= 2 {
                    rng.randint(1, chunk_len as i64 - 1) as usize
                } else {
                    1
                };
                let a_segments = &doc[chunk_start..chunk_start + a_end];
                let len_a = total_len(a_segments);

                // No draw for a one-segment chunk: its B must come from
                // elsewhere (Python's `or` short-circuits).
                let is_random_next = chunk_len == 1 || rng.random() < 0.5;
                let b_segments = if is_random_next {
                    let target_b_length = target_seq_length as i64 - len_a as i64;
                    // Up to 10 tries to land on another document; the last
                    // draw is kept even if it is this document again.
                    let mut random_document = 0;
                    for _ in 0..10 {
                        random_document = rng.randint(0, pool.len() as i64 - 1) as usize;
                        if pool.id(random_document) != pool.id(document) {
                            break;
                        }
                    }
                    let random_segments = pool.segments(random_document);
                    let start = rng.randint(0, random_segments.len() as i64 - 1) as usize;
                    let mut end = start;
                    let mut len_b = 0;
                    while end < random_segments.len() {
                        len_b += random_segments[end].len();
                        end += 1;
                        if len_b as i64 >= target_b_length {
                            break;
                        }
                    }
                    // The chunk's segments after A were not used: walk them
                    // again for the next chunk.
                    i -= chunk_len - a_end;
                    &random_segments[start..end]
                } else {
                    &doc[chunk_start + a_end..chunk_start + chunk_len]
                };

                let mut a = 0..len_a;
                let mut b = 0..total_len(b_segments);
                // Trim the longer side (B on ties), front or back at random.
                while a.len() + b.len() > max_num_tokens {
                    let side = if a.len() > b.len() { &mut a } else { &mut b };
                    if rng.random() < 0.5 {
                        side.start += 1;
                    } else {
                        side.end -= 1;
                    }
                }
                debug_assert!(
                    !a.is_empty() && !b.is_empty(),
                    "empty segment in a pool document"
                );

                let mut tokens = Vec::with_capacity(a.len() + b.len() + 3);
                tokens.push(self.cls);
                extend_from_concat(&mut tokens, a_segments, a.clone());
                tokens.push(self.sep);
                extend_from_concat(&mut tokens, b_segments, b);
                tokens.push(self.sep);
                let inst = Instance {
                    tokens,
                    segment_a_len: a.len() as u32 + 2,
                    is_random_next,
                    masked_positions: Vec::new(),
                    masked_labels: Vec::new(),
                };
                emit(inst, rng);
                chunk_start = i + 1;
                current_length = 0;
            }
            i += 1;
        }
    }
}

/// One call of the reference's `create_instances_from_document`, without
/// the masking (done in `emit`, see [`DocumentInstances::generate`]).
pub fn create_instances_from_document<R, P, F>(
    pool: &P,
    document: usize,
    params: &InstanceParams,
    cls: u32,
    sep: u32,
    rng: &mut R,
    emit: F,
) -> Result<()>
where
    R: RandomSource,
    P: DocumentPool + ?Sized,
    F: FnMut(Instance, &mut R),
{
    DocumentInstances::new(*params, cls, sep)?.generate(pool, document, rng, emit);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyrandom::{FastRandom, PyRandom};

    const CLS: u32 = 101;
    const SEP: u32 = 102;

    fn docs() -> Vec<Vec<Vec<u32>>> {
        (0..5u32)
            .map(|d| {
                (0..3 + d as usize * 2)
                    .map(|s| {
                        (0..4 + (s as u32 * 7 + d) % 30)
                            .map(|t| 1000 * d + 10 * s as u32 + t)
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn extend_from_concat_takes_the_right_window() {
        let segs = vec![vec![1, 2, 3], vec![4], vec![5, 6]];
        for lo in 0..=6 {
            for hi in lo..=6 {
                let mut out = Vec::new();
                extend_from_concat(&mut out, &segs, lo..hi);
                assert_eq!(out, (lo as u32 + 1..hi as u32 + 1).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn instances_are_well_formed() {
        let docs = docs();
        for max_seq_length in [5, 8, 16, 64] {
            let params = InstanceParams {
                max_seq_length,
                short_seq_prob: 0.3,
            };
            let gen = DocumentInstances::new(params, CLS, SEP).unwrap();
            let mut rng = FastRandom::new(max_seq_length as u64);
            for round in 0..20 {
                let d = round % docs.len();
                let mut n = 0;
                gen.generate(&docs[..], d, &mut rng, |inst, _| {
                    n += 1;
                    let t = &inst.tokens;
                    let a = inst.segment_a_len as usize;
                    assert!(t.len() <= max_seq_length);
                    assert_eq!((t[0], t[a - 1], t[t.len() - 1]), (CLS, SEP, SEP));
                    assert!(
                        a >= 3 && t.len() >= a + 2,
                        "A and B must be non-empty: {t:?}"
                    );
                    assert!(t[1..a - 1]
                        .iter()
                        .chain(&t[a..t.len() - 1])
                        .all(|&x| x != CLS && x != SEP));
                    if !inst.is_random_next {
                        // An actual next B continues A's document.
                        assert!(t[a..t.len() - 1].iter().all(|&x| x / 1000 == d as u32));
                    }
                });
                assert!(n >= 1);
            }
        }
    }

    #[test]
    fn one_segment_chunks_take_b_from_another_document() {
        // Every segment alone exceeds the target: each chunk is one segment,
        // so B is always random and never from the same document.
        let docs: Vec<Vec<Vec<u32>>> = (0..3u32)
            .map(|d| {
                (0..4u32)
                    .map(|s| (0..40).map(|t| 1000 * d + 100 * s + t).collect())
                    .collect()
            })
            .collect();
        let params = InstanceParams {
            max_seq_length: 32,
            short_seq_prob: 0.0,
        };
        let gen = DocumentInstances::new(params, CLS, SEP).unwrap();
        let mut rng = PyRandom::new(1);
        let mut count = 0;
        gen.generate(&docs[..], 1, &mut rng, |inst, _| {
            count += 1;
            assert!(inst.is_random_next);
            let a = inst.segment_a_len as usize;
            assert!(inst.tokens[1..a - 1].iter().all(|&x| x / 1000 == 1));
            assert!(inst.tokens[a..inst.tokens.len() - 1]
                .iter()
                .all(|&x| x / 1000 != 1));
        });
        // One instance per segment: nothing is put back from a 1-segment chunk.
        assert_eq!(count, 4);
    }

    #[test]
    fn a_single_document_pool_uses_itself_after_ten_tries() {
        let docs: Vec<Vec<Vec<u32>>> = vec![vec![vec![1, 2, 3]]];
        let params = InstanceParams {
            max_seq_length: 16,
            short_seq_prob: 0.0,
        };
        let gen = DocumentInstances::new(params, CLS, SEP).unwrap();
        let mut rng = PyRandom::new(5);
        let mut out = Vec::new();
        gen.generate(&docs[..], 0, &mut rng, |inst, _| out.push(inst));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].tokens, vec![CLS, 1, 2, 3, SEP, 1, 2, 3, SEP]);
        assert!(out[0].is_random_next);
        // The draws were: random() for short_seq_prob, ten randint(0, 0) for
        // the random document (all landing on itself) and randint(0, 0) for
        // its start segment; a replay of them leaves the same state.
        let mut replay = PyRandom::new(5);
        replay.random();
        for _ in 0..11 {
            replay.randint(0, 0);
        }
        assert_eq!(rng.random(), replay.random());
    }

    #[test]
    fn tiny_max_seq_length_is_refused() {
        let params = InstanceParams {
            max_seq_length: 4,
            short_seq_prob: 0.1,
        };
        let err = DocumentInstances::new(params, CLS, SEP).unwrap_err();
        assert!(err.to_string().contains("max_seq_length"), "{err}");
    }
}
