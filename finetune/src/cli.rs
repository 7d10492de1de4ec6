//! `nezha finetune <task>`: the command line of the fine-tuning tasks, with
//! the reference scripts' flag names (`--data_dir`, `--vocab_file`,
//! `--init_checkpoint`, …; the dashed spellings work too). Every setting is
//! optional on the command line and in the task file; where neither sets it,
//! [`crate::config`]'s default for the task applies (the reference scripts'
//! defaults, which `--help` lists from there).
//!
//! What a run does is the reference's `--do_train`, `--do_eval` and
//! `--do_predict`, in any combination ([`Switches`]); with none of them it
//! does all three, predicting only when the test file exists.
//!
//! A run writes to `--output_dir`, and only once every input has been read
//! and checked, so bad input leaves nothing behind: with `--do_train`,
//! `model.safetensors` (our format, the label names in its metadata),
//! `label_list.txt` (classify, ner), `finetune.json` and `vocab.txt` (what
//! `--do_predict` from this directory needs) and `checkpoints/` every
//! `--save_checkpoints_steps`; `metrics.jsonl` (one line per epoch, then
//! the dev and test scores); with `--do_predict`, the predictions
//! (`test_results.tsv` and `test_predictions.tsv`, `test_predictions.txt`,
//! or `predictions.json` and `nbest_predictions.json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nezha_stages::atomic_file;
use nezha_stages::vocab::Vocab;
use nezha_train::model::NezhaConfig;
use tch::Device;

use crate::checkpoint::{self, Architecture, Format, ModelWeights};
use crate::classify::Layout;
use crate::config::{ClassifySettings, FinetuneConfig, MrcSettings, Task, TaskDefaults};
use crate::run_record::{Found, RunRecord};
use crate::step_checkpoints::StepCheckpoints;
use crate::task_file;
use crate::NezhaForFinetuning;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum FinetuneCommand {
    /// Sentence or sentence-pair classification from TSV files with a header
    /// (train.tsv, dev.tsv, test.tsv in --data_dir).
    Classify(ClassifyArgs),
    /// Character-level sequence labelling, BIO or BMES, one "char TAG" per
    /// line (train.txt, dev.txt, test.txt in --data_dir).
    Ner(NerArgs),
    /// Reading comprehension on SQuAD/CMRC 2018 JSON (train.json, dev.json,
    /// test.json in --data_dir).
    Mrc(MrcArgs),
}

