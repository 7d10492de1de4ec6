//! Dynamic masking: a fresh mask every time an instance is emitted, and a
//! stream that is the same whatever the number of workers.
//!
//! The streaming generator ([`super::StreamingInstances`]) gives each worker
//! its share of the documents, its own random stream, reservoir and shuffle
//! buffer, and the sink interleaves the workers: its output depends on the
//! number of workers. Here the order of the stream is fixed first and split
//! afterwards:
//!
//! 1. Every worker receives every tokenized document in corpus order (each
//!    worker splits, tokenizes and segments its share, and
//!    [`crate::gather`] hands the shares to all workers), and cuts every
//!    one of them: the instances of document `d` are drawn from a random
//!    stream seeded by (seed, `d`) alone, with random
//!    next segments from a reservoir of the last `reservoir_docs` documents
//!    of the corpus (the same on every worker, since every worker sees every
//!    document). Instance `n` of an epoch is the `n`-th one cut.
//! 2. A shuffle buffer seeded by (seed, epoch) orders them; the same on
//!    every worker too, so every worker holds the same sequence.
//! 3. The sequence (all epochs one after the other) is dealt to the
//!    workers in runs of `per_turn` instances
//!    (the batch size when batches are made, else 1): run `r` goes to worker
//!    `r mod peers`. The sinks take one item (one batch) from each worker in
//!    turn, so their merge is the sequence again, batch for batch.
//! 4. A worker masks only the instances dealt to it, as they leave, with a
//!    random stream seeded by (seed, epoch, `n`): masks need no state, a
//!    resumed run gets the same masks, and the same instance is masked
//!    differently in every epoch.
//!
//! The price: every worker cuts and shuffles the whole corpus (and every
//! reader reads it); cleaning, sentence splitting, WordPiece, Jieba,
//! masking and batching are split among the workers. An epoch is one pass
//! over the corpus (the reader reads it `epochs` times); a document index
//! that does not grow starts the next epoch, which clears the reservoir and
//! so cuts the same instances again.

use std::collections::VecDeque;
use std::sync::Arc;

use super::document::{check_segments, DocumentInstances, InstanceParams};
use super::shuffle_buffer::ShuffleBuffer;
use crate::data::{Instance, TokenizedDocument};
use crate::error::{Error, Result};
use crate::ingest::Passes;
use crate::masking::{Masker, MaskingParams, WholeWords};
use crate::pyrandom::FastRandom;
use crate::stage::Stage;
use crate::vocab::Vocab;

/// Keep these streams apart from each other and from every other stream
/// drawn from the same user seed.
const CUT_STREAM: u64 = 0x6479_6e2d_6375_7421;
const SHUFFLE_STREAM: u64 = 0x6479_6e2d_7368_7566;
const MASK_STREAM: u64 = 0x6479_6e2d_6d61_736b;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DynamicParams {
    pub max_seq_length: usize,
    pub short_seq_prob: f64,
    pub dupe_factor: usize,
    pub reservoir_docs: usize,
    pub shuffle_buffer: usize,
    pub seed: u64,
    pub masking: MaskingParams,
    /// This worker, among `peers`.
    pub worker: usize,
    pub peers: usize,
    /// Consecutive instances the sink takes from one worker in one turn.
    pub per_turn: usize,
}

/// Which worker emits position `position` of an epoch's sequence.
pub fn owner(position: u64, per_turn: usize, peers: usize) -> usize {
    ((position / per_turn as u64) % peers as u64) as usize
}

/// The dynamic mask of instance `n` in `epoch`: a pure function of
/// (seed, epoch, n) and the unmasked instance.
pub fn mask_dynamically(masker: &mut Masker, inst: &mut Instance, seed: u64, epoch: u64, n: u64) {
    let mut rng = FastRandom::from_words(&[MASK_STREAM, seed, epoch, n]);
    masker.mask_sampled(inst, &mut rng);
}

