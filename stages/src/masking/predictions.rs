//! The reference's masked-LM algorithm (`create_masked_lm_predictions`),
//! over token ids.

use std::sync::Arc;

use crate::data::Instance;
use crate::error::{Error, Result};
use crate::pyrandom::RandomSource;
use crate::segment::{untagged, CONTINUES_WORD};
use crate::vocab::Vocab;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskingParams {
    pub masked_lm_prob: f64,
    pub max_predictions_per_seq: usize,
}

impl MaskingParams {
    pub fn validate(&self) -> Result<()> {
        // Python's round() raises on NaN and infinity; anything finite works
        // (a negative probability still masks one token, as in the reference).
        if !self.masked_lm_prob.is_finite() {
            return Err(Error::config(format!(
                "masked_lm_prob must be a finite number, got {}",
                self.masked_lm_prob
            )));
        }
        Ok(())
    }

    /// `min(max_predictions_per_seq, max(1, int(round(len(tokens) *
    /// masked_lm_prob))))`: the product is over all tokens, [CLS] and [SEP]
    /// included, and Python 3 rounds half to even (30 × 0.15 = 4.5 → 4).
    pub fn num_to_predict(&self, num_tokens: usize) -> usize {
        let rounded = (num_tokens as f64 * self.masked_lm_prob).round_ties_even();
        // `as usize` saturates negative values to 0, which max(1, _) lifts.
        self.max_predictions_per_seq.min((rounded as usize).max(1))
    }
}

/// How the positions to mask are picked from the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selection {
    /// Shuffle every candidate word, then take them in order: the
    /// reference's RNG call sequence.
    Reference,
    /// Draw only the candidate words that will be looked at (a partial
    /// Fisher–Yates): the same distribution with far fewer draws.
    Sampled,
}

/// Which tokens continue the word of the token before them, for whole-word
/// masking: WordPiece's `##` pieces, and tokens a segmenter tagged with
/// [`CONTINUES_WORD`] (Chinese words, see [`crate::segment`]).
#[derive(Clone, Debug)]
pub struct WholeWords {
    /// By vocab id: the token's string starts with `##`.
    continuation: Arc<Vec<bool>>,
}

impl WholeWords {
    pub fn new(vocab: &Vocab) -> WholeWords {
        let mut continuation = vec![false; vocab.id_space()];
        for (word, &id) in vocab.token_map() {
            continuation[id as usize] = word.starts_with("##");
        }
        WholeWords {
            continuation: Arc::new(continuation),
        }
    }

    /// True when `token` (possibly tagged) continues the previous word.
    pub fn continues(&self, token: u32) -> bool {
        token & CONTINUES_WORD != 0
            || self
                .continuation
                .get(untagged(token) as usize)
                .copied()
                .unwrap_or(false)
    }
}

/// Reusable buffers, so masking allocates only the instance's own lists.
#[derive(Clone, Debug, Default)]
struct Scratch {
    /// Positions that may be masked, in order.
    candidates: Vec<u32>,
    /// The candidate words: runs `start..start + len` of `candidates`
    /// (one position each without whole-word masking).
    words: Vec<(u32, u32)>,
    /// (position, original token) of each masked position.
    picked: Vec<(u32, u32)>,
}

