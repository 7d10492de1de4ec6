//! `nezha finetune <task>`: the command line of the fine-tuning tasks, with
//! the reference scripts' flag names (`--data_dir`, `--vocab_file`,
//! `--init_checkpoint`, …; the dashed spellings work too) and their
//! defaults: `run_classifier.py`'s for `classify` (seq 128, batch 32,
//! 3 epochs, lr 3e-5) and `scripts/run_seq_labelling.sh`'s for `ner`
//! (seq 256, batch 16, 10 epochs, lr 3e-5); for `mrc`, `run_squad.py`'s
//! flags (stride 128, question 64, n-best 20, answer 30, cased) with the
//! paper's Table 3 CMRC settings (seq 384, batch 16, 2 epochs, lr 3e-5).
//!
//! Each run writes to `--output_dir`: `metrics.jsonl` (one line per epoch,
//! then the test scores of the best epoch), `label_list.txt` (classify, ner),
//! `model.safetensors` (our format, the label names in its metadata) and the
//! test predictions (`test_results.tsv`, `test_predictions.txt` or
//! `test_predictions.json`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use nezha_stages::vocab::Vocab;
use nezha_train::model::NezhaConfig;
use tch::Device;

use crate::checkpoint::{self, ours, Architecture, Format};
use crate::classify::{self, ClassifyConfig, Encoder, LabelMap, Layout, Part, TsvColumns};
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
    /// Default: the task's (classify 128, ner 256, mrc 384).
    #[arg(long = "max_seq_length", visible_alias = "max-seq-length")]
    pub max_seq_length: Option<usize>,
    /// Default: the task's (classify 32, ner 16, mrc 16).
    #[arg(long = "train_batch_size", visible_alias = "train-batch-size")]
    pub train_batch_size: Option<usize>,
    /// Default: 8.
    #[arg(long = "eval_batch_size", visible_alias = "eval-batch-size")]
    pub eval_batch_size: Option<usize>,
    /// Default: 3e-5.
    #[arg(long = "learning_rate", visible_alias = "learning-rate")]
    pub learning_rate: Option<f64>,
    /// Default: the task's (classify 3, ner 10, mrc 2).
    #[arg(long = "num_train_epochs", visible_alias = "num-train-epochs")]
    pub num_train_epochs: Option<usize>,
    /// Default: 0.1.
    #[arg(long = "warmup_proportion", visible_alias = "warmup-proportion")]
    pub warmup_proportion: Option<f64>,
    /// true or false. Default: the task's (classify and ner true, mrc
    /// false, as the reference's CMRC script).
    #[arg(long = "do_lower_case", visible_alias = "do-lower-case", action = clap::ArgAction::Set)]
    pub do_lower_case: Option<bool>,
    /// Default: 12345.
    #[arg(long)]
    pub seed: Option<u64>,
    /// CPU threads for libtorch. Default: 2.
    #[arg(long)]
    pub threads: Option<i32>,
    /// Skip evaluating and predicting test even if the test file exists.
    #[arg(long = "no_test", visible_alias = "no-test")]
    pub no_test: bool,
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
    pub max_seq_length: Option<usize>,
    pub train_batch_size: Option<usize>,
    pub eval_batch_size: usize,
    pub learning_rate: f64,
    pub num_train_epochs: Option<usize>,
    pub warmup_proportion: f64,
    pub do_lower_case: Option<bool>,
    pub seed: u64,
    pub threads: i32,
    pub no_test: bool,
}

