//! Reading comprehension (`run_squad.py` on CMRC 2018): the SQuAD/CMRC
//! reader, the sliding windows with their mapping back to the original
//! characters, the n-best answer search, CMRC 2018's EM/F1 and the
//! fine-tuning loop.

pub mod data;
pub mod metric;
pub mod nbest;
pub mod predictions;
pub mod run;
pub mod train;
pub mod windows;

pub use data::{read_squad, MrcExample, MrcFile};
pub use metric::{em_f1, exact_match, f1};
pub use nbest::{n_best, Candidate};
pub use train::{
    evaluate, fine_tune, predict, AnswerSearch, MrcEpochReport, MrcOutcome, MrcScores,
};
pub use windows::{span_text, words, Window, Windower};
