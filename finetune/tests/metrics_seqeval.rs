//! Entity extraction and scores equal seqeval 1.2.2's on random IOB2 /
//! IOBES / BMES / malformed tag sequences (scripts/fixtures/finetune_seqeval.py
//! → tests/fixtures/finetune/seqeval.json).

use nezha_finetune::metrics::{entities, entity_scores, Entity};
use serde_json::Value;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12
}

fn entity_list(v: &Value) -> Vec<Entity> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| Entity {
            kind: e[0].as_str().unwrap().to_string(),
            start: e[1].as_u64().unwrap() as usize,
            end: e[2].as_u64().unwrap() as usize,
        })
        .collect()
}

fn sentences(v: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn matches_seqeval() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/finetune/seqeval.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 50);
    let mut with_entities = 0;
    for (i, c) in cases.iter().enumerate() {
        let (gold, pred) = (sentences(&c["gold"]), sentences(&c["pred"]));
        assert_eq!(
            entities(&gold),
            entity_list(&c["gold_entities"]),
            "case {i} gold"
        );
        assert_eq!(
            entities(&pred),
            entity_list(&c["pred_entities"]),
            "case {i} pred"
        );
        let s = entity_scores(&gold, &pred).unwrap();
        for (what, ours, theirs) in [
            ("precision", s.precision, &c["precision"]),
            ("recall", s.recall, &c["recall"]),
            ("f1", s.f1, &c["f1"]),
        ] {
            assert!(
                close(ours, theirs.as_f64().unwrap()),
                "case {i} {what}: {ours} vs {theirs}"
            );
        }
        let per = c["per_type"].as_object().unwrap();
        assert_eq!(s.per_type.len(), per.len(), "case {i} types");
        for (k, v) in per {
            let (p, r, f, n) = s.per_type[k];
            assert!(
                close(p, v[0].as_f64().unwrap())
                    && close(r, v[1].as_f64().unwrap())
                    && close(f, v[2].as_f64().unwrap())
                    && n as u64 == v[3].as_u64().unwrap(),
                "case {i} type {k}"
            );
        }
        with_entities += usize::from(s.gold > 0 && s.correct > 0 && s.correct < s.predicted);
    }
    // The cases are not trivial: many have partly right predictions.
    assert!(with_entities >= 20, "{with_entities}");
}
