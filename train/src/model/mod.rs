//! NEZHA (arXiv 1909.00204) as its code computes it: config, relative
//! positions, the modules bottom-up, the backbone (`NezhaModel`), the
//! pretraining model, losses, and weight files. `docs/notes/model.md` names
//! the reference (NEZHA-TensorFlow at a fixed commit, and Hugging Face's
//! port), the function each module follows, and where the code departs from
//! the paper or from Hugging Face.

pub mod attention;
pub mod blocks;
pub mod config;
pub mod embeddings;
pub mod encoder;
pub mod heads;
pub mod inputs;
pub mod layer;
pub mod loss;
pub mod nezha;
pub mod params;
pub mod pooler;
pub mod pretraining;
pub mod relative_position;
pub mod weights;

pub use blocks::Mode;
pub use config::{Activation, NezhaConfig};
pub use inputs::PreTrainingInputs;
pub use loss::{pretraining_loss, PreTrainingLoss};
pub use nezha::{NezhaModel, NezhaOutput};
pub use pretraining::{NezhaForPreTraining, PreTrainingOutput};