impl Scratch {
    /// The later reference script's `create_masked_lm_predictions`
    /// (google-research/bert, `--do_whole_word_mask`): candidates are words,
    /// a token that continues a word joins the word before it (even across
    /// the first `[SEP]`, as there); words are shuffled and taken in order,
    /// skipping a word that would overshoot the prediction budget; every
    /// token of a taken word gets its own 80/10/10 draw. Without
    /// `whole_words` every token is a word, which draws exactly what the
    /// original script draws.
    fn mask<R: RandomSource>(
        &mut self,
        inst: &mut Instance,
        params: &MaskingParams,
        vocab: &Vocab,
        whole_words: Option<&WholeWords>,
        rng: &mut R,
        selection: Selection,
    ) {
        // The reference skips tokens whose string is "[CLS]" or "[SEP]"; ids
        // and strings are one to one, so comparing ids is the same test.
        self.candidates.clear();
        self.words.clear();
        for (i, &t) in inst.tokens.iter().enumerate() {
            let id = untagged(t);
            if id == vocab.cls || id == vocab.sep {
                continue;
            }
            match (whole_words, self.words.last_mut()) {
                (Some(w), Some(last)) if w.continues(t) => last.1 += 1,
                _ => self.words.push((self.candidates.len() as u32, 1)),
            }
            self.candidates.push(i as u32);
        }
        if whole_words.is_some() {
            // Segmentation tags end here: labels and inputs are vocab ids.
            for t in &mut inst.tokens {
                *t = untagged(*t);
            }
        }
        let n = params
            .num_to_predict(inst.tokens.len())
            .min(self.candidates.len());
        if selection == Selection::Reference {
            rng.shuffle(&mut self.words);
        }
        self.picked.clear();
        for k in 0..self.words.len() {
            if self.picked.len() >= n {
                break;
            }
            if selection == Selection::Sampled {
                let j = k + rng.randbelow((self.words.len() - k) as u64) as usize;
                self.words.swap(k, j);
            }
            let (start, len) = self.words[k];
            if self.picked.len() + len as usize > n {
                continue;
            }
            for &position in &self.candidates[start as usize..(start + len) as usize] {
                let original = inst.tokens[position as usize];
                // 80% [MASK], 10% unchanged, 10% a uniformly drawn vocab word
                // (any word: [PAD], [CLS] and [unusedN] included).
                let replacement = if rng.random() < 0.8 {
                    vocab.mask
                } else if rng.random() < 0.5 {
                    original
                } else {
                    vocab.word_id(rng.randbelow(vocab.len() as u64) as usize)
                };
                inst.tokens[position as usize] = replacement;
                self.picked.push((position, original));
            }
        }
        self.picked.sort_unstable_by_key(|&(position, _)| position);
        inst.masked_positions.clear();
        inst.masked_labels.clear();
        inst.masked_positions
            .extend(self.picked.iter().map(|&(p, _)| p));
        inst.masked_labels
            .extend(self.picked.iter().map(|&(_, t)| t));
    }
}

/// Masks one instance exactly as the reference does with the same `rng`:
/// replaces the chosen tokens in place and fills `masked_positions` (sorted)
/// and `masked_labels` (the original tokens). Any earlier mask lists are
/// replaced.
pub fn mask_instance<R: RandomSource>(
    inst: &mut Instance,
    params: &MaskingParams,
    vocab: &Vocab,
    rng: &mut R,
) {
    Scratch::default().mask(inst, params, vocab, None, rng, Selection::Reference);
}

/// Masking parameters, vocabulary and scratch buffers, for masking many
/// instances without allocating per instance.
#[derive(Clone, Debug)]
pub struct Masker {
    params: MaskingParams,
    vocab: Arc<Vocab>,
    whole_words: Option<WholeWords>,
    scratch: Scratch,
}

impl Masker {
    pub fn new(params: MaskingParams, vocab: Arc<Vocab>) -> Result<Masker> {
        params.validate()?;
        Ok(Masker {
            params,
            vocab,
            whole_words: None,
            scratch: Scratch::default(),
        })
    }

    /// Masks whole words instead of single tokens.
    pub fn with_whole_words(mut self, words: Option<WholeWords>) -> Masker {
        self.whole_words = words;
        self
    }

    pub fn params(&self) -> &MaskingParams {
        &self.params
    }

    /// As [`mask_instance`]: the reference's exact RNG call sequence.
    pub fn mask_like_reference<R: RandomSource>(&mut self, inst: &mut Instance, rng: &mut R) {
        self.mask_with(inst, rng, Selection::Reference);
    }

