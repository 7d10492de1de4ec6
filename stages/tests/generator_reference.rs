//! The reference-mode generator against the real reference's output.
//!
//! For each case of tests/fixtures/golden/manifest.json (written by
//! scripts/fixtures/golden.sh, which runs bert-tensorflow 1.0.4's
//! create_pretraining_data.py), the tokenized documents the reference held
//! are fed to `ReferenceInstances` with the case's flags, and every instance
//! must equal the reference's record at the same place, feature by feature.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::GzDecoder;
use nezha_stages::instances::{ReferenceInstances, ReferenceParams};
use nezha_stages::stage::run_all;
use nezha_stages::{Instance, TokenizedDocument, Vocab};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gunzip(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

fn manifest() -> Value {
    let path = root().join("tests/fixtures/golden/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case(name: &str) -> Value {
    manifest()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("manifest has no case {name}"))
        .clone()
}

fn documents(case: &Value) -> Vec<TokenizedDocument> {
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
fn golden_records(case: &Value) -> Vec<BTreeMap<String, Value>> {
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

fn flag(case: &Value, name: &str) -> Value {
    case["flags"][name].clone()
}

fn params(case: &Value, seed: i64) -> ReferenceParams {
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
fn features(
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

fn generate(case: &Value, seed: i64) -> Vec<Instance> {
    let mut stage = ReferenceInstances::new(params(case, seed)).unwrap();
    run_all(&mut stage, documents(case)).unwrap()
}

/// Number of instances that differ from the reference's; panics with the
/// first difference when `strict`.
fn compare(case: &Value, instances: &[Instance], strict: bool) -> usize {
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

fn check(name: &str) {
    let case = case(name);
    let seed = flag(&case, "random_seed").as_i64().unwrap();
    let instances = generate(&case, seed);
    assert_eq!(compare(&case, &instances, true), 0);
    assert_eq!(
        instances.len() as u64,
        case["num_instances"].as_u64().unwrap()
    );
}

#[test]
fn chinese_seq_128() {
    check("zh128");
}

#[test]
fn chinese_seq_64_short_seq_prob_half() {
    check("zh64");
}

#[test]
fn chinese_seq_512_max_predictions_80() {
    check("zh512");
}

#[test]
fn english_seq_128() {
    check("en128");
}

#[test]
fn two_inputs_two_outputs_big_seed() {
    check("multi");
}

#[test]
fn reader_edge_cases() {
    check("reader");
}

#[test]
fn every_case_in_the_manifest_is_checked() {
    let names: Vec<String> = manifest()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["zh128", "zh64", "zh512", "en128", "multi", "reader"]
    );
}

/// The comparison is sensitive: another seed gives other instances.
#[test]
fn another_seed_does_not_match() {
    let case = case("zh128");
    let seed = flag(&case, "random_seed").as_i64().unwrap();
    let instances = generate(&case, seed + 1);
    let differing = compare(&case, &instances, false);
    assert!(
        differing > instances.len() / 2,
        "only {differing} of {} differ",
        instances.len()
    );
}

/// The golden records themselves are well-formed reference output.
#[test]
fn golden_records_are_consistent() {
    for case in manifest()["cases"].as_array().unwrap() {
        let max_seq_length = flag(case, "max_seq_length").as_u64().unwrap() as usize;
        let (mut random_next, mut total) = (0, 0);
        for row in golden_records(case) {
            let ids = row["input_ids"].as_array().unwrap();
            let mask = row["input_mask"].as_array().unwrap();
            assert_eq!(ids.len(), max_seq_length);
            let len = mask.iter().filter(|m| m.as_i64() == Some(1)).count();
            assert!(len <= max_seq_length && len >= 5);
            random_next += row["next_sentence_labels"][0].as_i64().unwrap();
            total += 1;
        }
        assert!(
            random_next > 0 && random_next < total,
            "case {}: NSP labels all equal",
            case["name"]
        );
    }
}

/// The JSON features the tests compare against are exactly the raw records
/// the reference wrote: every golden TFRecord, read with the crate's own
/// reader, decodes to the same features.
#[test]
fn golden_json_is_the_raw_records() {
    use nezha_stages::tfrecord::{open_records, parse_features, FeatureValues};
    for case in manifest()["cases"].as_array().unwrap() {
        for out in case["outputs"].as_array().unwrap() {
            let path = root().join(out["records"].as_str().unwrap());
            let features = root().join(out["features"].as_str().unwrap());
            let rows: Vec<BTreeMap<String, Value>> = gunzip(&features)
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            let mut n = 0;
            for (k, record) in open_records(&path).unwrap().enumerate() {
                let parsed = parse_features(&record.unwrap()).unwrap();
                let as_json: BTreeMap<String, Value> = parsed
                    .into_iter()
                    .map(|(name, values)| {
                        let v = match values {
                            FeatureValues::Int64(v) => Value::from(v),
                            FeatureValues::Float(v) => {
                                Value::from(v.into_iter().map(f64::from).collect::<Vec<_>>())
                            }
                            FeatureValues::Bytes(_) => {
                                panic!("{}: bytes feature {name}", path.display())
                            }
                        };
                        (name, v)
                    })
                    .collect();
                assert_eq!(Some(&as_json), rows.get(k), "{} record {k}", path.display());
                n += 1;
            }
            assert_eq!(n, rows.len(), "{}", path.display());
        }
    }
}
