//! NEZHA fine-tuning: checkpoint interchange with the TF reference and
//! Hugging Face (`checkpoint`), the task heads (`heads`), the model that
//! puts a head on the pretrained encoder (`model`), sentence classification
//! (`classify`), sequence labelling (`ner`), reading comprehension
//! mechanics (`mrc`), the evaluation metrics (`metrics`), the settings and
//! their defaults (`config`) and the `nezha finetune` command line (`cli`).

pub mod checkpoint;
pub mod classify;
pub mod cli;
pub mod config;
pub mod epochs;
pub mod heads;
pub mod hf_export;
pub mod metrics;
pub mod model;
pub mod mrc;
pub mod ner;
pub(crate) mod padding;
pub mod placement;
pub mod python_json;
pub mod run_record;
pub mod step;
pub mod step_checkpoints;
pub mod task_file;

pub use config::{FinetuneConfig, Task};
pub use model::{HeadOutput, LoadReport, NezhaForFinetuning};
