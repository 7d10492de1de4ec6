//! Masked-LM predictions: which positions of an instance are masked, and
//! with what.
//!
//! [`predictions`] is the reference algorithm (`create_masked_lm_predictions`),
//! called by the reference-mode generator with its own `random.Random`.
//! [`stage`] masks the instances of the streaming mode, each one from its
//! own seed so that a resumed run needs no masking state. With
//! [`WholeWords`], all the tokens of a word are masked together.

mod predictions;
mod stage;

pub use predictions::{mask_instance, Masker, MaskingParams, WholeWords};
pub use stage::MaskingStage;