impl CommonArgs {
    /// Reads the task file if there is one; flags win over it.
    fn resolve(&self, task: &str) -> Result<(Common, task_file::Loaded)> {
        let loaded = match &self.config {
            Some(path) => task_file::load(path, task)?,
            None => task_file::Loaded::default(),
        };
        let f = &loaded.file;
        let origin = |key: &str| match &self.config {
            Some(p) => format!("give --{key} or set {key} in [{task}] of {}", p.display()),
            None => format!("give --{key}"),
        };
        let required = |flag: &Option<PathBuf>, file: &Option<String>, key: &str| {
            flag.clone()
                .or_else(|| loaded.path(file))
                .with_context(|| origin(key))
        };
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
            max_seq_length: self.max_seq_length.or(f.max_seq_length),
            train_batch_size: self.train_batch_size.or(f.train_batch_size),
            eval_batch_size: self.eval_batch_size.or(f.eval_batch_size).unwrap_or(8),
            learning_rate: self.learning_rate.or(f.learning_rate).unwrap_or(3e-5),
            num_train_epochs: self.num_train_epochs.or(f.num_train_epochs),
            warmup_proportion: self
                .warmup_proportion
                .or(f.warmup_proportion)
                .unwrap_or(0.1),
            do_lower_case: self.do_lower_case.or(f.do_lower_case),
            seed: self.seed.or(f.seed).unwrap_or(12345),
            threads: self.threads.or(f.threads).unwrap_or(2),
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
    /// Name of the first text column (tsv, jsonl). Default: text_a.
    #[arg(long = "text_a", visible_alias = "text-a")]
    pub text_a: Option<String>,
    /// Name of the second text column, for sentence pairs (tsv, jsonl).
    #[arg(long = "text_b", visible_alias = "text-b")]
    pub text_b: Option<String>,
    /// Name of the label column (tsv, jsonl). Default: label.
    #[arg(long = "label_column", visible_alias = "label-column")]
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
    /// Default: 128.
    #[arg(long = "doc_stride", visible_alias = "doc-stride")]
    pub doc_stride: Option<usize>,
    /// Default: 64.
    #[arg(long = "max_query_length", visible_alias = "max-query-length")]
    pub max_query_length: Option<usize>,
    /// Default: 20.
    #[arg(long = "n_best_size", visible_alias = "n-best-size")]
    pub n_best_size: Option<usize>,
    /// Default: 30.
    #[arg(long = "max_answer_length", visible_alias = "max-answer-length")]
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

fn config(c: &Common, batch: usize, epochs: usize) -> ClassifyConfig {
    ClassifyConfig {
        batch_size: c.train_batch_size.unwrap_or(batch),
        eval_batch_size: c.eval_batch_size,
        learning_rate: c.learning_rate,
        epochs: c.num_train_epochs.unwrap_or(epochs),
        warmup_proportion: c.warmup_proportion,
        seed: c.seed,
        ..ClassifyConfig::default()
    }
}

/// The weights format of `path` when not given: a directory with a
/// config.json is Hugging Face's, a prefix with a `.index` beside it TF's,
/// anything else ours.
fn guess_format(path: &Path) -> Format {
    if path.is_dir() && path.join("config.json").exists() {
        Format::HuggingFace
    } else if PathBuf::from(format!("{}.index", path.display())).exists() {
        Format::Tf
    } else {
        Format::Nezha
    }
}

fn build_model(c: &Common, arch: Architecture) -> Result<NezhaForFinetuning> {
    let given = c
        .bert_config_file
        .as_deref()
        .map(NezhaConfig::from_json_file)
        .transpose()?;
    tch::manual_seed(c.seed as i64);
    match &c.init_checkpoint {
        Some(path) => {
            let format = c.init_format.unwrap_or_else(|| guess_format(path));
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
    nezha_train::atomic::write_file(
        &dir.join("label_list.txt"),
        (names.join("\n") + "\n").as_bytes(),
    )
}

fn log_line(log: &mut std::fs::File, v: &impl serde::Serialize) -> Result<()> {
    writeln!(log, "{}", serde_json::to_string(v)?)?;
    Ok(())
}

fn run_classify(a: &ClassifyArgs) -> Result<()> {
    let (common, loaded) = a.common.resolve("classify")?;
    let c = &common;
    let f = &loaded.file;
    let text = |flag: &Option<String>, file: &Option<toml::Spanned<String>>| {
        flag.clone()
            .or_else(|| file.as_ref().map(|v| v.get_ref().clone()))
    };
    let columns = TsvColumns {
        text_a: text(&a.text_a, &f.text_a).unwrap_or_else(|| "text_a".into()),
        text_b: text(&a.text_b, &f.text_b),
        label: text(&a.label_column, &f.label_column).unwrap_or_else(|| "label".into()),
    };
    let layout = a.task_name.or(loaded.task_name).unwrap_or(Layout::Tsv);
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
    let enc = Encoder::new(
        vocab,
        c.do_lower_case.unwrap_or(true),
        c.max_seq_length.unwrap_or(128),
    )?;
    let (tr, dv) = (
        enc.encode_all(&train, &labels)?,
        enc.encode_all(&dev, &labels)?,
    );
    let cfg = config(c, 32, 3);
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
    let mut log = std::fs::File::create(c.output_dir.join("metrics.jsonl"))?;
    let outcome = classify::fine_tune(&mut model, &tr, &dv, &cfg, |r| {
        println!(
            "epoch {} step {} train loss {:.4} dev accuracy {:.4} macro-F1 {:.4} ({:.0}s)",
            r.epoch, r.global_step, r.train_loss, r.dev.accuracy, r.dev.macro_f1, r.seconds
        );
        log_line(&mut log, r)
    })?;
    println!("best dev epoch {}", outcome.best_epoch);
    ours::write(
        &c.output_dir.join("model.safetensors"),
        &model.weights(Some(labels.names.clone()))?,
    )?;
    if let Some(test) = test {
        let te = enc.encode_all(&test, &labels)?;
        let (pred, scores) = classify::evaluate(&model, &te, c.eval_batch_size)?;
        println!(
            "test accuracy {:.4} macro-F1 {:.4} ({} examples)",
            scores.accuracy, scores.macro_f1, scores.examples
        );
        log_line(
            &mut log,
            &serde_json::json!({"best_epoch": outcome.best_epoch, "test": scores}),
        )?;
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
        nezha_train::atomic::write_file(&c.output_dir.join("test_results.tsv"), out.as_bytes())?;
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
    let (common, _) = a.common.resolve("ner")?;
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
    let enc = TagEncoder::new(
        vocab,
        c.do_lower_case.unwrap_or(true),
        c.max_seq_length.unwrap_or(256),
    )?;
    let (tr, dv) = (enc.encode_all(&train, &tags)?, enc.encode_all(&dev, &tags)?);
    let cfg = config(c, 16, 10);
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
    let mut log = std::fs::File::create(c.output_dir.join("metrics.jsonl"))?;
    let outcome = ner::fine_tune(&mut model, &tr, &dev, &dv, &tags, &cfg, |r| {
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
        log_line(&mut log, r)
    })?;
    println!("best dev epoch {}", outcome.best_epoch);
    ours::write(
        &c.output_dir.join("model.safetensors"),
        &model.weights(Some(tags.names.clone()))?,
    )?;
    if let Some(test) = test {
        ensure!(!test.is_empty(), "the test file has no sentences");
        let te = enc.encode_all(&test, &tags)?;
        let (pred, scores) = ner::evaluate(&model, &test, &te, &tags, c.eval_batch_size)?;
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
        log_line(
            &mut log,
            &serde_json::json!({"best_epoch": outcome.best_epoch, "test": scores}),
        )?;
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
    let (common, loaded) = a.common.resolve("mrc")?;
    let c = &common;
    let f = &loaded.file;
    let setting = |flag: Option<usize>, file: &Option<toml::Spanned<usize>>, default: usize| {
        flag.or(file.as_ref().map(|v| *v.get_ref()))
            .unwrap_or(default)
    };
    let doc_stride = setting(a.doc_stride, &f.doc_stride, 128);
    let max_query_length = setting(a.max_query_length, &f.max_query_length, 64);
    let n_best_size = setting(a.n_best_size, &f.n_best_size, 20);
    let max_answer_length = setting(a.max_answer_length, &f.max_answer_length, 30);
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
        c.do_lower_case.unwrap_or(false),
        c.max_seq_length.unwrap_or(384),
        doc_stride,
        max_query_length,
    )?;
    let (tw, dw) = (w.windows(&train), w.windows(&dev));
    let search = AnswerSearch {
        n_best_size,
        max_answer_length,
    };
    let cfg = config(c, 16, 2);
    let mut model = build_model(c, Architecture::QuestionAnswering)?;
    println!(
        "train {} questions in {} windows, dev {} in {}",
        train.len(),
        tw.len(),
        dev.len(),
        dw.len()
    );
    let mut log = std::fs::File::create(c.output_dir.join("metrics.jsonl"))?;
    let outcome = mrc::fine_tune(&mut model, &tw, (&dev, &dw), search, &cfg, |r| {
        println!(
            "epoch {} step {} train loss {:.4} dev EM {:.2} F1 {:.2} ({:.0}s)",
            r.epoch, r.global_step, r.train_loss, r.dev.em, r.dev.f1, r.seconds
        );
        log_line(&mut log, r)
    })?;
    println!("best dev epoch {}", outcome.best_epoch);
    ours::write(
        &c.output_dir.join("model.safetensors"),
        &model.weights(None)?,
    )?;
    if let Some(test) = test {
        let tw = w.windows(&test);
        let (answers, scores) = mrc::evaluate(&model, &test, &tw, search, c.eval_batch_size)?;
        println!(
            "test EM {:.2} F1 {:.2} ({} questions)",
            scores.em, scores.f1, scores.examples
        );
        log_line(
            &mut log,
            &serde_json::json!({"best_epoch": outcome.best_epoch, "test": scores}),
        )?;
        let map: serde_json::Map<String, serde_json::Value> = test
            .iter()
            .zip(answers)
            .map(|(e, a)| (e.id.clone(), serde_json::Value::String(a)))
            .collect();
        nezha_train::atomic::write_file(
            &c.output_dir.join("test_predictions.json"),
            serde_json::to_string_pretty(&map)?.as_bytes(),
        )?;
    }
    Ok(())
}
