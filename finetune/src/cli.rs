//! `nezha finetune <task>`: the command line of the fine-tuning tasks, with
//! the reference scripts' flag names (`--data_dir`, `--vocab_file`,
//! `--init_checkpoint`, …; the dashed spellings work too). Every setting is
//! optional on the command line and in the task file; where neither sets it,
//! [`crate::config`]'s default for the task applies (the reference scripts'
//! defaults, which `--help` lists from there).
//!
//! Each run writes to `--output_dir`: `metrics.jsonl` (one line per epoch,
//! then the test scores of the best epoch), `label_list.txt` (classify, ner),
//! `model.safetensors` (our format, the label names in its metadata) and the
//! test predictions (`test_results.tsv`, `test_predictions.txt` or
//! `test_predictions.json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use nezha_stages::atomic_file;
use nezha_stages::vocab::Vocab;
use nezha_train::model::NezhaConfig;
use tch::Device;

use crate::checkpoint::{self, ours, Architecture, Format};
use crate::classify::{self, Encoder, LabelMap, Layout, Part, TsvColumns};
use crate::config::{ClassifySettings, FinetuneConfig, MrcSettings, Task, TaskDefaults};
use crate::epochs::MetricsLog;
use crate::mrc::{self, AnswerSearch, Windower};
use crate::ner::{self, TagEncoder, TagMap};
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
    #[arg(
        long = "data_dir",
        visible_alias = "data-dir",
        required_unless_present = "config"
    )]
    pub data_dir: Option<PathBuf>,
    #[arg(
        long = "vocab_file",
        visible_alias = "vocab-file",
        required_unless_present = "config"
    )]
    pub vocab_file: Option<PathBuf>,
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
    #[arg(
        long = "output_dir",
        visible_alias = "output-dir",
        required_unless_present = "config"
    )]
    pub output_dir: Option<PathBuf>,
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
        long = "learning_rate",
        visible_alias = "learning-rate",
        help = with_default("", |d| format!("{:e}", d.train.learning_rate))
    )]
    pub learning_rate: Option<f64>,
    #[arg(
        long = "num_train_epochs",
        visible_alias = "num-train-epochs",
        help = with_default("", |d| d.train.epochs.to_string())
    )]
    pub num_train_epochs: Option<usize>,
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
        help = with_default("true or false.", |d| d.do_lower_case.to_string())
    )]
    pub do_lower_case: Option<bool>,
    #[arg(long, help = with_default("", |d| d.train.seed.to_string()))]
    pub seed: Option<u64>,
    #[arg(
        long,
        help = with_default("CPU threads for libtorch.", |d| d.threads.to_string())
    )]
    pub threads: Option<i32>,
    /// Skip evaluating and predicting test even if the test file exists.
    #[arg(long = "no_test", visible_alias = "no-test")]
    pub no_test: bool,
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
fn setting<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

/// A task file value that kept its position (for error messages).
fn spanned<T: Clone>(value: &Option<toml::Spanned<T>>) -> Option<T> {
    value.as_ref().map(|v| v.get_ref().clone())
}

/// The shared settings once flags, task file and defaults are combined.
#[derive(Debug, Clone)]
pub struct Common {
    pub data_dir: PathBuf,
    pub vocab_file: PathBuf,
    pub init_checkpoint: Option<PathBuf>,
    pub init_format: Option<Format>,
    pub bert_config_file: Option<PathBuf>,
    pub output_dir: PathBuf,
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    /// Batch sizes, learning rate, epochs, warmup and seed.
    pub train: FinetuneConfig,
    pub threads: i32,
    pub no_test: bool,
}