/// The flags every task shares. Each may instead come from a task file
/// (`--config`, see [`crate::task_file`]); a flag given here overrides it.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// A TOML task file with this task's table ([classify], [ner] or [mrc])
    /// holding the settings under the flags' names.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the task's files are (train, dev and test under the
    /// reference's names).
    #[arg(long = "data_dir", visible_alias = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// The WordPiece vocabulary. Default: the vocab.txt of the fine-tuning
    /// run --init_checkpoint names, if it is one.
    #[arg(long = "vocab_file", visible_alias = "vocab-file")]
    pub vocab_file: Option<PathBuf>,
    /// Train (with the training file's labels). `--do_train`,
    /// `--do_train=true` or `=false`; without any --do_* flag a run trains,
    /// evaluates and predicts.
    #[arg(long = "do_train", visible_alias = "do-train", num_args = 0..=1,
          default_missing_value = "true", require_equals = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub do_train: Option<bool>,
    /// Evaluate on the dev file (after each epoch when training, the best
    /// epoch kept).
    #[arg(long = "do_eval", visible_alias = "do-eval", num_args = 0..=1,
          default_missing_value = "true", require_equals = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub do_eval: Option<bool>,
    /// Predict on the test file, which needs no labels (scored when it has
    /// them). Without --do_train the model is --init_checkpoint's: a
    /// fine-tuning output directory (or its model.safetensors), whose head,
    /// labels, settings and vocabulary are used.
    #[arg(long = "do_predict", visible_alias = "do-predict", num_args = 0..=1,
          default_missing_value = "true", require_equals = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub do_predict: Option<bool>,
    /// Weights to start from: a TF checkpoint prefix, a Hugging Face
    /// directory or our safetensors file (format from --init_format, or
    /// told from the path). Without it the model starts from random
    /// weights with --bert_config_file's config.
    #[arg(long = "init_checkpoint", visible_alias = "init-checkpoint")]
    pub init_checkpoint: Option<PathBuf>,
    /// tf, hf or nezha.
    #[arg(long = "init_format", visible_alias = "init-format")]
    pub init_format: Option<Format>,
    /// The model config (bert_config.json plus max_relative_position): for
    /// a TF checkpoint without one beside it, or a model from scratch.
    #[arg(long = "bert_config_file", visible_alias = "bert-config-file")]
    pub bert_config_file: Option<PathBuf>,
    #[arg(long = "output_dir", visible_alias = "output-dir")]
    pub output_dir: Option<PathBuf>,
    /// Also write the model (trained, or the one --init_checkpoint names)
    /// as a Hugging Face directory with its tokenizer files, for
    /// transformers' Auto classes.
    #[arg(long = "export_hf", visible_alias = "export-hf")]
    pub export_hf: Option<PathBuf>,
    // The settings below have no clap default, so that a task file's value
    // counts when the flag is absent; their help shows the default that
    // then applies, from `Task::defaults`.
    #[arg(
        long = "max_seq_length",
        visible_alias = "max-seq-length",
        help = with_default("", |d| d.max_seq_length.to_string())
    )]
    pub max_seq_length: Option<usize>,
    #[arg(
        long = "train_batch_size",
        visible_alias = "train-batch-size",
        help = with_default("", |d| d.train.batch_size.to_string())
    )]
    pub train_batch_size: Option<usize>,
    #[arg(
        long = "eval_batch_size",
        visible_alias = "eval-batch-size",
        help = with_default("", |d| d.train.eval_batch_size.to_string())
    )]
    pub eval_batch_size: Option<usize>,
    #[arg(
        long = "predict_batch_size",
        visible_alias = "predict-batch-size",
        help = with_default("", |d| d.train.predict_batch_size.to_string())
    )]
    pub predict_batch_size: Option<usize>,
    #[arg(
        long = "learning_rate",
        visible_alias = "learning-rate",
        help = with_default("", |d| format!("{:e}", d.train.learning_rate))
    )]
    pub learning_rate: Option<f64>,
    #[arg(
        long = "num_train_epochs",
        visible_alias = "num-train-epochs",
        help = with_default("May be fractional (2.5).", |d| d.train.epochs.to_string())
    )]
    pub num_train_epochs: Option<f64>,
    #[arg(
        long = "warmup_proportion",
        visible_alias = "warmup-proportion",
        help = with_default("", |d| d.train.warmup_proportion.to_string())
    )]
    pub warmup_proportion: Option<f64>,
    #[arg(
        long = "do_lower_case",
        visible_alias = "do-lower-case",
        action = clap::ArgAction::Set,
        // The reference's scripts write True and False.
        value_parser = clap::builder::BoolishValueParser::new(),
        help = with_default("true or false.", |d| d.do_lower_case.to_string())
    )]
    pub do_lower_case: Option<bool>,
    #[arg(
        long = "save_checkpoints_steps",
        visible_alias = "save-checkpoints-steps",
        help = with_default(
            "Save the weights every so many steps to checkpoints/ (the newest 5 kept; 0: never).",
            |d| d.save_checkpoints_steps.to_string()
        )
    )]
    pub save_checkpoints_steps: Option<u64>,
    #[arg(long, help = with_default("", |d| d.train.seed.to_string()))]
    pub seed: Option<u64>,
    /// cpu, cuda (device 0) or cuda:N; refused when libtorch cannot see
    /// the device. Default: cpu.
    #[arg(long)]
    pub device: Option<String>,
    /// auto (bf16 on CUDA, fp32 on the CPU), fp32, bf16 or fp16 (dynamic
    /// loss scaling) for training's matrix products; weights, gradients and
    /// optimizer state stay f32, evaluation and prediction run in f32.
    #[arg(long)]
    pub precision: Option<String>,
    #[arg(
        long,
        help = with_default("CPU threads for libtorch (the CPU only).", |d| d.threads.to_string())
    )]
    pub threads: Option<i32>,
    /// Without --do_* flags: skip predicting test even if the test file
    /// exists.
    #[arg(long = "no_test", visible_alias = "no-test")]
    pub no_test: bool,
}

