//! The streaming mode: instances in bounded memory, for corpora of any size.

use std::collections::VecDeque;

use super::document::{check_segments, DocumentInstances, InstanceParams};
use super::shuffle_buffer::ShuffleBuffer;
use crate::data::{Instance, TokenizedDocument};
use crate::error::{Error, Result};
use crate::pyrandom::FastRandom;
use crate::stage::Stage;
use crate::vocab::Vocab;

pub const DEFAULT_RESERVOIR_DOCS: usize = 1000;
pub const DEFAULT_SHUFFLE_BUFFER: usize = 10_000;

/// Keeps the instance streams apart from every other stream drawn from the
/// same user seed.
const INSTANCE_STREAM: u64 = 0x696e_7374_616e_6365;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamingParams {
    pub max_seq_length: usize,
    pub short_seq_prob: f64,
    pub dupe_factor: usize,
    /// How many recent documents random next segments are drawn from.
    pub reservoir_docs: usize,
    /// How many instances are held to shuffle the output.
    pub shuffle_buffer: usize,
    pub seed: u64,
    /// This worker's index: each worker draws its own stream.
    pub worker: usize,
}

impl StreamingParams {
    /// Parameters with the default reservoir and shuffle buffer sizes.
    pub fn new(
        max_seq_length: usize,
        short_seq_prob: f64,
        dupe_factor: usize,
        seed: u64,
        worker: usize,
    ) -> Self {
        StreamingParams {
            max_seq_length,
            short_seq_prob,
            dupe_factor,
            reservoir_docs: DEFAULT_RESERVOIR_DOCS,
            shuffle_buffer: DEFAULT_SHUFFLE_BUFFER,
            seed,
            worker,
        }
    }
}

/// Turns each incoming document into `dupe_factor` rounds of unmasked
/// instances (the masking stage follows), with the reference's per-document
/// algorithm.
///
/// Unlike the reference, which needs the whole corpus in memory to shuffle
/// documents and to draw random next segments from any of them, this stage
/// keeps:
/// - the last `reservoir_docs` non-empty documents (the current one
///   included), from which random next segments are drawn; a draw retries
///   while it lands on the current document, compared by corpus index;
/// - a shuffle buffer of at most `shuffle_buffer` instances, each at most
///   `max_seq_length` token ids.
///
/// So memory is bounded by `reservoir_docs` × the largest document plus
/// `shuffle_buffer` × (4 × `max_seq_length` + about 80) bytes (about 6 MB
/// for the defaults at length 128), whatever the corpus size. The
/// instances of one document are spread by the shuffle buffer only: documents
/// are not shuffled, and instances of the same document stay within about
/// `shuffle_buffer` places of each other.
///
/// The output is a pure function of the input, `seed` and `worker`.
#[derive(Debug)]
pub struct StreamingInstances {
    generator: DocumentInstances,
    dupe_factor: usize,
    reservoir_docs: usize,
    worker: usize,
    reservoir: VecDeque<TokenizedDocument>,
    buffer: ShuffleBuffer<Instance>,
    rng: FastRandom,
}

impl StreamingInstances {
    pub fn new(params: StreamingParams, vocab: &Vocab) -> Result<StreamingInstances> {
        let generator = DocumentInstances::new(
            InstanceParams {
                max_seq_length: params.max_seq_length,
                short_seq_prob: params.short_seq_prob,
            },
            vocab.cls,
            vocab.sep,
        )?;
        if params.reservoir_docs == 0 {
            return Err(Error::config(
                "reservoir_docs must be at least 1 (the current document draws from it)",
            ));
        }
        Ok(StreamingInstances {
            generator,
            dupe_factor: params.dupe_factor,
            reservoir_docs: params.reservoir_docs,
            worker: params.worker,
            reservoir: VecDeque::with_capacity(params.reservoir_docs.min(65_536)),
            buffer: ShuffleBuffer::new(params.shuffle_buffer),
            rng: FastRandom::from_words(&[INSTANCE_STREAM, params.seed, params.worker as u64]),
        })
    }

    /// Documents held for random next segments.
    pub fn reservoir_len(&self) -> usize {
        self.reservoir.len()
    }

    /// Instances held in the shuffle buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

impl Stage for StreamingInstances {
    type In = TokenizedDocument;
    type Out = Instance;

    fn push(&mut self, doc: TokenizedDocument, emit: &mut dyn FnMut(Instance)) -> Result<()> {
        check_segments(
            &doc,
            &format!("streaming instances (worker {})", self.worker),
        )?;
        // Empty documents yield nothing and are never drawn from, as in the
        // reference.
        if doc.is_empty() {
            return Ok(());
        }
        if self.reservoir.len() == self.reservoir_docs {
            self.reservoir.pop_front();
        }
        self.reservoir.push_back(doc);
        let current = self.reservoir.len() - 1;
        let StreamingInstances {
            generator,
            dupe_factor,
            reservoir,
            buffer,
            rng,
            ..
        } = self;
        for _ in 0..*dupe_factor {
            generator.generate(reservoir, current, rng, |inst, rng| {
                buffer.push(inst, rng, emit)
            });
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Instance)) -> Result<()> {
        self.buffer.drain(&mut self.rng, emit);
        self.reservoir.clear();
        Ok(())
    }
}
