//! Pipeline files, checked as `nezha run` checks them before it starts
//! (`Plan::parse`: TOML, sections, keys, values, the vocab and inputs).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nezha_pipeline::{Plan, RunOptions};

/// A directory laid out like the repository's: the plan "file" (never
/// written) in pipelines/, a tiny vocab and corpus in data/, so the
/// committed pipelines' relative paths resolve and checking goes past the
/// vocab. The vocab is tiny so each input is checked in microseconds. The
/// directory outlives the process (statics are never dropped): it is in
/// the TMPDIR that benches/fuzz.sh removes after each target.
fn plan_path() -> &'static PathBuf {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &PATH
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n的\n一\n是\na\n##b\n";
            for sub in ["data", "pipelines", "pipelines/data"] {
                let d = dir.path().join(sub);
                std::fs::create_dir_all(&d).expect("mkdir");
                if sub != "pipelines" {
                    std::fs::write(d.join("vocab.txt"), vocab).expect("vocab");
                    std::fs::write(d.join("sanguo.txt"), "一是。\n\n的一。\n").expect("corpus");
                }
            }
            let file = dir.path().join("pipelines/fuzz.toml");
            (dir, file)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    for options in [
        RunOptions::default(),
        RunOptions {
            workers: Some(3),
            resume: true,
            resume_from: Some(7),
        },
    ] {
        let _ = Plan::parse(plan_path(), source, options);
    }
});
