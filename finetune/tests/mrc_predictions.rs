//! The reading task's `predictions.json` and `nbest_predictions.json` are
//! byte for byte what NEZHA-TensorFlow's `run_squad.py` `write_predictions`
//! writes with Python's json module: the fixture
//! (scripts/fixtures/finetune_mrc_predictions.py) wrote both files from
//! n-best lists with Python, and our writer, given the same lists, must
//! write the same bytes (keys and their order, question order, indent,
//! escapes, float repr, the softmax probabilities).

use std::path::PathBuf;

use nezha_finetune::mrc::{predictions, Candidate, MrcExample};
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mrc_predictions")
}

#[test]
fn prediction_files_are_pythons_bytes() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("cases.json")).unwrap())
            .unwrap();
    let mut examples = Vec::new();
    let mut nbest = Vec::new();
    for (i, c) in cases.as_array().unwrap().iter().enumerate() {
        examples.push(MrcExample {
            id: c["id"].as_str().unwrap().to_string(),
            question: String::new(),
            context: String::new(),
            answers: Vec::new(),
            answer_chars: None,
            origin: format!("cases.json[{i}]"),
        });
        let list: Vec<Candidate> = c["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| Candidate {
                text: x["text"].as_str().unwrap().to_string(),
                // float32 values written as Python floats: exact.
                start_logit: x["start_logit"].as_f64().unwrap() as f32,
                end_logit: x["end_logit"].as_f64().unwrap() as f32,
                start_index: x["start_index"].as_u64().unwrap() as usize,
                end_index: x["end_index"].as_u64().unwrap() as usize,
            })
            .collect();
        nbest.push(list);
    }
    let tmp = tempfile::tempdir().unwrap();
    predictions::write(tmp.path(), &examples, &nbest).unwrap();
    for file in ["predictions.json", "nbest_predictions.json"] {
        let ours = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        let theirs = std::fs::read_to_string(fixture().join(file)).unwrap();
        for (n, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
            assert_eq!(a, b, "{file}:{}", n + 1);
        }
        assert_eq!(ours, theirs, "{file}");
    }
}
