//! `nezha create_pretraining_data` against the reference script's own
//! output: the golden files in tests/fixtures/golden were written by
//! bert-tensorflow 1.0.4's create_pretraining_data.py (regenerate with
//! scripts/fixtures/golden.sh). Every record must have exactly the same
//! parsed features. The reference's bytes vary per record (its feature map
//! order is random), so features are compared, and our own bytes are
//! checked to be deterministic.

use std::path::{Path, PathBuf};
use std::process::Command;

use nezha_stages::tfrecord::{open_records, parse_features};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/golden/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs our drop-in with the case's reference flags, writing the outputs
/// into `dir`. Returns our output paths in the order of the case's outputs.
fn run_case(case: &serde_json::Value, dir: &Path) -> Vec<PathBuf> {
    let mut outputs = Vec::new();
    let mut args = vec!["create_pretraining_data".to_string()];
    for arg in case["argv"].as_array().unwrap() {
        let arg = arg.as_str().unwrap();
        if let Some(names) = arg.strip_prefix("--output_file=") {
            outputs = names.split(',').map(|n| dir.join(n)).collect();
            let joined: Vec<String> = outputs.iter().map(|p| p.display().to_string()).collect();
            args.push(format!("--output_file={}", joined.join(",")));
        } else {
            args.push(arg.to_string());
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args(&args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: nezha failed: {}",
        case["name"],
        String::from_utf8_lossy(&out.stderr)
    );
    outputs
}

fn records(path: &Path) -> Vec<Vec<u8>> {
    open_records(path).unwrap().map(|r| r.unwrap()).collect()
}

#[test]
fn every_golden_case_matches_the_reference_record_for_record() {
    let manifest = manifest();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 6, "expected the full set of golden cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ours = run_case(case, dir.path());
        let golden = case["outputs"].as_array().unwrap();
        assert_eq!(ours.len(), golden.len(), "{name}: number of output files");
        for (mine, gold) in ours.iter().zip(golden) {
            let expected = records(&root().join(gold["records"].as_str().unwrap()));
            let got = records(mine);
            assert_eq!(
                got.len(),
                expected.len(),
                "{name}: record count of {}",
                mine.display()
            );
            assert_eq!(got.len() as u64, gold["count"].as_u64().unwrap());
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                let (g, e) = (parse_features(g).unwrap(), parse_features(e).unwrap());
                assert_eq!(g, e, "{name}: record {i} of {} differs", mine.display());
            }
        }
    }
}

#[test]
fn our_bytes_are_deterministic() {
    let manifest = manifest();
    let case = &manifest["cases"][0];
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = run_case(case, a.path());
    let second = run_case(case, b.path());
    for (x, y) in first.iter().zip(&second) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    }
}
