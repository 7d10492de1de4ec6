//! The fine-tuning settings and their defaults, in one place: the
//! hyper-parameters of the epoch loop every task shares
//! ([`FinetuneConfig`]) and what each task defaults to ([`Task::defaults`]).
//! The command line's flags and the task file's keys are optional; where
//! neither sets a value, the default comes from here (`cli` applies them),
//! and the flags' help shows them from here too.
//!
//! The values are the reference scripts' (huawei-noah/Pretrained-Language-Model
//! `NEZHA-TensorFlow/` at commit 0598f02d7fc4eaa7b4cbc1e9d7ab18bc875c24f9):
//! `run_classifier.py`'s flags for classification, its batch and epochs as
//! `scripts/run_seq_labelling.sh` sets them for NER, and `run_squad.py`'s
//! flags for reading comprehension (its `scripts/run_reading.sh` changes
//! batch, length and epochs: `scripts/run_downstream_reading.sh` does as
//! it does).

use nezha_train::trainer::Precision;
use serde::Serialize;

use crate::classify::{Layout, TsvColumns};
use crate::mrc::AnswerSearch;
use crate::step_checkpoints::StepCheckpoints;

/// A fine-tuning task: `nezha finetune classify|ner|mrc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Classify,
    Ner,
    Mrc,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Classify, Task::Ner, Task::Mrc];

    /// The subcommand, and the task file's table.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Ner => "ner",
            Task::Mrc => "mrc",
        }
    }

    /// What the task uses where neither a flag nor the task file says.
    pub fn defaults(self) -> TaskDefaults {
        let (max_seq_length, do_lower_case) = match self {
            Task::Classify => (128, true),
            Task::Ner => (256, true),
            // run_squad.py's CMRC script keeps case.
            Task::Mrc => (384, false),
        };
        TaskDefaults {
            train: FinetuneConfig::for_task(self),
            max_seq_length,
            do_lower_case,
            threads: 2,
            save_checkpoints_steps: 1000,
        }
    }
}

/// Hyper-parameters of the fine-tuning loop ([`crate::epochs::fine_tune`]),
/// shared by every task; the defaults are `run_classifier.py`'s flags.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FinetuneConfig {
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// Batch of `--do_predict` (`run_classifier.py`'s `predict_batch_size`).
    pub predict_batch_size: usize,
    pub learning_rate: f64,
    /// May be fractional, as the reference's `num_train_epochs` float.
    pub epochs: f64,
    pub warmup_proportion: f64,
    pub max_grad_norm: f64,
    /// Seeds the model's fresh weights (from the command line), the example
    /// order of each epoch and the dropout masks.
    pub seed: u64,
    /// The matrix products' precision while training (weights, gradients
    /// and optimizer state stay f32; evaluation and prediction run in f32).
    pub precision: Precision,
    /// Weights saved every so many steps while training
    /// (`--save_checkpoints_steps`); none when `None`.
    #[serde(skip)]
    pub checkpoints: Option<StepCheckpoints>,
}

impl Default for FinetuneConfig {
    fn default() -> FinetuneConfig {
        FinetuneConfig {
            batch_size: 32,
            eval_batch_size: 8,
            predict_batch_size: 8,
            learning_rate: 3e-5,
            epochs: 3.0,
            warmup_proportion: 0.1,
            max_grad_norm: 1.0,
            seed: 12345,
            precision: Precision::Fp32,
            checkpoints: None,
        }
    }
}

impl FinetuneConfig {
    /// The defaults with the task's batch size and epochs: classification
    /// 32 and 3 (`run_classifier.py`), NER 16 and 10
    /// (`scripts/run_seq_labelling.sh`), reading comprehension 32 and 3
    /// (`run_squad.py`'s flags).
    pub fn for_task(task: Task) -> FinetuneConfig {
        let (batch_size, epochs) = match task {
            Task::Classify => return FinetuneConfig::default(),
            Task::Ner => (16, 10.0),
            Task::Mrc => (32, 3.0),
        };
        FinetuneConfig {
            batch_size,
            epochs,
            ..FinetuneConfig::default()
        }
    }
}

/// A task's defaults for the settings every task has.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskDefaults {
    pub train: FinetuneConfig,
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    /// CPU threads for libtorch.
    pub threads: i32,
    /// `run_classifier.py`'s `save_checkpoints_steps` (0: none).
    pub save_checkpoints_steps: u64,
}

/// Classification's own settings: the file layout and, for the layouts with
/// named columns, which columns hold what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifySettings {
    pub layout: Layout,
    pub columns: TsvColumns,
}

impl Default for ClassifySettings {
    fn default() -> ClassifySettings {
        ClassifySettings {
            layout: Layout::Tsv,
            columns: TsvColumns {
                text_a: "text_a".into(),
                text_b: None,
                label: "label".into(),
            },
        }
    }
}

/// Reading comprehension's own settings: `run_squad.py`'s flags.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MrcSettings {
    pub doc_stride: usize,
    pub max_query_length: usize,
    pub search: AnswerSearch,
}

impl Default for MrcSettings {
    fn default() -> MrcSettings {
        MrcSettings {
            doc_stride: 128,
            max_query_length: 64,
            search: AnswerSearch::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference scripts' values, pinned: a change here changes what
    /// every run without the flag does.
    #[test]
    fn defaults_are_the_reference_scripts() {
        let row = |t: Task| {
            let d = t.defaults();
            (
                d.max_seq_length,
                d.train.batch_size,
                d.train.epochs,
                d.do_lower_case,
            )
        };
        assert_eq!(row(Task::Classify), (128, 32, 3.0, true));
        assert_eq!(row(Task::Ner), (256, 16, 10.0, true));
        assert_eq!(row(Task::Mrc), (384, 32, 3.0, false));
        for t in Task::ALL {
            let d = t.defaults();
            assert_eq!((d.threads, d.save_checkpoints_steps), (2, 1000));
            assert_eq!(
                (
                    d.train.eval_batch_size,
                    d.train.predict_batch_size,
                    d.train.learning_rate
                ),
                (8, 8, 3e-5)
            );
            assert_eq!(
                (
                    d.train.warmup_proportion,
                    d.train.max_grad_norm,
                    d.train.seed
                ),
                (0.1, 1.0, 12345)
            );
        }
        assert_eq!(
            FinetuneConfig::for_task(Task::Classify),
            FinetuneConfig::default()
        );
        let m = MrcSettings::default();
        assert_eq!(
            (
                m.doc_stride,
                m.max_query_length,
                m.search.n_best_size,
                m.search.max_answer_length
            ),
            (128, 64, 20, 30)
        );
    }
}