    /// The same distribution of masks as the reference, drawing only the
    /// positions that get masked instead of shuffling every candidate.
    pub fn mask_sampled<R: RandomSource>(&mut self, inst: &mut Instance, rng: &mut R) {
        self.mask_with(inst, rng, Selection::Sampled);
    }

    fn mask_with<R: RandomSource>(&mut self, inst: &mut Instance, rng: &mut R, how: Selection) {
        let words = self.whole_words.as_ref();
        self.scratch
            .mask(inst, &self.params, &self.vocab, words, rng, how);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyrandom::{FastRandom, PyRandom};

    fn vocab() -> Vocab {
        crate::vocab::test_vocab(95, 0)
    }

    fn instance(len_a: usize, len_b: usize) -> Instance {
        let mut tokens = vec![2];
        tokens.extend((0..len_a).map(|i| 10 + i as u32 % 80));
        tokens.push(3);
        tokens.extend((0..len_b).map(|i| 20 + i as u32 % 70));
        tokens.push(3);
        Instance {
            tokens,
            segment_a_len: len_a as u32 + 2,
            ..Instance::default()
        }
    }

    #[test]
    fn num_to_predict_rounds_half_to_even_over_all_tokens() {
        let p = MaskingParams {
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
        };
        assert_eq!(p.num_to_predict(30), 4); // 4.5 → 4
        assert_eq!(p.num_to_predict(50), 8); // 7.5 → 8
        assert_eq!(p.num_to_predict(3), 1); // 0.45 → 0 → at least 1
        assert_eq!(p.num_to_predict(512), 20);
        let neg = MaskingParams {
            masked_lm_prob: -1.0,
            max_predictions_per_seq: 5,
        };
        assert_eq!(neg.num_to_predict(100), 1);
        let nan = MaskingParams {
            masked_lm_prob: f64::NAN,
            max_predictions_per_seq: 5,
        };
        assert!(nan
            .validate()
            .unwrap_err()
            .to_string()
            .contains("masked_lm_prob"));
    }

    #[test]
    fn masks_never_touch_specials_and_labels_are_originals() {
        let v = vocab();
        let p = MaskingParams {
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
        };
        for seed in 0..50 {
            let original = instance(37, 50);
            let mut inst = original.clone();
            let mut rng = PyRandom::new(seed);
            mask_instance(&mut inst, &p, &v, &mut rng);
            assert_eq!(
                inst.masked_positions.len(),
                p.num_to_predict(original.tokens.len())
            );
            assert!(inst.masked_positions.windows(2).all(|w| w[0] < w[1]));
            for (&pos, &label) in inst.masked_positions.iter().zip(&inst.masked_labels) {
                assert_eq!(label, original.tokens[pos as usize]);
                assert!(label != v.cls && label != v.sep);
            }
            for (i, (&a, &b)) in original.tokens.iter().zip(&inst.tokens).enumerate() {
                if a != b {
                    assert!(
                        inst.masked_positions.contains(&(i as u32)),
                        "position {i} changed unmasked"
                    );
                }
            }
        }
    }

    #[test]
    fn sampled_selection_has_the_reference_proportions() {
        let v = vocab();
        let p = MaskingParams {
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
        };
        let mut masker = Masker::new(p, Arc::new(v.clone())).unwrap();
        let mut rng = FastRandom::new(1);
        let (mut total, mut masked, mut kept) = (0, 0, 0);
        let mut per_position = [0u32; 64];
        for _ in 0..20_000 {
            let original = instance(30, 31);
            let mut inst = original.clone();
            masker.mask_sampled(&mut inst, &mut rng);
            assert_eq!(inst.masked_positions.len(), 10);
            for &pos in &inst.masked_positions {
                total += 1;
                per_position[pos as usize] += 1;
                match inst.tokens[pos as usize] {
                    t if t == v.mask => masked += 1,
                    t if t == original.tokens[pos as usize] => kept += 1,
                    _ => {}
                }
            }
        }
        let frac = |x: i32| x as f64 / total as f64;
        assert!(
            (frac(masked) - 0.8).abs() < 0.01,
            "mask share {}",
            frac(masked)
        );
        // Kept: 10% directly plus a random word that happens to equal the
        // original (1 in 100 of the other 10%).
        assert!(
            (frac(kept) - 0.101).abs() < 0.01,
            "keep share {}",
            frac(kept)
        );
        // Every non-special position is equally likely: 61 candidates, 10 each.
        assert_eq!(per_position[0], 0);
        assert_eq!(per_position[31], 0);
        assert_eq!(per_position[63], 0);
        let expected = 20_000.0 * 10.0 / 61.0;
        for (pos, &c) in per_position.iter().enumerate() {
            if ![0, 31, 63].contains(&pos) {
                assert!(
                    (c as f64 - expected).abs() < expected * 0.1,
                    "position {pos}: {c}"
                );
            }
        }
    }

    /// Words of 1 to 4 tokens: `wN` starts a word, `##wN` continues it; one
    /// Chinese character tagged by the segmenter continues a word too.
    fn worded_instance(v: &Vocab) -> (Instance, Vec<usize>) {
        let mut tokens = vec![v.cls];
        let mut word_of = vec![usize::MAX];
        for w in 0..30 {
            let len = 1 + w % 4;
            for k in 0..len {
                let id = match k {
                    0 => v.id(&format!("w{}", w % 10)).unwrap(),
                    _ if w % 5 == 0 => v.id(&format!("w{}", k)).unwrap() | CONTINUES_WORD,
                    _ => v.id(&format!("##w{}", k)).unwrap(),
                };
                tokens.push(id);
                word_of.push(w);
            }
            if w == 14 {
                tokens.push(v.sep);
                word_of.push(usize::MAX);
            }
        }
        tokens.push(v.sep);
        word_of.push(usize::MAX);
        let a = tokens.iter().position(|&t| t == v.sep).unwrap() as u32 + 1;
        let inst = Instance {
            tokens,
            segment_a_len: a,
            ..Instance::default()
        };
        (inst, word_of)
    }

    #[test]
    fn whole_words_are_masked_together_within_the_budget() {
        let v = Arc::new(crate::vocab::test_vocab(10, 10));
        let whole = WholeWords::new(&v);
        for max_predictions in [3, 7, 20] {
            let p = MaskingParams {
                masked_lm_prob: 0.15,
                max_predictions_per_seq: max_predictions,
            };
            let mut masker = Masker::new(p, v.clone())
                .unwrap()
                .with_whole_words(Some(whole.clone()));
            let mut rng = FastRandom::new(max_predictions as u64);
            let mut seen_long = false;
            for round in 0..2_000 {
                let (original, word_of) = worded_instance(&v);
                let mut inst = original.clone();
                if round % 2 == 0 {
                    masker.mask_sampled(&mut inst, &mut rng);
                } else {
                    masker.mask_like_reference(&mut inst, &mut rng);
                }
                let n = p.num_to_predict(inst.tokens.len());
                assert!(inst.masked_positions.len() <= n);
                // Close to the budget: only words too long for what is left
                // are skipped.
                assert!(inst.masked_positions.len() + 3 >= n);
                assert!(inst.tokens.iter().all(|&t| t & CONTINUES_WORD == 0));
                for (&pos, &label) in inst.masked_positions.iter().zip(&inst.masked_labels) {
                    assert_eq!(label, untagged(original.tokens[pos as usize]));
                    let w = word_of[pos as usize];
                    let mates: Vec<u32> = (0..word_of.len())
                        .filter(|&q| word_of[q] == w)
                        .map(|q| q as u32)
                        .collect();
                    seen_long |= mates.len() == 4;
                    assert!(
                        mates.iter().all(|q| inst.masked_positions.contains(q)),
                        "word {w} at {mates:?} partly masked: {:?}",
                        inst.masked_positions
                    );
                }
            }
            // A 4-token word fits a budget of 7 or 20, never one of 3.
            assert_eq!(seen_long, max_predictions > 3, "budget {max_predictions}");
        }
    }
}
