//! `nezha fill-mask`: what a pretrained checkpoint's masked-LM head
//! predicts for each `[MASK]` in a text, as Hugging Face's
//! `pipeline("fill-mask")` reports it (transformers
//! pipelines/fill_mask.py `FillMaskPipeline.postprocess`: softmax over the
//! vocabulary at each mask position, the top k tokens and probabilities).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use nezha_stages::wordpiece::WordPiece;
use nezha_train::model::{Mode, NezhaForPreTraining, PreTrainingInputs};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::pretrained::{check_vocab, CheckpointArgs};

/// The mask token as written in a text.
pub const MASK: &str = "[MASK]";

#[derive(Args, Debug, Clone)]
pub struct FillMaskArgs {
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
    /// The vocabulary. Default: vocab.txt in the checkpoint's directory.
    #[arg(long = "vocab_file", visible_alias = "vocab-file")]
    pub vocab_file: Option<PathBuf>,
    /// true or false, as the pipeline's tokenizer (default true).
    #[arg(long = "do_lower_case", visible_alias = "do-lower-case", action = clap::ArgAction::Set, default_value_t = true)]
    pub do_lower_case: bool,
    /// Predictions shown per mask.
    #[arg(long = "top_k", visible_alias = "top-k", default_value_t = 5)]
    pub top_k: usize,
    /// One JSON line per text: {"text", "masks": [[{"token_str", "score"}…]…]}.
    #[arg(long)]
    pub json: bool,
    /// Texts with one or more `[MASK]`; one per line on stdin when none.
    pub texts: Vec<String>,
}

/// One prediction for one mask.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub token_str: String,
    pub score: f32,
}

/// A loaded model and the tokenizer of its vocabulary.
pub struct MaskFiller {
    model: NezhaForPreTraining,
    tokenizer: WordPiece,
    device: Device,
}

/// The vocabulary beside a checkpoint (Hugging Face directories and our
/// checkpoint directories keep it there).
fn vocab_beside(checkpoint: &Path) -> Option<PathBuf> {
    let dir = if checkpoint.is_dir() {
        checkpoint
    } else {
        checkpoint.parent()?
    };
    let v = dir.join("vocab.txt");
    v.exists().then_some(v)
}

impl MaskFiller {
    pub fn load(args: &FillMaskArgs) -> Result<MaskFiller> {
        let loaded = args.checkpoint.load()?;
        let device = loaded.model.device();
        let vocab_file = match &args.vocab_file {
            Some(v) => v.clone(),
            None => vocab_beside(&args.checkpoint.init_checkpoint).with_context(|| {
                format!(
                    "no vocab.txt beside --init_checkpoint {}: give --vocab_file",
                    args.checkpoint.init_checkpoint.display()
                )
            })?,
        };
        let vocab = check_vocab(&vocab_file, &loaded.model.config)?;
        let tokenizer = WordPiece::new(Arc::new(vocab), args.do_lower_case)
            .with_context(|| format!("tokenizer for {}", vocab_file.display()))?;
        Ok(MaskFiller {
            model: loaded.model,
            tokenizer,
            device,
        })
    }

    /// `[CLS] text [SEP]` as ids, with every literal `[MASK]` kept as the
    /// mask token and the text between tokenized as the pipeline does. The
    /// reference tokenizer alone would split `[MASK]` into `[`, `mask`, `]`;
    /// Hugging Face's BertTokenizer splits special tokens out before
    /// tokenizing the rest (tokenization_utils.py `tokenize`, its
    /// `tokens_trie`), which this reproduces for the mask; other bracketed
    /// special tokens in a text are tokenized as ordinary text.
    pub fn encode(&self, text: &str) -> Result<(Vec<i64>, Vec<i64>)> {
        let vocab = self.tokenizer.vocab();
        let mut ids = vec![vocab.cls as i64];
        let mut masks = Vec::new();
        for (i, part) in text.split(MASK).enumerate() {
            if i > 0 {
                masks.push(ids.len() as i64);
                ids.push(vocab.mask as i64);
            }
            ids.extend(self.tokenizer.tokenize(part).into_iter().map(i64::from));
        }
        ids.push(vocab.sep as i64);
        ensure!(!masks.is_empty(), "no {MASK} in the text {text:?}");
        let max = self.model.config.max_position_embeddings as usize;
        ensure!(
            ids.len() <= max,
            "the text {text:?} is {} tokens with [CLS] and [SEP], more than the model's {max}",
            ids.len()
        );
        Ok((ids, masks))
    }