/// Cuts, orders, deals and masks, as the module documentation says.
#[derive(Debug)]
pub struct DynamicInstances {
    generator: DocumentInstances,
    params: DynamicParams,
    masker: Masker,
    reservoir: VecDeque<TokenizedDocument>,
    /// (instance number within the epoch, unmasked instance).
    buffer: ShuffleBuffer<(u64, Instance)>,
    shuffle_rng: FastRandom,
    epoch: u64,
    /// Instances cut so far in this epoch: the next one's number.
    cut: u64,
    /// Instances that left the shuffle buffer, on any worker, since the
    /// start of the run: the position in the sequence that is dealt out.
    released: u64,
    /// Tells when a document starts the next epoch.
    passes: Passes,
}

impl DynamicInstances {
    pub fn new(
        params: DynamicParams,
        vocab: Arc<Vocab>,
        whole_words: Option<WholeWords>,
    ) -> Result<DynamicInstances> {
        let generator = DocumentInstances::new(
            InstanceParams {
                max_seq_length: params.max_seq_length,
                short_seq_prob: params.short_seq_prob,
            },
            vocab.cls,
            vocab.sep,
        )?;
        if params.reservoir_docs == 0 || params.per_turn == 0 || params.worker >= params.peers {
            return Err(Error::config(format!(
                "dynamic instances: reservoir_docs ({}) and per_turn ({}) must be at least 1 and \
                 worker ({}) below peers ({})",
                params.reservoir_docs, params.per_turn, params.worker, params.peers
            )));
        }
        Ok(DynamicInstances {
            generator,
            masker: Masker::new(params.masking, vocab)?.with_whole_words(whole_words),
            reservoir: VecDeque::with_capacity(params.reservoir_docs.min(65_536)),
            buffer: ShuffleBuffer::new(params.shuffle_buffer),
            shuffle_rng: FastRandom::from_words(&[SHUFFLE_STREAM, params.seed, 0]),
            epoch: 0,
            cut: 0,
            released: 0,
            passes: Passes::default(),
            params,
        })
    }

    /// The epoch of the documents being cut.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Empties the shuffle buffer: the end of an epoch.
    fn drain(&mut self, emit: &mut dyn FnMut(Instance)) {
        let mut held = Vec::with_capacity(self.buffer.len());
        self.buffer
            .drain(&mut self.shuffle_rng, &mut |item| held.push(item));
        for item in held {
            self.release(item, emit);
        }
    }

    /// One instance leaves the shuffle buffer: the worker it is dealt to
    /// masks and emits it; the others only count it.
    fn release(&mut self, (n, mut inst): (u64, Instance), emit: &mut dyn FnMut(Instance)) {
        let position = self.released;
        self.released += 1;
        let p = &self.params;
        if owner(position, p.per_turn, p.peers) == p.worker {
            mask_dynamically(&mut self.masker, &mut inst, p.seed, self.epoch, n);
            emit(inst);
        }
    }

    fn start_next_epoch(&mut self, emit: &mut dyn FnMut(Instance)) {
        self.drain(emit);
        self.epoch += 1;
        self.cut = 0;
        // `released` goes on: a batch may span two epochs, and the runs must
        // stay aligned with the batches the workers make.
        self.reservoir.clear();
        self.shuffle_rng = FastRandom::from_words(&[SHUFFLE_STREAM, self.params.seed, self.epoch]);
    }
}

impl Stage for DynamicInstances {
    type In = TokenizedDocument;
    type Out = Instance;