impl CommonArgs {
    /// Reads the task file if there is one; flags win over it, and it wins
    /// over the task's defaults.
    fn resolve(&self, task: Task) -> Result<(Common, task_file::Loaded)> {
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
        let common = Common {
            data_dir: required(&self.data_dir, &f.data_dir, "data_dir")?,
            vocab_file: required(&self.vocab_file, &f.vocab_file, "vocab_file")?,
            init_checkpoint: self
                .init_checkpoint
                .clone()
                .or_else(|| loaded.path(&f.init_checkpoint)),
            init_format: self.init_format.or(loaded.init_format),
            bert_config_file: self
                .bert_config_file
                .clone()
                .or_else(|| loaded.path(&f.bert_config_file)),
            output_dir: required(&self.output_dir, &f.output_dir, "output_dir")?,
            max_seq_length: setting(self.max_seq_length, f.max_seq_length, d.max_seq_length),
            do_lower_case: setting(self.do_lower_case, f.do_lower_case, d.do_lower_case),
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
                learning_rate: setting(self.learning_rate, f.learning_rate, d.train.learning_rate),
                epochs: setting(self.num_train_epochs, f.num_train_epochs, d.train.epochs),
                warmup_proportion: setting(
                    self.warmup_proportion,
                    f.warmup_proportion,
                    d.train.warmup_proportion,
                ),
                seed: setting(self.seed, f.seed, d.train.seed),
                ..d.train
            },
            threads: setting(self.threads, f.threads, d.threads),
            no_test: self.no_test || f.no_test.unwrap_or(false),
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
        FinetuneCommand::Classify(a) => run_classify(a),
        FinetuneCommand::Ner(a) => run_ner(a),
        FinetuneCommand::Mrc(a) => run_mrc(a),
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

fn build_model(c: &Common, arch: Architecture) -> Result<NezhaForFinetuning> {
    let given = c
        .bert_config_file
        .as_deref()
        .map(NezhaConfig::from_json_file)
        .transpose()?;
    tch::manual_seed(c.train.seed as i64);
    match &c.init_checkpoint {
        Some(path) => {
            let format = c.init_format.unwrap_or_else(|| Format::guess(path));
            let (w, _) = checkpoint::read(path, format, given.as_ref(), None)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut m = NezhaForFinetuning::new(&w.config, arch, Device::Cpu)?;
            let report = m.load(&w)?;
            println!(
                "initialised from {} ({format:?}); fresh: {:?}; unused: {:?}",
                path.display(),
                report.fresh,
                report.unused
            );
            Ok(m)
        }
        None => {
            let Some(cfg) = given else {
                bail!("give --init_checkpoint, or --bert_config_file to start from random weights")
            };
            println!("no --init_checkpoint: random weights");
            NezhaForFinetuning::new(&cfg, arch, Device::Cpu)
        }
    }
}

fn prepare(c: &Common) -> Result<Arc<Vocab>> {
    tch::set_num_threads(c.threads);
    std::fs::create_dir_all(&c.output_dir)
        .with_context(|| format!("creating {}", c.output_dir.display()))?;
    Ok(Arc::new(Vocab::load(&c.vocab_file).with_context(|| {
        format!("reading the vocabulary {}", c.vocab_file.display())
    })?))
}

fn write_labels(dir: &Path, names: &[String]) -> Result<()> {
    Ok(atomic_file::write_file(
        &dir.join("label_list.txt"),
        (names.join("\n") + "\n").as_bytes(),
    )?)
}

fn run_classify(a: &ClassifyArgs) -> Result<()> {
    let (common, loaded) = a.common.resolve(Task::Classify)?;
    let c = &common;
    let f = &loaded.file;
    let d = ClassifySettings::default();
    let columns = TsvColumns {
        text_a: setting(a.text_a.clone(), spanned(&f.text_a), d.columns.text_a),
        text_b: a.text_b.clone().or(spanned(&f.text_b)).or(d.columns.text_b),
        label: setting(
            a.label_column.clone(),
            spanned(&f.label_column),
            d.columns.label,
        ),
    };
    let layout: Layout = setting(a.task_name, loaded.task_name, d.layout);
    let vocab = prepare(c)?;
    let train = layout.read(&layout.path(&c.data_dir, Part::Train), &columns)?;
    let dev = layout.read(&layout.path(&c.data_dir, Part::Dev), &columns)?;
    let test_path = layout.path(&c.data_dir, Part::Test);
    let test = if c.no_test || !test_path.exists() {
        None
    } else {
        Some(layout.read(&test_path, &columns)?)
    };
    let labels = match layout.fixed_labels() {
        Some(names) => LabelMap::fixed(names, &train)?,
        None => LabelMap::from_training(&train)?,
    };
    write_labels(&c.output_dir, &labels.names)?;
    let enc = Encoder::new(vocab, c.do_lower_case, c.max_seq_length)?;
    let (tr, dv) = (
        enc.encode_all(&train, &labels)?,
        enc.encode_all(&dev, &labels)?,
    );
    let mut model = build_model(
        c,
        Architecture::SequenceClassification {
            num_labels: labels.len() as i64,
        },
    )?;
    println!(
        "train {} dev {} examples, labels {:?}",
        tr.len(),
        dv.len(),
        labels.names
    );
    let mut log = MetricsLog::new(&c.output_dir);
    let outcome = classify::fine_tune(&mut model, &tr, &dv, &c.train, |r| {
        println!(
            "epoch {} step {} train loss {:.4} dev accuracy {:.4} macro-F1 {:.4} ({:.0}s)",
            r.epoch, r.global_step, r.train_loss, r.dev.accuracy, r.dev.macro_f1, r.seconds
        );
        log.line(r)
    })?;
    println!("best dev epoch {}", outcome.best_epoch);
    ours::write(
        &c.output_dir.join("model.safetensors"),
        &model.weights(Some(labels.names.clone()))?,
    )?;
    if let Some(test) = test {
        let te = enc.encode_all(&test, &labels)?;
        let (pred, scores) = classify::evaluate(&model, &te, c.train.eval_batch_size)?;
        println!(
            "test accuracy {:.4} macro-F1 {:.4} ({} examples)",
            scores.accuracy, scores.macro_f1, scores.examples
        );
        log.line(&serde_json::json!({"best_epoch": outcome.best_epoch, "test": scores}))?;
        let pair = test.iter().any(|e| e.text_b.is_some());
        let mut out = String::from(if pair {
            "label\tprediction\ttext_a\ttext_b\n"
        } else {
            "label\tprediction\ttext_a\n"
        });
        for (e, p) in test.iter().zip(pred) {
            out.push_str(&format!("{}\t{}\t{}", e.label, labels.names[p], e.text_a));
            if pair {
                out.push('\t');
                out.push_str(e.text_b.as_deref().unwrap_or(""));
            }
            out.push('\n');
        }
        atomic_file::write_file(&c.output_dir.join("test_results.tsv"), out.as_bytes())?;
    }
    Ok(())
}

fn read_ner(path: &Path) -> Result<Vec<ner::Sentence>> {
    let f = ner::read_tagged(path)?;
    if !f.skipped.is_empty() {
        eprintln!(
            "{}: skipped {} sentence(s) with a malformed span:",
            path.display(),
            f.skipped.len()
        );
        for s in &f.skipped {
            eprintln!("  {s}");
        }
    }
    Ok(f.sentences)
}

fn run_ner(a: &NerArgs) -> Result<()> {
    let (common, _) = a.common.resolve(Task::Ner)?;
    let c = &common;
    let vocab = prepare(c)?;
    let train = read_ner(&c.data_dir.join("train.txt"))?;
    let dev = read_ner(&c.data_dir.join("dev.txt"))?;
    let test_path = c.data_dir.join("test.txt");
    let test = if c.no_test || !test_path.exists() {
        None
    } else {
        Some(read_ner(&test_path)?)
    };
    let tags = TagMap::from_training(&train)?;
    write_labels(&c.output_dir, &tags.names)?;
    let enc = TagEncoder::new(vocab, c.do_lower_case, c.max_seq_length)?;
    let (tr, dv) = (enc.encode_all(&train, &tags)?, enc.encode_all(&dev, &tags)?);
    let mut model = build_model(
        c,
        Architecture::TokenClassification {
            num_labels: tags.len() as i64,
        },
    )?;
    println!(
        "train {} dev {} sentences, tags {:?}",
        tr.len(),
        dv.len(),
        tags.names
    );
    let mut log = MetricsLog::new(&c.output_dir);
    let outcome = ner::fine_tune(&mut model, &tr, &dev, &dv, &tags, &c.train, |r| {
        println!(
            "epoch {} step {} train loss {:.4} dev entity P/R/F1 {:.4}/{:.4}/{:.4} token F1 {:.4} ({:.0}s)",
            r.epoch,
            r.global_step,
            r.train_loss,
            r.dev.entity.precision,
            r.dev.entity.recall,
            r.dev.entity.f1,
            r.dev.token.f1,
            r.seconds
        );
        log.line(r)
    })?;
    println!("best dev epoch {}", outcome.best_epoch);
    ours::write(
        &c.output_dir.join("model.safetensors"),
        &model.weights(Some(tags.names.clone()))?,
    )?;
    if let Some(test) = test {
        ensure!(!test.is_empty(), "the test file has no sentences");
        let te = enc.encode_all(&test, &tags)?;
        let (pred, scores) = ner::evaluate(&model, &test, &te, &tags, c.train.eval_batch_size)?;
        println!(
            "test entity P/R/F1 {:.4}/{:.4}/{:.4} token P/R/F1 {:.4}/{:.4}/{:.4} ({} sentences)",
            scores.entity.precision,
            scores.entity.recall,
            scores.entity.f1,
            scores.token.precision,
            scores.token.recall,
            scores.token.f1,
            scores.sentences
        );
        log.line(&serde_json::json!({"best_epoch": outcome.best_epoch, "test": scores}))?;
        ner::write_predictions(&c.output_dir.join("test_predictions.txt"), &test, &pred)?;
    }
    Ok(())
}

fn read_mrc(path: &Path) -> Result<Vec<mrc::MrcExample>> {
    let f = mrc::read_squad(path)?;
    if !f.skipped.is_empty() {
        eprintln!(
            "{}: skipped {} question(s) whose answer is not in the context:",
            path.display(),
            f.skipped.len()
        );
        for s in &f.skipped {
            eprintln!("  {s}");
        }
    }
    ensure!(
        !f.examples.is_empty(),
        "{}: no usable questions",
        path.display()
    );
    Ok(f.examples)
}

fn run_mrc(a: &MrcArgs) -> Result<()> {
    let (common, loaded) = a.common.resolve(Task::Mrc)?;
    let c = &common;
    let f = &loaded.file;
    let d = MrcSettings::default();
    let doc_stride = setting(a.doc_stride, spanned(&f.doc_stride), d.doc_stride);
    let max_query_length = setting(
        a.max_query_length,
        spanned(&f.max_query_length),
        d.max_query_length,
    );
    let search = AnswerSearch {
        n_best_size: setting(a.n_best_size, spanned(&f.n_best_size), d.search.n_best_size),
        max_answer_length: setting(
            a.max_answer_length,
            spanned(&f.max_answer_length),
            d.search.max_answer_length,
        ),
    };
    let vocab = prepare(c)?;
    let train = read_mrc(&c.data_dir.join("train.json"))?;
    let dev = read_mrc(&c.data_dir.join("dev.json"))?;
    let test_path = c.data_dir.join("test.json");
    let test = if c.no_test || !test_path.exists() {
        None
    } else {
        Some(read_mrc(&test_path)?)
    };
    let w = Windower::new(
        vocab,
        c.do_lower_case,
        c.max_seq_length,
        doc_stride,
        max_query_length,
    )?;
    let (tw, dw) = (w.windows(&train), w.windows(&dev));
    let mut model = build_model(c, Architecture::QuestionAnswering)?;
    println!(
        "train {} questions in {} windows, dev {} in {}",
        train.len(),
        tw.len(),
        dev.len(),
        dw.len()
    );
    let mut log = MetricsLog::new(&c.output_dir);
    let outcome = mrc::fine_tune(&mut model, &tw, (&dev, &dw), search, &c.train, |r| {
        println!(
            "epoch {} step {} train loss {:.4} dev EM {:.2} F1 {:.2} ({:.0}s)",
            r.epoch, r.global_step, r.train_loss, r.dev.em, r.dev.f1, r.seconds
        );
        log.line(r)
    })?;
    println!("best dev epoch {}", outcome.best_epoch);
    ours::write(
        &c.output_dir.join("model.safetensors"),
        &model.weights(None)?,
    )?;
    if let Some(test) = test {
        let tw = w.windows(&test);
        let (answers, scores) = mrc::evaluate(&model, &test, &tw, search, c.train.eval_batch_size)?;
        println!(
            "test EM {:.2} F1 {:.2} ({} questions)",
            scores.em, scores.f1, scores.examples
        );
        log.line(&serde_json::json!({"best_epoch": outcome.best_epoch, "test": scores}))?;
        let map: serde_json::Map<String, serde_json::Value> = test
            .iter()
            .zip(answers)
            .map(|(e, a)| (e.id.clone(), serde_json::Value::String(a)))
            .collect();
        atomic_file::write_file(
            &c.output_dir.join("test_predictions.json"),
            serde_json::to_string_pretty(&map)?.as_bytes(),
        )?;
    }
    Ok(())
}
