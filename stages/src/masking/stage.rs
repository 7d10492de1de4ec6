//! The masking stage of the streaming mode.

use std::sync::Arc;

use super::predictions::{Masker, MaskingParams, WholeWords};
use crate::data::Instance;
use crate::error::{Error, Result};
use crate::pyrandom::FastRandom;
use crate::stage::Stage;
use crate::vocab::Vocab;

/// Keeps the masking streams apart from every other stream drawn from the
/// same user seed.
const MASKING_STREAM: u64 = 0x6d61_736b_696e_6721;

/// Masks each unmasked instance. The mask of an instance is a pure function
/// of (seed, worker, index of the instance within this worker's stream), so
/// the stage holds no random state: a resumed run only needs to know how
/// many instances the worker had already masked ([`MaskingStage::starting_at`]).
#[derive(Clone, Debug)]
pub struct MaskingStage {
    masker: Masker,
    seed: u64,
    worker: u64,
    next_index: u64,
}

impl MaskingStage {
    pub fn new(
        params: MaskingParams,
        vocab: Arc<Vocab>,
        seed: u64,
        worker: usize,
    ) -> Result<MaskingStage> {
        Ok(MaskingStage {
            masker: Masker::new(params, vocab)?,
            seed,
            worker: worker as u64,
            next_index: 0,
        })
    }

    /// Masks whole words (see [`WholeWords`]) instead of single tokens.
    pub fn with_whole_words(mut self, words: Option<WholeWords>) -> MaskingStage {
        self.masker = self.masker.with_whole_words(words);
        self
    }

    /// Continues a stream whose first `index` instances were masked earlier.
    pub fn starting_at(mut self, index: u64) -> MaskingStage {
        self.next_index = index;
        self
    }

    /// Index the next instance will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }
}

impl Stage for MaskingStage {
    type In = Instance;
    type Out = Instance;

    fn push(&mut self, mut inst: Instance, emit: &mut dyn FnMut(Instance)) -> Result<()> {
        if !inst.masked_positions.is_empty() {
            return Err(Error::data(format!(
                "masking stage (worker {}): instance {} arrived already masked; is masking applied twice?",
                self.worker, self.next_index
            )));
        }
        let mut rng =
            FastRandom::from_words(&[MASKING_STREAM, self.seed, self.worker, self.next_index]);
        self.masker.mask_sampled(&mut inst, &mut rng);
        self.next_index += 1;
        emit(inst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::run_all;

    fn vocab() -> Arc<Vocab> {
        Arc::new(crate::vocab::test_vocab(95, 0))
    }

    fn instances(n: usize) -> Vec<Instance> {
        (0..n)
            .map(|k| {
                let mut tokens = vec![2];
                tokens.extend((0..20 + k % 7).map(|i| 5 + ((i + k) % 90) as u32));
                tokens.push(3);
                let a = tokens.len() as u32;
                tokens.extend((0..15).map(|i| 5 + ((i * 3 + k) % 90) as u32));
                tokens.push(3);
                Instance {
                    tokens,
                    segment_a_len: a,
                    ..Instance::default()
                }
            })
            .collect()
    }

    const PARAMS: MaskingParams = MaskingParams {
        masked_lm_prob: 0.15,
        max_predictions_per_seq: 20,
    };

    #[test]
    fn masks_depend_only_on_seed_worker_and_index() {
        let v = vocab();
        let all = run_all(
            &mut MaskingStage::new(PARAMS, v.clone(), 7, 1).unwrap(),
            instances(40),
        )
        .unwrap();
        let again = run_all(
            &mut MaskingStage::new(PARAMS, v.clone(), 7, 1).unwrap(),
            instances(40),
        )
        .unwrap();
        assert_eq!(all, again);
        // Resuming at instance 25 masks the rest exactly as the full run did.
        let mut resumed = MaskingStage::new(PARAMS, v.clone(), 7, 1)
            .unwrap()
            .starting_at(25);
        let tail = run_all(&mut resumed, instances(40).into_iter().skip(25)).unwrap();
        assert_eq!(tail, all[25..]);
        assert_eq!(resumed.next_index(), 40);
        let other_worker = run_all(
            &mut MaskingStage::new(PARAMS, v.clone(), 7, 2).unwrap(),
            instances(40),
        )
        .unwrap();
        let other_seed = run_all(
            &mut MaskingStage::new(PARAMS, v, 8, 1).unwrap(),
            instances(40),
        )
        .unwrap();
        assert_ne!(all, other_worker);
        assert_ne!(all, other_seed);
    }

    #[test]
    fn refuses_an_already_masked_instance() {
        let mut stage = MaskingStage::new(PARAMS, vocab(), 7, 3).unwrap();
        let masked = run_all(&mut stage, instances(1)).unwrap();
        let err = run_all(&mut stage, masked).unwrap_err().to_string();
        assert!(
            err.contains("worker 3") && err.contains("instance 1"),
            "{err}"
        );
    }
}
