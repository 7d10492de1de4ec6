//! Vocab files: parsing, then what the pipeline does with a vocab
//! (every id's token, a WordPiece tokenizer over it).
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nezha_stages::wordpiece::WordPiece;
use nezha_stages::Vocab;

fuzz_target!(|data: &[u8]| {
    // `Vocab::load` refuses non-UTF-8 bytes before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(vocab) = Vocab::parse(text, Path::new("fuzz-vocab.txt")) else {
        return;
    };
    for id in 0..vocab.id_space().min(4096) as u32 {
        let _ = vocab.token(id);
    }
    for n in 0..vocab.len().min(4096) {
        let _ = vocab.word_id(n);
    }
    let vocab = Arc::new(vocab);
    for lower in [false, true] {
        if let Ok(wp) = WordPiece::new(vocab.clone(), lower) {
            let _ = wp.tokenize("[CLS] Hello, 世界! unaffable ##ing [SEP]");
            let _ = wp.tokenize(text);
        }
    }
});
