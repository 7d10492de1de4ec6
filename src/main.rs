use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// NEZHA pretraining in one streaming program: text in, masked instances
/// out, straight into TFRecords or the trainer; then fine-tuning.
#[derive(Parser)]
#[command(name = "nezha", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Pipeline(nezha_pipeline::cli::Command),
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
    Convert(nezha::convert::ConvertArgs),
    /// Evaluate a pretrained checkpoint on pretraining TFRecords (the
    /// reference's run_pretraining.py --do_eval).
    Eval(nezha::eval::EvalArgs),
    /// Predict the tokens at each [MASK] of a text with a pretrained
    /// checkpoint (as Hugging Face's fill-mask pipeline).
    FillMask(nezha::fill_mask::FillMaskArgs),
}

fn main() -> ExitCode {
    nezha::allocator::keep_freed_buffers();
    // A write past the file-size limit (RLIMIT_FSIZE) then fails with EFBIG
    // like a full disk, which every writer reports and cleans up after,
    // instead of SIGXFSZ killing the process halfway through a file.
    // SAFETY: sets a signal's disposition before any other thread exists.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    nezha_pipeline::registry::install(nezha::register);
    let cli = Cli::parse();
    nezha_pipeline::cli::exit(match &cli.command {
        Command::Pipeline(command) => command.run(),
        Command::Convert(args) => nezha::convert::run(args),
        Command::Eval(args) => nezha::eval::run(args),
        Command::FillMask(args) => nezha::fill_mask::run(args),
        Command::Finetune { config, task } => {
            // The first Ctrl-C or SIGTERM stops after the step, weights kept.
            nezha_pipeline::interrupt::install(nezha_train::trainer::interrupt::flag())
                .and_then(|()| match (task, config) {
                    (Some(task), _) => nezha_finetune::cli::run(task),
                    (None, Some(file)) => nezha_finetune::cli::from_task_file(file)
                        .and_then(|t| nezha_finetune::cli::run(&t)),
                    (None, None) => unreachable!("clap requires --config or a task"),
                })
                .map_err(
                    |e| match e.downcast_ref::<nezha_train::trainer::interrupt::Stopped>() {
                        Some(stopped) => {
                            nezha_pipeline::interrupt::Interrupted(stopped.0.clone()).into()
                        }
                        None => e,
                    },
                )
        }
    })
}
