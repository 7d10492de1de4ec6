//! The reference-mode generator against the real reference's output.
//!
//! For each case of tests/fixtures/golden/manifest.json (written by
//! scripts/fixtures/golden.sh, which runs bert-tensorflow 1.0.4's
//! create_pretraining_data.py), the tokenized documents the reference held
//! are fed to `ReferenceInstances` with the case's flags, and every instance
//! must equal the reference's record at the same place, feature by feature.

mod common;

use std::collections::BTreeMap;

use common::{compare, documents, flag, golden_records, gunzip, params, root};
use nezha_stages::instances::ReferenceInstances;
use nezha_stages::stage::run_all;
use nezha_stages::Instance;
use serde_json::Value;

const GOLDEN: &str = "tests/fixtures/golden";

fn case(name: &str) -> Value {
    common::case(GOLDEN, name)
}

fn manifest() -> Value {
    common::manifest(GOLDEN)
}

fn generate(case: &Value, seed: i64) -> Vec<Instance> {
    let mut stage = ReferenceInstances::new(params(case, seed)).unwrap();
    run_all(&mut stage, documents(case)).unwrap()
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
