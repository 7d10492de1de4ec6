//! `nezha-tsv run PIPELINE [--workers N] [--resume]`: `nezha run` with the
//! TSV format installed. This is all a user's program needs: install the
//! plugin's registrations, then hand over to nezha's own command.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    nezha_stages::registry::install(nezha_example_tsv::register);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = nezha::pipeline::RunOptions::default();
    let mut file = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "run" if file.is_none() => {}
            "--workers" | "-w" => match it.next().and_then(|w| w.parse().ok()) {
                Some(w) => options.workers = Some(w),
                None => return usage(),
            },
            "--resume" => options.resume = true,
            _ if file.is_none() && !a.starts_with('-') => file = Some(PathBuf::from(a)),
            _ => return usage(),
        }
    }
    let file = file.unwrap_or_else(|| PathBuf::from("pipeline.toml"));
    match nezha::commands::run::run(&file, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nezha-tsv: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: nezha-tsv run PIPELINE [--workers N] [--resume]");
    ExitCode::from(2)
}