    /// The top `k` tokens and their probabilities for each mask, in order.
    pub fn predict(&self, text: &str, k: usize) -> Result<Vec<Vec<Prediction>>> {
        let (ids, masks) = self.encode(text)?;
        let (l, p) = (ids.len() as i64, masks.len() as i64);
        let d = self.device;
        let inputs = PreTrainingInputs {
            input_ids: Tensor::from_slice(&ids).reshape([1, l]).to_device(d),
            input_mask: Tensor::ones([1, l], (Kind::Int64, d)),
            segment_ids: Tensor::zeros([1, l], (Kind::Int64, d)),
            masked_lm_positions: Tensor::from_slice(&masks).reshape([1, p]).to_device(d),
            masked_lm_ids: Tensor::zeros([1, p], (Kind::Int64, d)),
            masked_lm_weights: Tensor::ones([1, p], (Kind::Float, d)),
            next_sentence_labels: Tensor::zeros([1], (Kind::Int64, d)),
        };
        let probs = tch::no_grad(|| {
            self.model
                .forward(&inputs, Mode::eval())
                .mlm_logits
                .softmax(-1, Kind::Float)
                .to_device(Device::Cpu)
        });
        let k = k.min(self.model.config.vocab_size as usize) as i64;
        let (values, indices) = probs.topk(k, -1, true, true);
        let mut out = Vec::with_capacity(masks.len());
        for m in 0..p {
            let v = Vec::<f32>::try_from(values.get(m))?;
            let i = Vec::<i64>::try_from(indices.get(m))?;
            out.push(
                v.into_iter()
                    .zip(i)
                    .map(|(score, id)| Prediction {
                        token_str: self.tokenizer.token(id as u32).to_string(),
                        score,
                    })
                    .collect(),
            );
        }
        Ok(out)
    }
}

/// `{"text": …, "masks": [[{"token_str": …, "score": …}, …], …]}` with the
/// keys in that order (serde_json's map would sort them).
fn json_line(text: &str, masks: &[Vec<Prediction>]) -> String {
    let str = |s: &str| Value::from(s).to_string();
    let masks: Vec<String> = masks
        .iter()
        .map(|m| {
            let preds: Vec<String> = m
                .iter()
                .map(|p| {
                    format!(
                        "{{\"token_str\":{},\"score\":{}}}",
                        str(&p.token_str),
                        Value::from(p.score as f64)
                    )
                })
                .collect();
            format!("[{}]", preds.join(","))
        })
        .collect();
    format!("{{\"text\":{},\"masks\":[{}]}}", str(text), masks.join(","))
}

fn print(text: &str, masks: &[Vec<Prediction>], as_json: bool) {
    if as_json {
        println!("{}", json_line(text, masks));
        return;
    }
    println!("{text}");
    for (i, m) in masks.iter().enumerate() {
        let preds: Vec<String> = m
            .iter()
            .map(|p| format!("{} {:.4}", p.token_str, p.score))
            .collect();
        println!("  [MASK] {}: {}", i + 1, preds.join("  "));
    }
}

pub fn run(args: &FillMaskArgs) -> Result<()> {
    ensure!(args.top_k > 0, "--top_k must be at least 1");
    // Texts given as arguments are all checked before the model loads, so a
    // mistyped one costs nothing.
    if let Some(t) = args.texts.iter().find(|t| !t.contains(MASK)) {
        bail!("no {MASK} in the text {t:?}: fill-mask predicts the token at each {MASK}");
    }
    let filler = MaskFiller::load(args)?;
    if !args.texts.is_empty() {
        for t in &args.texts {
            print(t, &filler.predict(t, args.top_k)?, args.json);
        }
        return Ok(());
    }
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading texts from stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let masks = filler
            .predict(&line, args.top_k)
            .with_context(|| format!("stdin line {}", n + 1))?;
        print(&line, &masks, args.json);
    }
    Ok(())
}