/// The reference's `do_train`, `do_eval` and `do_predict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switches {
    pub train: bool,
    pub eval: bool,
    pub predict: bool,
    /// Predicting is wanted only if the test file exists (no --do_* flag
    /// was given).
    pub predict_if_present: bool,
}

/// A flag's help: `what`, then the default [`Task::defaults`] gives it, one
/// value if every task has the same, else each task's.
fn with_default(what: &str, value: impl Fn(&TaskDefaults) -> String) -> String {
    let values: Vec<(&str, String)> = Task::ALL
        .iter()
        .map(|t| (t.name(), value(&t.defaults())))
        .collect();
    let default = if values.iter().all(|(_, v)| *v == values[0].1) {
        values[0].1.clone()
    } else {
        let each: Vec<String> = values.iter().map(|(t, v)| format!("{t} {v}")).collect();
        format!("the task's ({})", each.join(", "))
    };
    format!("{what} Default: {default}")
        .trim_start()
        .to_string()
}

/// A setting's value: the flag's, else the task file's, else the default.
pub(crate) fn setting<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

/// A task file value that kept its position (for error messages).
pub(crate) fn spanned<T: Clone>(value: &Option<toml::Spanned<T>>) -> Option<T> {
    value.as_ref().map(|v| v.get_ref().clone())
}

/// The shared settings once flags, task file and defaults are combined.
#[derive(Debug, Clone)]
pub struct Common {
    pub switches: Switches,
    data_dir: Option<PathBuf>,
    /// Where to give --data_dir (flag or task file), for the message.
    data_dir_hint: String,
    pub vocab_file: PathBuf,
    pub init_checkpoint: Option<PathBuf>,
    /// The fine-tuning run that wrote --init_checkpoint, if it is one.
    pub trained: Option<Found>,
    pub init_format: Option<Format>,
    pub bert_config_file: Option<PathBuf>,
    pub output_dir: PathBuf,
    pub export_hf: Option<PathBuf>,
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    /// Batch sizes, learning rate, epochs, warmup and seed.
    pub train: FinetuneConfig,
    pub save_checkpoints_steps: u64,
    /// The device to compute on, and libtorch's CPU threads there.
    pub device: Device,
    pub threads: Option<i32>,
}

impl Common {
    /// `--data_dir`, which the task's files need.
    pub fn data_dir(&self) -> Result<&Path> {
        self.data_dir
            .as_deref()
            .with_context(|| self.data_dir_hint.clone())
    }
}

