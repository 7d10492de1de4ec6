//! Whole-word and dynamic masking end to end.
//!
//! - `nezha create_pretraining_data --do_whole_word_mask=True` writes what
//!   the later google-research/bert script wrote (tests/fixtures/wwm/, from
//!   scripts/fixtures/golden_wwm.sh).
//! - Dynamic masking gives the same batches (and the same instances) on any
//!   number of workers, and masks the same instance anew in each epoch.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU64;

use nezha_pipeline::{start, Plan};
use nezha_stages::ingest::LineReader;
use nezha_stages::tfrecord::{open_records, parse_features, FeatureValues};
use nezha_stages::{Batch, Instance};
use serde_json::Value;

mod common;
use common::{chapters, root};

/// The JSON objects of a `.jsonl.gz` file, read with the ingest's reader.
fn json_lines(path: &Path) -> Vec<BTreeMap<String, Value>> {
    let bytes = AtomicU64::new(0);
    let mut reader = LineReader::open(path, &bytes).unwrap();
    let mut rows = Vec::new();
    while let Some((_, line)) = reader.next_line().unwrap() {
        rows.push(serde_json::from_str(line).unwrap());
    }
    rows
}

#[test]
fn the_whole_word_flag_writes_what_the_later_script_wrote() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/wwm/manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    for case in manifest["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.tfrecord");
        let args: Vec<String> = case["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .map(|a| match a.starts_with("--output_file=") {
                true => format!("--output_file={}", out.display()),
                false => a.to_string(),
            })
            .collect();
        assert!(args.iter().any(|a| a == "--do_whole_word_mask=true"));
        let run = Command::new(env!("CARGO_BIN_EXE_nezha"))
            .arg("create_pretraining_data")
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let golden = json_lines(&root().join(case["outputs"][0]["features"].as_str().unwrap()));
        let ours: Vec<_> = open_records(&out)
            .unwrap()
            .map(|r| parse_features(&r.unwrap()).unwrap())
            .collect();
        assert_eq!(ours.len(), golden.len(), "{name}: records");
        for (i, (o, g)) in ours.iter().zip(&golden).enumerate() {
            assert_eq!(o.len(), g.len(), "{name}: record {i}: features");
            for (key, values) in o {
                let expected = g[key].as_array().unwrap();
                let same = match values {
                    FeatureValues::Int64(v) => {
                        v.iter().zip(expected).all(|(a, b)| Some(*a) == b.as_i64())
                    }
                    FeatureValues::Float(v) => v
                        .iter()
                        .zip(expected)
                        .all(|(a, b)| Some(*a as f64) == b.as_f64()),
                    FeatureValues::Bytes(_) => false,
                };
                assert!(
                    same && values.len() == expected.len(),
                    "{name}: record {i}: {key}"
                );
            }
        }
    }
}

/// A dynamic-masking pipeline over the first chapters of the bundled
/// corpus, with Jieba whole words.
fn dynamic_plan(dir: &Path, workers: usize, epochs: usize, sink: &str) -> Plan {
    plan_over(dir, &chapters(6), workers, epochs, sink, "")
}

/// The same over the documents `docs`, with `extra` sections.
fn plan_over(
    dir: &Path,
    docs: &[String],
    workers: usize,
    epochs: usize,
    sink: &str,
    extra: &str,
) -> Plan {
    let input = dir.join("sample.txt");
    std::fs::write(&input, docs.join("\n\n")).unwrap();
    let batching = match sink {
        "check" => "[batching]\nbatch_size = 16\n",
        _ => "",
    };
    let toml = format!(
        r#"seed = 11
workers = {workers}
[ingest]
input = "{input}"
[sentences]
kind = "punct"
[wordpiece]
vocab = "{vocab}"
[instances]
max_seq_length = 64
dupe_factor = 2
reservoir_documents = 3
shuffle_buffer = 100
[masking]
kind = "dynamic"
epochs = {epochs}
whole_word = "jieba"
max_predictions_per_seq = 10
{batching}
{extra}
[sink]
kind = "{sink}"
output = "{out}"
"#,
        input = input.display(),
        vocab = root().join("data/vocab.txt").display(),
        out = dir.join("out.tfrecord").display(),
    );
    let toml = if sink == "check" {
        toml.replace(
            &format!("output = \"{}\"\n", dir.join("out.tfrecord").display()),
            "",
        )
    } else {
        toml
    };
    let file = dir.join("p.toml");
    std::fs::write(&file, &toml).unwrap();
    Plan::load(&file, Default::default()).unwrap()
}

