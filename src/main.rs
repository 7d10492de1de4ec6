use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nezha::commands;

/// NEZHA pretraining in one streaming program: text in, masked instances
/// out, straight into TFRecords or the trainer.
#[derive(Parser)]
#[command(name = "nezha", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline graph a TOML file describes (see pipeline.toml).
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
    },
    /// Train on several processes (one per device, like torchrun): starts
    /// this node's ranks as `nezha run` with RANK, WORLD_SIZE, MASTER_ADDR and
    /// MASTER_PORT set, and supervises them.
    Launch(commands::launch::LaunchArgs),
    /// Drop-in replacement for the reference create_pretraining_data.py:
    /// same flags, same records.
    #[command(name = "create_pretraining_data", args_override_self = true)]
    CreatePretrainingData(commands::create_pretraining_data::Flags),
    /// Fine-tune a pretrained NEZHA on a downstream task.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        override_usage = "nezha finetune <classify|ner|mrc> [FLAGS]\n       nezha finetune --config TASK.toml"
    )]
    Finetune {
        /// A task file alone: its one [classify], [ner] or [mrc] table names
        /// the task and holds the settings.
        #[arg(long, required = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        task: Option<Box<nezha_finetune::cli::FinetuneCommand>>,
    },
    /// Convert weights between TensorFlow checkpoints, Hugging Face
    /// directories and nezha's safetensors.
    Convert(commands::convert::ConvertArgs),
    /// Build a WordPiece vocab from a corpus (the tokenizers crate's
    /// trainer), with the reference's special tokens first.
    Vocab(commands::vocab::VocabArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run {
            pipeline,
            workers,
            resume,
        } => commands::run::run(
            pipeline,
            nezha::pipeline::RunOptions {
                workers: *workers,
                resume: *resume,
            },
        ),
        Command::Launch(args) => commands::launch::launch(args),
        Command::CreatePretrainingData(flags) => commands::create_pretraining_data::run(flags),
        Command::Vocab(args) => commands::vocab::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Finetune { config, task } => match (task, config) {
            (Some(task), _) => nezha_finetune::cli::run(task),
            (None, Some(file)) => {
                nezha_finetune::cli::from_task_file(file).and_then(|t| nezha_finetune::cli::run(&t))
            }
            (None, None) => unreachable!("clap requires --config or a task"),
        },
        Command::Inspect { file, vocab, show } => {
            commands::inspect::run(file, vocab.as_ref(), *show)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nezha: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