impl CommonArgs {
    /// Reads the task file if there is one; flags win over it, and it wins
    /// over the settings recorded by the fine-tuning run --init_checkpoint
    /// names (if it is one), which win over the task's defaults.
    pub(crate) fn resolve(&self, task: Task) -> Result<(Common, task_file::Loaded)> {
        let loaded = match &self.config {
            Some(path) => task_file::load(path, task.name())?,
            None => task_file::Loaded::default(),
        };
        let f = &loaded.file;
        let origin = |key: &str| match &self.config {
            Some(p) => format!(
                "give --{key} or set {key} in [{}] of {}",
                task.name(),
                p.display()
            ),
            None => format!("give --{key}"),
        };
        let required = |flag: &Option<PathBuf>, file: &Option<String>, key: &str| {
            flag.clone()
                .or_else(|| loaded.path(file))
                .with_context(|| origin(key))
        };
        let d = task.defaults();
        // First, so that a device that is not there is refused before any
        // file is read.
        let placement = crate::placement::resolve(
            self.device.as_deref().or(f.device.as_deref()),
            self.precision.as_deref().or(f.precision.as_deref()),
            self.threads.or(f.threads),
            d.threads,
        )?;
        let init_checkpoint = self
            .init_checkpoint
            .clone()
            .or_else(|| loaded.path(&f.init_checkpoint));
        let trained = match &init_checkpoint {
            Some(p) => RunRecord::beside(p)?,
            None => None,
        };
        if let Some(found) = &trained {
            RunRecord::expect_task(found, task.name())?;
        }
        let saved = trained.as_ref().map(|t| &t.record);
        let given = [
            self.do_train.or(f.do_train),
            self.do_eval.or(f.do_eval),
            self.do_predict.or(f.do_predict),
        ];
        let switches = if given.iter().all(Option::is_none) {
            let predict = !(self.no_test || f.no_test.unwrap_or(false));
            Switches {
                train: true,
                eval: true,
                predict,
                predict_if_present: predict,
            }
        } else {
            let [train, eval, predict] = given.map(|g| g.unwrap_or(false));
            if !(train || eval || predict) {
                bail!("at least one of --do_train, --do_eval or --do_predict must be true");
            }
            Switches {
                train,
                eval,
                predict,
                predict_if_present: false,
            }
        };
        let vocab_file = match self
            .vocab_file
            .clone()
            .or_else(|| loaded.path(&f.vocab_file))
        {
            Some(v) => v,
            None => match &trained {
                Some(t) => t.dir.join(crate::run_record::VOCAB_FILE),
                None => required(&None, &None, "vocab_file")?,
            },
        };
        let common = Common {
            switches,
            data_dir: self.data_dir.clone().or_else(|| loaded.path(&f.data_dir)),
            data_dir_hint: origin("data_dir"),
            vocab_file,
            init_checkpoint,
            trained: trained.clone(),
            init_format: self.init_format.or(loaded.init_format),
            bert_config_file: self
                .bert_config_file
                .clone()
                .or_else(|| loaded.path(&f.bert_config_file)),
            output_dir: required(&self.output_dir, &f.output_dir, "output_dir")?,
            export_hf: self.export_hf.clone().or_else(|| loaded.path(&f.export_hf)),
            max_seq_length: setting(
                self.max_seq_length.or(f.max_seq_length),
                saved.map(|s| s.max_seq_length),
                d.max_seq_length,
            ),
            do_lower_case: setting(
                self.do_lower_case.or(f.do_lower_case),
                saved.map(|s| s.do_lower_case),
                d.do_lower_case,
            ),
            train: FinetuneConfig {
                batch_size: setting(
                    self.train_batch_size,
                    f.train_batch_size,
                    d.train.batch_size,
                ),
                eval_batch_size: setting(
                    self.eval_batch_size,
                    f.eval_batch_size,
                    d.train.eval_batch_size,
                ),
                predict_batch_size: setting(
                    self.predict_batch_size,
                    f.predict_batch_size,
                    d.train.predict_batch_size,
                ),
                learning_rate: setting(self.learning_rate, f.learning_rate, d.train.learning_rate),
                epochs: setting(self.num_train_epochs, f.num_train_epochs, d.train.epochs),
                warmup_proportion: setting(
                    self.warmup_proportion,
                    f.warmup_proportion,
                    d.train.warmup_proportion,
                ),
                seed: setting(self.seed, f.seed, d.train.seed),
                precision: placement.precision,
                ..d.train
            },
            save_checkpoints_steps: setting(
                self.save_checkpoints_steps,
                f.save_checkpoints_steps,
                d.save_checkpoints_steps,
            ),
            device: placement.device,
            threads: placement.threads,
        };

        Ok((common, loaded))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The file layout, as the reference's --task_name: tsv (header naming
    /// the columns; the default), jsonl (train.jsonl, … with named fields),
    /// xnli (multinli/multinli.train.zh.tsv, dev.tsv, test.tsv), lcqmc, or
    /// chnsenti (alias text_clf: label<TAB>text).
    #[arg(long = "task_name", visible_alias = "task-name")]
    pub task_name: Option<Layout>,
    #[arg(
        long = "text_a",
        visible_alias = "text-a",
        help = format!(
            "Name of the first text column (tsv, jsonl). Default: {}",
            ClassifySettings::default().columns.text_a
        )
    )]
    pub text_a: Option<String>,
    /// Name of the second text column, for sentence pairs (tsv, jsonl).
    #[arg(long = "text_b", visible_alias = "text-b")]
    pub text_b: Option<String>,
    #[arg(
        long = "label_column",
        visible_alias = "label-column",
        help = format!(
            "Name of the label column (tsv, jsonl). Default: {}",
            ClassifySettings::default().columns.label
        )
    )]
    pub label_column: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct NerArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MrcArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// SQuAD/CMRC JSON to train on. Default: train.json in --data_dir.
    #[arg(long = "train_file", visible_alias = "train-file")]
    pub train_file: Option<PathBuf>,
    /// SQuAD/CMRC JSON to predict on (answers optional). Default: test.json
    /// in --data_dir.
    #[arg(long = "predict_file", visible_alias = "predict-file")]
    pub predict_file: Option<PathBuf>,
    #[arg(
        long = "doc_stride",
        visible_alias = "doc-stride",
        help = format!("Default: {}", MrcSettings::default().doc_stride)
    )]
    pub doc_stride: Option<usize>,
    #[arg(
        long = "max_query_length",
        visible_alias = "max-query-length",
        help = format!("Default: {}", MrcSettings::default().max_query_length)
    )]
    pub max_query_length: Option<usize>,
    #[arg(
        long = "n_best_size",
        visible_alias = "n-best-size",
        help = format!("Default: {}", MrcSettings::default().search.n_best_size)
    )]
    pub n_best_size: Option<usize>,
    #[arg(
        long = "max_answer_length",
        visible_alias = "max-answer-length",
        help = format!("Default: {}", MrcSettings::default().search.max_answer_length)
    )]
    pub max_answer_length: Option<usize>,
}

