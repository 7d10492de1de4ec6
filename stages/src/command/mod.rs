//! The `command` stage: documents through any program, as JSON lines on its
//! stdin and stdout, so a cleaner or a sentence splitter can be written in
//! Python (or anything else) without touching Rust.
//!
//! The protocol, one line per document each way, in order:
//!
//! ```text
//! to the program:   {"index": 7, "origin": "corpus/a.txt:12", "lines": ["第一句。", "第二句。"]}
//! from the program: {"lines": ["第一句。", "第二句。"]}
//! ```
//!
//! The program answers every document with exactly one line, in the order
//! it received them; `{"lines": []}` drops the document. It may read ahead:
//! up to `max_in_flight` documents are sent before an answer is awaited. Its
//! stderr is kept (the last few KB) for error messages. It runs in the
//! directory of the pipeline file, one process per worker.

mod process;
mod protocol;

pub use process::{CommandSpec, CommandStage};
pub use protocol::{parse_answer, request_line};
