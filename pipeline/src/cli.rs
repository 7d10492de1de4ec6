//! The command line shared by the `nezha` binary and plugins' binaries.
//!
//! A plugin's whole `main` is
//!
//! ```no_run
//! fn register(_: &mut nezha_pipeline::registry::Registry) { /* r.ingest.add(...) */ }
//! fn main() -> std::process::ExitCode {
//!     nezha_pipeline::cli::main_with(register)
//! }
//! ```
//!
//! and its binary runs, launches and exports pipelines as `nezha` does,
//! with its own kinds installed. `nezha launch` starts each rank as the
//! binary it was started as, so a plugin's kinds work in multi-process runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{create_pretraining_data, inspect, vocab};
use crate::launcher::{launch, LaunchArgs};
use crate::plan::Plan;
use crate::registry::{install, Registry};
use crate::resolve::RunOptions;

/// The pipeline's subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the pipeline graph a TOML file describes (see pipeline.toml and
    /// docs/pipeline.md).
    Run {
        /// The pipeline file.
        #[arg(default_value = "pipeline.toml")]
        pipeline: PathBuf,
        /// Number of timely workers (threads); overrides `workers` in the file.
        #[arg(short = 'w', long)]
        workers: Option<usize>,
        /// Continue training from the newest checkpoint in `[train] output_dir`,
        /// exactly where it stopped.
        #[arg(long)]
        resume: bool,
        /// Continue from this checkpoint instead of the newest (`step-N` or
        /// `N`): after the newest was found corrupt. Newer checkpoints are
        /// moved aside as `step-M.abandoned`.
        #[arg(long, value_name = "STEP", value_parser = parse_step)]
        resume_from: Option<u64>,
        /// Print the resolved pipeline, every default filled in, and exit
        /// without running it.
        #[arg(long)]
        print_plan: bool,
    },
    /// Run a pipeline on several processes (one per device, like torchrun):
    /// starts this node's ranks as `run` with RANK, WORLD_SIZE, MASTER_ADDR
    /// and MASTER_PORT set, and supervises them.
    Launch(LaunchArgs),
    /// Drop-in replacement for the reference create_pretraining_data.py:
    /// same flags, same records.
    #[command(name = "create_pretraining_data", args_override_self = true)]
    CreatePretrainingData(create_pretraining_data::Flags),
    /// Build a WordPiece vocab from a corpus (the tokenizers crate's
    /// trainer), with the reference's special tokens first.
    Vocab(vocab::VocabArgs),
    /// Count the records of a TFRecord file, check every CRC and show a few
    /// examples decoded back to tokens.
    Inspect {
        file: PathBuf,
        /// Vocab to turn ids back into tokens.
        #[arg(long)]
        vocab: Option<PathBuf>,
        /// How many examples to show.
        #[arg(long, default_value_t = 2)]
        show: usize,
    },
}

impl Command {
    /// Runs the subcommand with the installed registry.
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            Command::Run {
                pipeline,
                workers,
                resume,
                resume_from,
                print_plan,
            } => {
                let options = RunOptions {
                    workers: *workers,
                    resume: *resume || resume_from.is_some(),
                    resume_from: *resume_from,
                };
                let plan = Plan::load(pipeline, options)?;
                if *print_plan {
                    print!("{plan}");
                    return Ok(());
                }
                plan.run(&options)
            }
            Command::Launch(args) => launch(args),
            Command::CreatePretrainingData(flags) => create_pretraining_data::run(flags),
            Command::Vocab(args) => vocab::run(args),
            Command::Inspect { file, vocab, show } => inspect::run(file, vocab.as_ref(), *show),
        }
    }
}

/// NEZHA pretraining data in one streaming program: text in, masked
/// instances out, into TFRecords or a sink of your own.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The `main` of a binary with the pipeline's subcommands and `register`'s
/// kinds (and sinks) installed.
pub fn main_with(register: fn(&mut Registry)) -> ExitCode {
    install(register);
    let cli = Cli::parse();
    exit(cli.command.run())
}

/// Reports an error as `NAME: error: …` (NAME being this program's) and
/// turns the result into the process's exit code.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let name = std::env::args()
                .next()
                .map(PathBuf::from)
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "nezha".into());
            if let Some(stopped) = e.downcast_ref::<crate::interrupt::Interrupted>() {
                eprintln!("{name}: interrupted: {stopped}");
                return ExitCode::from(crate::interrupt::EXIT_STATUS);
            }
            eprintln!("{name}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A checkpoint's step, as its directory (`step-00000200`) or a number.
pub fn parse_step(s: &str) -> Result<u64, String> {
    s.trim_start_matches("step-")
        .parse()
        .map_err(|_| format!("\"{s}\" is not a checkpoint step (step-N or N)"))
}