    fn push(&mut self, doc: TokenizedDocument, emit: &mut dyn FnMut(Instance)) -> Result<()> {
        if self.passes.pass_of(doc.index) != self.epoch {
            self.start_next_epoch(emit);
        }
        check_segments(&doc, "dynamic instances")?;
        if doc.is_empty() {
            return Ok(());
        }
        if self.reservoir.len() == self.params.reservoir_docs {
            self.reservoir.pop_front();
        }
        let mut rng = FastRandom::from_words(&[CUT_STREAM, self.params.seed, doc.index]);
        self.reservoir.push_back(doc);
        let current = self.reservoir.len() - 1;
        let mut cut = Vec::new();
        for _ in 0..self.params.dupe_factor {
            self.generator
                .generate(&self.reservoir, current, &mut rng, |inst, _| cut.push(inst));
        }
        for inst in cut {
            let n = self.cut;
            self.cut += 1;
            let mut out = None;
            self.buffer
                .push((n, inst), &mut self.shuffle_rng, &mut |item| {
                    out = Some(item)
                });
            if let Some(item) = out {
                self.release(item, emit);
            }
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Instance)) -> Result<()> {
        self.drain(emit);
        self.reservoir.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Arc<Vocab> {
        Arc::new(crate::vocab::test_vocab(195, 0))
    }

    fn docs(n: u64) -> Vec<TokenizedDocument> {
        (0..n)
            .map(|d| TokenizedDocument {
                index: d,
                segments: (0..2 + d % 5)
                    .map(|s| {
                        (0..3 + (d * 7 + s * 3) % 19)
                            .map(|t| 5 + ((d + s + t) % 190) as u32)
                            .collect()
                    })
                    .collect(),
            })
            .collect()
    }

    fn params(worker: usize, peers: usize, per_turn: usize) -> DynamicParams {
        DynamicParams {
            max_seq_length: 32,
            short_seq_prob: 0.1,
            dupe_factor: 2,
            reservoir_docs: 4,
            shuffle_buffer: 16,
            seed: 9,
            masking: MaskingParams {
                masked_lm_prob: 0.15,
                max_predictions_per_seq: 5,
            },
            worker,
            peers,
            per_turn,
        }
    }

    fn run(p: DynamicParams, input: Vec<TokenizedDocument>) -> Vec<Instance> {
        let mut stage = DynamicInstances::new(p, vocab(), None).unwrap();
        crate::stage::run_all(&mut stage, input).unwrap()
    }

    /// The instance with its masked tokens put back.
    fn unmasked(inst: &Instance) -> Instance {
        let mut plain = inst.clone();
        plain.tokens = inst.original_tokens();
        plain.masked_positions.clear();
        plain.masked_labels.clear();
        plain
    }

    #[test]
    fn workers_deal_runs_of_the_one_sequence() {
        // Two epochs, so that runs also span the change of epoch.
        let input = || docs(30).into_iter().chain(docs(30)).collect::<Vec<_>>();
        let whole = run(params(0, 1, 3), input());
        assert!(
            whole.len() > 120 && !whole.len().is_multiple_of(3),
            "{}",
            whole.len()
        );
        for peers in [2, 3] {
            let parts: Vec<Vec<Instance>> = (0..peers)
                .map(|w| run(params(w, peers, 3), input()))
                .collect();
            // Run r of the sequence is run r / peers of worker r % peers.
            let merged: Vec<Instance> = (0..whole.len())
                .map(|i| {
                    let (run, k) = (i / 3, i % 3);
                    parts[run % peers][(run / peers) * 3 + k].clone()
                })
                .collect();
            assert_eq!(merged, whole, "{peers} workers");
            assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), whole.len());
        }
    }

    #[test]
    fn a_second_epoch_cuts_the_same_instances_and_masks_them_anew() {
        let mut twice = docs(30);
        twice.extend(docs(30));
        let both = run(params(0, 1, 1), twice);
        let (first, second) = both.split_at(both.len() / 2);
        assert_eq!(first, &run(params(0, 1, 1), docs(30))[..]);
        let sorted = |xs: &[Instance]| {
            let mut v: Vec<_> = xs.iter().map(|i| format!("{:?}", unmasked(i))).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(first), sorted(second), "the same instances");
        // The epoch's shuffle differs, so pair instances by content.
        let mut by_content = std::collections::HashMap::new();
        for inst in first {
            by_content.insert(format!("{:?}", unmasked(inst)), inst.clone());
        }
        let differ = second
            .iter()
            .filter(|i| {
                by_content[&format!("{:?}", unmasked(i))].masked_positions != i.masked_positions
            })
            .count();
        assert!(
            differ * 10 > second.len() * 8,
            "{differ} of {}",
            second.len()
        );
    }
}
