//! `--export_hf DIR`: a fine-tuned model as a directory that transformers
//! 4.57.6 loads with `AutoModelForSequenceClassification` (or the token
//! classification / question answering class) and `AutoTokenizer`, so it
//! can be served with the tools users already have: the weights and
//! `config.json` ([`crate::checkpoint::hf::write`], labels in `id2label`),
//! plus the tokenizer files `save_pretrained` writes for a `BertTokenizer`:
//! `vocab.txt`, `tokenizer_config.json` and `special_tokens_map.json`.

use std::path::Path;

use anyhow::{Context, Result};
use nezha_stages::atomic_file;
use serde_json::json;

use crate::checkpoint::{hf, ModelWeights};

/// The special tokens of the reference's vocabulary (BERT's).
const SPECIAL: [(&str, &str); 5] = [
    ("cls_token", "[CLS]"),
    ("mask_token", "[MASK]"),
    ("pad_token", "[PAD]"),
    ("sep_token", "[SEP]"),
    ("unk_token", "[UNK]"),
];

/// Writes `w` with the tokenizer of `vocab` (lower-casing as
/// `do_lower_case`) into `dir`, each file complete or not at all.
pub fn export(dir: &Path, w: &ModelWeights, vocab: &Path, do_lower_case: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    hf::write(dir, w)?;
    let words = std::fs::read(vocab).with_context(|| format!("reading {}", vocab.display()))?;
    atomic_file::write_file(&dir.join("vocab.txt"), &words)?;
    let mut config = serde_json::Map::new();
    config.insert("tokenizer_class".into(), json!("BertTokenizer"));
    config.insert("do_lower_case".into(), json!(do_lower_case));
    // BERT's FullTokenizer, as the reference tokenizes: Chinese characters
    // split, accents stripped exactly when lower-casing.
    config.insert("tokenize_chinese_chars".into(), json!(true));
    config.insert("strip_accents".into(), json!(null));
    config.insert(
        "model_max_length".into(),
        json!(w.config.max_position_embeddings),
    );
    let mut map = serde_json::Map::new();
    for (k, v) in SPECIAL {
        config.insert(k.into(), json!(v));
        map.insert(k.into(), json!(v));
    }
    let pretty = |v: serde_json::Map<String, serde_json::Value>| -> Result<Vec<u8>> {
        Ok((serde_json::to_string_pretty(&v)? + "\n").into_bytes())
    };
    atomic_file::write_file(&dir.join("tokenizer_config.json"), &pretty(config)?)?;
    atomic_file::write_file(&dir.join("special_tokens_map.json"), &pretty(map)?)?;
    Ok(())
}