/// Runs one fine-tuning command.
pub fn run(cmd: &FinetuneCommand) -> Result<()> {
    match cmd {
        FinetuneCommand::Classify(a) => crate::classify::run::run(a),
        FinetuneCommand::Ner(a) => crate::ner::run::run(a),
        FinetuneCommand::Mrc(a) => crate::mrc::run::run(a),
    }
}

/// The command a task file alone describes (`nezha finetune --config
/// task.toml`): its table names the task, every setting comes from the file.
pub fn from_task_file(path: &Path) -> Result<FinetuneCommand> {
    use clap::{FromArgMatches, Subcommand};
    let task = task_file::task_of(path)?;
    let command = FinetuneCommand::augment_subcommands(clap::Command::new("finetune"));
    let matches = command.try_get_matches_from([
        "finetune".as_ref(),
        task.as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
    ])?;
    Ok(FinetuneCommand::from_arg_matches(&matches)?)
}

/// The weights --init_checkpoint names, read (none without the flag).
pub(crate) fn read_init(c: &Common) -> Result<Option<ModelWeights>> {
    let Some(path) = &c.init_checkpoint else {
        return Ok(None);
    };
    let given = c
        .bert_config_file
        .as_deref()
        .map(NezhaConfig::from_json_file)
        .transpose()?;
    let format = c.init_format.unwrap_or_else(|| Format::guess(path));
    let (w, _) = checkpoint::read(path, format, given.as_ref(), None)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(w))
}

/// Without --do_train the model must be a fine-tuned one of this task:
/// `init`'s head and labels are used as they are.
pub(crate) fn fine_tuned<'w>(
    c: &Common,
    init: Option<&'w ModelWeights>,
    task: Task,
) -> Result<&'w ModelWeights> {
    let Some(w) = init else {
        bail!(
            "--do_eval or --do_predict without --do_train needs --init_checkpoint naming a \
             fine-tuned {} model (a `nezha finetune {}` output directory)",
            task.name(),
            task.name()
        );
    };
    let want = match task {
        Task::Classify => "NezhaForSequenceClassification",
        Task::Ner => "NezhaForTokenClassification",
        Task::Mrc => "NezhaForQuestionAnswering",
    };
    if w.architecture.hf_class() != want {
        bail!(
            "--do_eval or --do_predict without --do_train needs a fine-tuned {} model, but {} \
             holds a {} ({:?})",
            task.name(),
            c.init_checkpoint
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display(),
            w.architecture.hf_class(),
            w.architecture
        );
    }
    Ok(w)
}

