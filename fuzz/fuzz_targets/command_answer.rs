//! The `command` stage's JSON answer lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nezha_stages::command::parse_answer;

fuzz_target!(|data: &[u8]| {
    // Answers arrive as lines of text; a non-UTF-8 line is refused before.
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = parse_answer(line);
    }
});
