//! The stages that make instances, built from the resolved settings: word
//! tags for whole-word masking, the instance generator of the generation
//! mode, the masking operator (static streaming masking only) and the
//! batcher.

use std::sync::Arc;

use nezha_stages::batch::Batching;
use nezha_stages::data::{Instance, TokenizedDocument};
use nezha_stages::error::Result;
use nezha_stages::instances::{
    DynamicInstances, DynamicParams, ReferenceInstances, ReferenceParams, StreamingInstances,
    StreamingParams,
};
use nezha_stages::masking::MaskingStage;
use nezha_stages::segment::JiebaWords;
use nezha_stages::Batch;

use crate::registry::Factory;
use crate::resolve::{Generation, Resolved};

/// Jieba's word tags on each tokenized document, in front of the instance
/// generator (and of the gather, so each worker segments only its share),
/// when `[masking] whole_word = "jieba"`.
pub fn word_marking(r: &Resolved) -> Option<Factory<TokenizedDocument, TokenizedDocument>> {
    let segmenter = r.whole_words.as_ref()?.jieba.clone()?;
    let vocab = r.vocab().clone();
    // The resolver checked the vocab fits the segmenter's tags.
    Some(Arc::new(move |_| {
        Ok(Box::new(JiebaWords::new(segmenter.clone(), &vocab)?))
    }))
}

/// The instance generator of the generation mode. Each is built once here,
/// so building per worker cannot fail on parameters.
pub fn instances(r: &Resolved) -> Result<Factory<TokenizedDocument, Instance>> {
    let vocab = r.vocab().clone();
    let words = r.whole_words.as_ref().map(|w| w.words.clone());
    let s = r.instances;
    match r.generation {
        Generation::Reference => {
            let params = ReferenceParams {
                max_seq_length: s.max_seq_length,
                short_seq_prob: s.short_seq_prob,
                dupe_factor: s.dupe_factor,
                masked_lm_prob: r.masking.masked_lm_prob,
                max_predictions_per_seq: r.masking.max_predictions_per_seq,
                random_seed: r.seed as i64,
                vocab,
            };
            ReferenceInstances::new(params.clone())?;
            Ok(Arc::new(move |_| {
                Ok(Box::new(
                    ReferenceInstances::new(params.clone())?.with_whole_words(words.clone()),
                ))
            }))
        }
        Generation::Streaming { .. } => {
            let params = StreamingParams {
                reservoir_docs: s.reservoir_documents,
                shuffle_buffer: s.shuffle_buffer,
                ..StreamingParams::new(s.max_seq_length, s.short_seq_prob, s.dupe_factor, r.seed, 0)
            };
            StreamingInstances::new(params, &vocab)?;
            Ok(Arc::new(move |w| {
                let params = StreamingParams {
                    worker: w.deal,
                    ..params
                };
                Ok(Box::new(StreamingInstances::new(params, &vocab)?))
            }))
        }
        Generation::Dynamic { .. } => {
            let params = DynamicParams {
                max_seq_length: s.max_seq_length,
                short_seq_prob: s.short_seq_prob,
                dupe_factor: s.dupe_factor,
                reservoir_docs: s.reservoir_documents,
                shuffle_buffer: s.shuffle_buffer,
                seed: r.seed,
                masking: r.masking.params(),
                worker: 0,
                peers: 1,
                per_turn: 1,
            };
            DynamicInstances::new(params, vocab.clone(), words.clone())?;
            Ok(Arc::new(move |w| {
                let params = DynamicParams {
                    worker: w.deal,
                    peers: w.peers,
                    per_turn: w.per_turn,
                    ..params
                };
                Ok(Box::new(DynamicInstances::new(
                    params,
                    vocab.clone(),
                    words.clone(),
                )?))
            }))
        }
    }
}

/// Static masking behind the streaming generator: one mask per instance.
/// The reference and dynamic masking mask inside their generators.
pub fn masking(r: &Resolved) -> Result<Option<Factory<Instance, Instance>>> {
    if !matches!(r.generation, Generation::Streaming { .. }) {
        return Ok(None);
    }
    let params = r.masking.params();
    let vocab = r.vocab().clone();
    let words = r.whole_words.as_ref().map(|w| w.words.clone());
    let seed = r.seed;
    MaskingStage::new(params, vocab.clone(), seed, 0)?;
    Ok(Some(Arc::new(move |w| {
        Ok(Box::new(
            MaskingStage::new(params, vocab.clone(), seed, w.index)?
                .with_whole_words(words.clone()),
        ))
    })))
}

/// The batcher, when the file has `[batching]`.
pub fn batching(r: &Resolved) -> Option<Factory<Instance, Batch>> {
    let b = r.batching?;
    let seq_len = r.instances.max_seq_length;
    let max_predictions = r.masking.max_predictions_per_seq;
    Some(Arc::new(move |_| {
        Ok(Box::new(Batching::new(
            b.batch_size,
            seq_len,
            max_predictions,
            b.keep_remainder,
        )))
    }))
}