/// The label names of a fine-tuned model: its weights' own, else the
/// `label_list.txt` of its run directory.
pub(crate) fn saved_labels(c: &Common, w: &ModelWeights) -> Result<Vec<String>> {
    if let Some(l) = &w.labels {
        return Ok(l.clone());
    }
    let Some(found) = &c.trained else {
        bail!(
            "{} has no label names, and no label_list.txt beside it",
            c.init_checkpoint
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display()
        );
    };
    let path = found.dir.join("label_list.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// The model: `init`'s weights (the head too when it is this
/// architecture's) or random ones of --bert_config_file's config.
pub(crate) fn build_model(
    c: &Common,
    arch: Architecture,
    init: Option<&ModelWeights>,
) -> Result<NezhaForFinetuning> {
    tch::manual_seed(c.train.seed as i64);
    match init {
        Some(w) => {
            let mut m = NezhaForFinetuning::new(&w.config, arch, c.device)?;
            let report = m.load(w)?;
            println!(
                "initialised from {}; fresh: {:?}; unused: {:?}",
                c.init_checkpoint
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display(),
                report.fresh,
                report.unused
            );
            Ok(m)
        }
        None => {
            let Some(path) = &c.bert_config_file else {
                bail!("give --init_checkpoint, or --bert_config_file to start from random weights")
            };
            let cfg = NezhaConfig::from_json_file(path)?;
            println!("no --init_checkpoint: random weights");
            NezhaForFinetuning::new(&cfg, arch, c.device)
        }
    }
}

/// The vocabulary, and libtorch's thread count set.
pub(crate) fn vocab(c: &Common) -> Result<Arc<Vocab>> {
    if let Some(n) = c.threads {
        tch::set_num_threads(n);
    }
    Ok(Arc::new(Vocab::load(&c.vocab_file).with_context(|| {
        format!("reading the vocabulary {}", c.vocab_file.display())
    })?))
}

/// The output directory, created: called only once every input is read
/// and checked, so that bad input leaves nothing behind.
pub(crate) fn output_dir(c: &Common) -> Result<&Path> {
    std::fs::create_dir_all(&c.output_dir)
        .with_context(|| format!("creating {}", c.output_dir.display()))?;
    Ok(&c.output_dir)
}

/// The training settings with `--save_checkpoints_steps` into `dir`,
/// labelled `labels`.
pub(crate) fn with_checkpoints(c: &Common, labels: Option<Vec<String>>) -> FinetuneConfig {
    FinetuneConfig {
        checkpoints: (c.save_checkpoints_steps > 0).then(|| StepCheckpoints {
            every: c.save_checkpoints_steps,
            output_dir: c.output_dir.clone(),
            labels,
        }),
        ..c.train.clone()
    }
}

/// `--export_hf`'s directory, if given, of the model as it is now.
pub(crate) fn export_hf(
    c: &Common,
    model: &NezhaForFinetuning,
    labels: Option<Vec<String>>,
) -> Result<()> {
    let Some(dir) = &c.export_hf else {
        return Ok(());
    };
    crate::hf_export::export(dir, &model.weights(labels)?, &c.vocab_file, c.do_lower_case)?;
    println!("exported for transformers: {}", dir.display());
    Ok(())
}

/// `label_list.txt`.
pub(crate) fn write_labels(dir: &Path, names: &[String]) -> Result<()> {
    Ok(atomic_file::write_file(
        &dir.join("label_list.txt"),
        (names.join("\n") + "\n").as_bytes(),
    )?)
}

/// The test file to predict on, if this run predicts: required with
/// --do_predict, optional without --do_* flags.
pub(crate) fn predict_path(c: &Common, path: PathBuf) -> Result<Option<PathBuf>> {
    let s = c.switches;
    if !s.predict || (s.predict_if_present && !path.exists()) {
        return Ok(None);
    }
    if !path.exists() {
        bail!("--do_predict: {} does not exist", path.display());
    }
    Ok(Some(path))
}

/// A layout setting of this run against the training run's record.
pub(crate) fn layout_setting<T: PartialEq + std::fmt::Debug>(
    c: &Common,
    key: &str,
    trained: impl Fn(&RunRecord) -> Option<T>,
    given: Option<T>,
) -> Result<Option<T>> {
    match &c.trained {
        Some(found) => crate::run_record::same_layout(found, key, trained(&found.record), given),
        None => Ok(given),
    }
}

/// Says on stderr what a reader left out of `path` (`what`), one line each.
pub(crate) fn report_skipped(path: &Path, what: &str, skipped: &[impl std::fmt::Display]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("{}: skipped {} {what}:", path.display(), skipped.len());
    for s in skipped {
        eprintln!("  {s}");
    }
}
