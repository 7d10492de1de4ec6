//! The reference mode: the reference script's `create_training_instances`,
//! draw for draw.

use std::sync::Arc;

use super::document::{check_segments, DocumentInstances, InstanceParams};
use crate::data::{Instance, TokenizedDocument};
use crate::error::{Error, Result};
use crate::masking::{Masker, MaskingParams, WholeWords};
use crate::pyrandom::PyRandom;
use crate::stage::Stage;
use crate::vocab::Vocab;

/// The reference script's flags that shape instances and masks.
#[derive(Clone, Debug)]
pub struct ReferenceParams {
    pub max_seq_length: usize,
    pub short_seq_prob: f64,
    pub dupe_factor: usize,
    pub masked_lm_prob: f64,
    pub max_predictions_per_seq: usize,
    /// `random.Random(random_seed)`: CPython seeds with |random_seed|.
    pub random_seed: i64,
    pub vocab: Arc<Vocab>,
}

/// Collects every document (the reference holds the whole corpus), then in
/// `finish` does what the reference does after reading:
/// `rng.shuffle(all_documents)`; for each of `dupe_factor` rounds, each
/// document's instances, each masked as soon as it is made, with the same
/// `random.Random`; `rng.shuffle(instances)`; emits them all.
///
/// Documents must arrive in corpus order (one worker), because their order
/// feeds the shuffle. Memory grows with the corpus and with
/// `dupe_factor` × the instances, exactly as in the reference.
#[derive(Debug)]
pub struct ReferenceInstances {
    generator: DocumentInstances,
    masker: Masker,
    dupe_factor: usize,
    random_seed: i64,
    documents: Vec<Vec<Vec<u32>>>,
    last_index: Option<u64>,
    finished: bool,
}

impl ReferenceInstances {
    pub fn new(params: ReferenceParams) -> Result<ReferenceInstances> {
        let generator = DocumentInstances::new(
            InstanceParams {
                max_seq_length: params.max_seq_length,
                short_seq_prob: params.short_seq_prob,
            },
            params.vocab.cls,
            params.vocab.sep,
        )?;
        let masker = Masker::new(
            MaskingParams {
                masked_lm_prob: params.masked_lm_prob,
                max_predictions_per_seq: params.max_predictions_per_seq,
            },
            params.vocab,
        )?;
        Ok(ReferenceInstances {
            generator,
            masker,
            dupe_factor: params.dupe_factor,
            random_seed: params.random_seed,
            documents: Vec::new(),
            last_index: None,
            finished: false,
        })
    }

    /// Masks whole words, as the later reference script does with
    /// `--do_whole_word_mask=True`.
    pub fn with_whole_words(mut self, words: Option<WholeWords>) -> ReferenceInstances {
        self.masker = self.masker.with_whole_words(words);
        self
    }

    /// Number of (non-empty) documents collected so far.
    pub fn num_documents(&self) -> usize {
        self.documents.len()
    }
}

impl Stage for ReferenceInstances {
    type In = TokenizedDocument;
    type Out = Instance;

    fn push(&mut self, doc: TokenizedDocument, _emit: &mut dyn FnMut(Instance)) -> Result<()> {
        if self.finished {
            return Err(Error::data(format!(
                "reference instances: document {} arrived after the end of the input",
                doc.index
            )));
        }
        if let Some(last) = self.last_index {
            if doc.index <= last {
                return Err(Error::data(format!(
                    "reference instances: document {} arrived after document {last}; the reference \
                     mode needs the documents in corpus order (run it on one worker)",
                    doc.index
                )));
            }
        }
        self.last_index = Some(doc.index);
        check_segments(&doc, "reference instances")?;
        // The reference removes empty documents before shuffling.
        if !doc.is_empty() {
            self.documents.push(doc.segments);
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Instance)) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let mut rng = PyRandom::from_int(self.random_seed);
        let mut documents = std::mem::take(&mut self.documents);
        rng.shuffle(&mut documents);
        let mut instances = Vec::new();
        let masker = &mut self.masker;
        for _ in 0..self.dupe_factor {
            for d in 0..documents.len() {
                self.generator
                    .generate(&documents[..], d, &mut rng, |mut inst, rng| {
                        masker.mask_like_reference(&mut inst, rng);
                        instances.push(inst);
                    });
            }
        }
        drop(documents);
        rng.shuffle(&mut instances);
        for inst in instances {
            emit(inst);
        }
        Ok(())
    }
}
