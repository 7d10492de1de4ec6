//! `nezha vocab`: builds a WordPiece vocabulary from a corpus with the
//! `tokenizers` crate's trainer, the reference's special tokens first, so a
//! user with another language or domain can start from their own text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use nezha_stages::atomic_file::AtomicFile;
use nezha_stages::ingest::{resolve_inputs, spawn_reader, Ingest, JsonLines, Text};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Model, Tokenizer};

/// The reference vocab's special tokens, in the order the reference expects
/// to find them first.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

#[derive(Args, Debug, Clone)]
pub struct VocabArgs {
    /// Corpus: files, directories, globs, comma-separated lists (.gz ok).
    #[arg(long)]
    pub input: String,
    /// Where to write the vocab, one token per line.
    #[arg(long)]
    pub output: PathBuf,
    /// Number of tokens in the vocab, special tokens included.
    #[arg(long, default_value_t = 21128)]
    pub vocab_size: usize,
    /// Keep only pieces seen at least this often.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// Lower-case and strip accents, as `do_lower_case`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub do_lower_case: bool,
    /// Read JSON Lines with the text in this field instead of plain text.
    #[arg(long)]
    pub jsonl_field: Option<String>,
}

pub fn run(args: &VocabArgs) -> anyhow::Result<()> {
    if args.vocab_size <= SPECIAL_TOKENS.len() {
        anyhow::bail!(
            "--vocab-size {} leaves no room beyond the {} special tokens",
            args.vocab_size,
            SPECIAL_TOKENS.len()
        );
    }
    let files = Arc::new(resolve_inputs(&[&args.input], std::path::Path::new(""))?);
    let format: Arc<dyn Ingest> = match &args.jsonl_field {
        Some(field) => Arc::new(JsonLines {
            text_field: field.clone(),
            ..JsonLines::default()
        }),
        None => Arc::new(Text {
            document_per_file: true,
            ..Text::default()
        }),
    };
    let words = build(files, format, args)?;
    write_vocab(&args.output, &words)?;
    println!("wrote {} tokens to {}", words.len(), args.output.display());
    Ok(())
}

/// Trains the vocab; returns the tokens in id order.
fn build(
    files: Arc<Vec<PathBuf>>,
    format: Arc<dyn Ingest>,
    args: &VocabArgs,
) -> anyhow::Result<Vec<String>> {
    let (tx, rx) = crossbeam_channel::bounded(256);
    let reader = spawn_reader(format, files, 0, 1, Arc::new(AtomicU64::new(0)), tx);
    let (err_tx, err_rx) = crossbeam_channel::bounded(1);
    // The trainer wants plain lines; an input error ends the lines and is
    // reported after training returns.
    let lines = rx.into_iter().map_while(move |doc| match doc {
        Ok(doc) => Some(doc.lines),
        Err(e) => {
            let _ = err_tx.send(e);
            None
        }
    });
    let lines = lines.flatten();

    let lower = args.do_lower_case;
    let mut tokenizer = Tokenizer::new(WordPiece::default());
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, Some(lower), lower)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    let specials = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer: TrainerWrapper = WordPieceTrainer::builder()
        .vocab_size(args.vocab_size)
        .min_frequency(args.min_frequency)
        .special_tokens(specials)
        .continuing_subword_prefix("##".into())
        .show_progress(true)
        .build()
        .into();
    tokenizer
        .train(&mut trainer, lines)
        .map_err(|e| anyhow::anyhow!("training the vocab: {e}"))?;
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the corpus reader panicked"))?;
    if let Ok(e) = err_rx.try_recv() {
        return Err(e.into());
    }
    let mut vocab: Vec<(String, u32)> = tokenizer.get_model().get_vocab().into_iter().collect();
    vocab.sort_by_key(|(_, id)| *id);
    let words: Vec<String> = vocab.into_iter().map(|(w, _)| w).collect();
    if words.len() <= SPECIAL_TOKENS.len() {
        anyhow::bail!("the corpus gave no tokens to build a vocab from");
    }
    Ok(words)
}

fn write_vocab(path: &Path, words: &[String]) -> anyhow::Result<()> {
    let mut out = AtomicFile::create(path)?;
    for w in words {
        writeln!(out, "{w}").with_context(|| format!("writing {}", path.display()))?;
    }
    out.commit()?;
    Ok(())
}
