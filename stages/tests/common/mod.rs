//! The reference's golden cases (tests/fixtures/golden/, tests/fixtures/wwm/):
//! each manifest lists the tokenized documents the reference script held,
//! its flags and the records it wrote; these helpers feed the documents to
//! `ReferenceInstances` and compare instances with records, feature by feature.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::GzDecoder;
use nezha_stages::instances::ReferenceParams;
use nezha_stages::{Instance, TokenizedDocument, Vocab};
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn gunzip(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

/// The manifest of a fixture folder (`tests/fixtures/golden`, `tests/fixtures/wwm`).
pub fn manifest(fixtures: &str) -> Value {
    let path = root().join(fixtures).join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn case(fixtures: &str, name: &str) -> Value {
    manifest(fixtures)["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("manifest has no case {name}"))
        .clone()
}

pub fn documents(case: &Value) -> Vec<TokenizedDocument> {
    let path = root().join(case["documents"].as_str().unwrap());
    let docs: Vec<Vec<Vec<u32>>> =
        serde_json::from_str(&gunzip(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        docs.len() as u64,
        case["num_documents"].as_u64().unwrap(),
        "{}",
        path.display()
    );
    docs.into_iter()
        .enumerate()
        .map(|(index, segments)| TokenizedDocument {
            index: index as u64,
            segments,
        })
        .collect()
}

/// The reference's records in output order: record k went to output file
/// k mod n (round-robin), as its k / n-th record.
pub fn golden_records(case: &Value) -> Vec<BTreeMap<String, Value>> {
    let files: Vec<Vec<BTreeMap<String, Value>>> = case["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|out| {
            let path = root().join(out["features"].as_str().unwrap());
            let rows: Vec<BTreeMap<String, Value>> = BufReader::new(gunzip(&path).as_bytes())
                .lines()
                .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
                .collect();
            assert_eq!(
                rows.len() as u64,
                out["count"].as_u64().unwrap(),
                "{}",
                path.display()
            );
            rows
        })
        .collect();
    let total: usize = files.iter().map(Vec::len).sum();
    (0..total)
        .map(|k| files[k % files.len()][k / files.len()].clone())
        .collect()
}

pub fn flag(case: &Value, name: &str) -> Value {
    case["flags"][name].clone()
}

pub fn params(case: &Value, seed: i64) -> ReferenceParams {
    let vocab = Vocab::load(&root().join(flag(case, "vocab_file").as_str().unwrap())).unwrap();
    ReferenceParams {
        max_seq_length: flag(case, "max_seq_length").as_u64().unwrap() as usize,
        short_seq_prob: flag(case, "short_seq_prob").as_f64().unwrap(),
        dupe_factor: flag(case, "dupe_factor").as_u64().unwrap() as usize,
        masked_lm_prob: flag(case, "masked_lm_prob").as_f64().unwrap(),
        max_predictions_per_seq: flag(case, "max_predictions_per_seq").as_u64().unwrap() as usize,
        random_seed: seed,
        vocab: Arc::new(vocab),
    }
}

/// The features the reference writes for one instance, padded the same way.
pub fn features(
    inst: &Instance,
    max_seq_length: usize,
    max_predictions: usize,
) -> BTreeMap<String, Value> {
    let pad = |mut v: Vec<i64>, n: usize| {
        v.resize(n, 0);
        Value::from(v)
    };
    let len = inst.tokens.len();
    let a = inst.segment_a_len as usize;
    let mut f = BTreeMap::new();
    f.insert(
        "input_ids".into(),
        pad(
            inst.tokens.iter().map(|&t| t as i64).collect(),
            max_seq_length,
        ),
    );
    f.insert("input_mask".into(), pad(vec![1; len], max_seq_length));
    f.insert(
        "segment_ids".into(),
        pad((0..len).map(|i| (i >= a) as i64).collect(), max_seq_length),
    );
    f.insert(
        "masked_lm_positions".into(),
        pad(
            inst.masked_positions.iter().map(|&p| p as i64).collect(),
            max_predictions,
        ),
    );
    f.insert(
        "masked_lm_ids".into(),
        pad(
            inst.masked_labels.iter().map(|&t| t as i64).collect(),
            max_predictions,
        ),
    );
    let mut weights = vec![1.0f64; inst.masked_positions.len()];
    weights.resize(max_predictions, 0.0);
    f.insert("masked_lm_weights".into(), Value::from(weights));
    f.insert(
        "next_sentence_labels".into(),
        Value::from(vec![inst.is_random_next as i64]),
    );
    f
}

/// Number of instances that differ from the reference's; panics with the
/// first difference when `strict`.
pub fn compare(case: &Value, instances: &[Instance], strict: bool) -> usize {
    let name = case["name"].as_str().unwrap();
    let golden = golden_records(case);
    if strict {
        assert_eq!(instances.len(), golden.len(), "case {name}: instance count");
    }
    let max_seq_length = flag(case, "max_seq_length").as_u64().unwrap() as usize;
    let max_predictions = flag(case, "max_predictions_per_seq").as_u64().unwrap() as usize;
    let mut differing = 0;
    for (k, (inst, want)) in instances.iter().zip(&golden).enumerate() {
        let got = features(inst, max_seq_length, max_predictions);
        if &got != want {
            differing += 1;
            if strict {
                for (key, want_value) in want {
                    let got_value = got.get(key).unwrap_or(&Value::Null);
                    assert_eq!(
                        got_value, want_value,
                        "case {name}: instance {k}, feature {key} differs from the reference"
                    );
                }
                assert_eq!(
                    got.len(),
                    want.len(),
                    "case {name}: instance {k}: feature names differ"
                );
            }
        }
    }
    differing + instances.len().abs_diff(golden.len())
}