/// Dedup in front of dynamic masking: each worker drops the duplicates in
/// its share before the shares are gathered, and the stream is still the
/// same on any number of workers, over two passes (the second replays the
/// first one's decisions).
#[test]
fn dynamic_masking_after_dedup_is_the_same_on_any_number_of_workers() {
    let chapters = chapters(9);
    // Chapters 0, 3 and 7 come again later; 20 documents, 17 distinct.
    let mut docs = chapters.clone();
    docs.extend([3, 0, 7].map(|i| chapters[i].clone()));
    docs.extend_from_slice(&chapters[1..9]);
    let run = |workers: usize| {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_over(dir.path(), &docs, workers, 2, "check", "[dedup]\n");
        let mut running = start::<Batch>(&plan).unwrap();
        let batches: Vec<Batch> = running.items.by_ref().collect();
        let counts = running.dedup_counts();
        running.finish().unwrap();
        (batches, counts)
    };
    let (one, counts) = run(1);
    assert!(one.len() > 40, "{} batches", one.len());
    // 20 documents: 9 kept, 11 dropped (counted once; the second pass
    // replays the decisions).
    assert_eq!(counts, Some((9, 11)));
    for workers in [2, 3] {
        let (many, counts) = run(workers);
        assert!(many == one, "{workers} workers");
        assert_eq!(counts, Some((9, 11)), "{workers} workers");
    }
}

fn batches(workers: usize, epochs: usize) -> Vec<Batch> {
    let dir = tempfile::tempdir().unwrap();
    let plan = dynamic_plan(dir.path(), workers, epochs, "check");
    let mut running = start::<Batch>(&plan).unwrap();
    let batches: Vec<Batch> = running.items.by_ref().collect();
    running.finish().unwrap();
    batches
}

fn instances(workers: usize, epochs: usize) -> Vec<Instance> {
    let dir = tempfile::tempdir().unwrap();
    let plan = dynamic_plan(dir.path(), workers, epochs, "tfrecord");
    let mut running = start::<Instance>(&plan).unwrap();
    let instances: Vec<Instance> = running.items.by_ref().collect();
    running.finish().unwrap();
    instances
}

#[test]
fn dynamic_masking_gives_the_same_batches_on_any_number_of_workers() {
    // Two epochs: batches also span the change of epoch.
    let one = batches(1, 2);
    assert!(one.len() > 40, "{} batches", one.len());
    for workers in [2, 3] {
        assert!(batches(workers, 2) == one, "{workers} workers");
    }
    let one = instances(1, 1);
    assert!(instances(3, 1) == one, "instances on 3 workers");
}

#[test]
fn each_epoch_masks_the_same_instances_anew() {
    let two = instances(2, 2);
    let (first, second) = two.split_at(two.len() / 2);
    assert!(
        first == &instances(2, 1)[..],
        "epoch 0 is the one-epoch run"
    );
    let unmasked = |inst: &Instance| {
        let mut tokens = inst.tokens.clone();
        for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            tokens[p as usize] = l;
        }
        (tokens, inst.segment_a_len, inst.is_random_next)
    };
    // The same instance may be cut twice (dupe_factor 2): content maps to
    // the masks it got.
    let mut first_masks: HashMap<_, Vec<Vec<u32>>> = HashMap::new();
    for inst in first {
        first_masks
            .entry(unmasked(inst))
            .or_default()
            .push(inst.masked_positions.clone());
    }
    let mut second_counts: HashMap<_, usize> = HashMap::new();
    let mut differ = 0;
    for inst in second {
        let masks = first_masks
            .get(&unmasked(inst))
            .expect("epoch 1 cuts the instances of epoch 0");
        *second_counts.entry(unmasked(inst)).or_default() += 1;
        differ += !masks.contains(&inst.masked_positions) as usize;
    }
    for (content, masks) in &first_masks {
        assert_eq!(second_counts.get(content), Some(&masks.len()));
    }
    assert!(
        differ * 10 > second.len() * 9,
        "{differ} of {} masks differ",
        second.len()
    );
}

#[test]
fn bad_masking_settings_are_refused_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let plan = |masking: &str, instances: &str| {
        let toml = format!(
            "[ingest]\ninput = \"{input}\"\n[wordpiece]\nvocab = \"{vocab}\"\n\
             [instances]\n{instances}\n[masking]\n{masking}\n[sink]\nkind = \"tfrecord\"\noutput = \"o\"\n",
            input = root().join("data/sanguo.txt").display(),
            vocab = root().join("data/vocab.txt").display(),
        );
        let file = dir.path().join("p.toml");
        std::fs::write(&file, toml).unwrap();
        match Plan::load(&file, Default::default()) {
            Ok(_) => String::new(),
            Err(e) => format!("{e:#}"),
        }
    };
    let err = plan("whole_word = \"words\"", "");
    assert!(
        err.contains("p.toml:8:") && err.contains("[masking] whole_word") && err.contains("words"),
        "{err}"
    );
    let err = plan("whole_word = \"jieba\"\nuser_dict = \"missing.txt\"", "");
    assert!(
        err.contains("[masking] user_dict") && err.contains("missing.txt"),
        "{err}"
    );
    let err = plan("epochs = 2", "kind = \"reference\"");
    assert!(
        err.contains("[masking] epochs") && err.contains("reads the corpus once"),
        "{err}"
    );
    assert_eq!(
        plan("epochs = 2", ""),
        "",
        "static streaming masking repeats too"
    );
    let err = plan("kind = \"dynamic\"\nepochs = 0", "");
    assert!(err.contains("[masking] epochs"), "{err}");
    let err = plan("kind = \"dynamic\"", "kind = \"reference\"");
    assert!(err.contains("needs kind = \"streaming\""), "{err}");
    assert_eq!(
        plan("kind = \"dynamic\"\nwhole_word = \"wordpiece\"", ""),
        ""
    );
}
