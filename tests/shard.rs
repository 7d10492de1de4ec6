//! Data-parallel sharding of the dataflow: process r of 2, each with one
//! worker, runs global worker slot r of 2, so the two processes' streams
//! together are exactly the stream of one process with two workers (which
//! takes a batch from each worker in turn).

use std::path::{Path, PathBuf};

use nezha::pipeline::{start, start_shard, Plan, RunOptions, Shard};
use nezha_stages::Batch;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn plan(dir: &Path, workers: usize) -> Plan {
    let text = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let part: Vec<&str> = text.split("\n\n").take(4).collect();
    std::fs::write(dir.join("corpus.txt"), part.join("\n\n")).unwrap();
    let toml = format!(
        r#"seed = 5
workers = 1
[ingest]
input = "corpus.txt"
[sentences]
kind = "punct"
[wordpiece]
vocab = "{}"
[instances]
max_seq_length = 64
dupe_factor = 2
[masking]
max_predictions_per_seq = 10
[batching]
batch_size = 8
[sink]
kind = "check"
"#,
        root().join("data/vocab.txt").display()
    );
    let file = dir.join("p.toml");
    std::fs::write(&file, &toml).unwrap();
    let options = RunOptions {
        workers: Some(workers),
        ..RunOptions::default()
    };
    Plan::parse(&file, &toml, options).unwrap()
}

fn collect(mut running: nezha::pipeline::Running<Batch>) -> Vec<Batch> {
    let items: Vec<Batch> = running.items.by_ref().collect();
    running.finish().unwrap();
    items
}

#[test]
fn two_shards_of_one_worker_make_one_process_of_two() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = collect(start::<Batch>(&plan(tmp.path(), 2)).unwrap());
    let one = plan(tmp.path(), 1);
    let shards: Vec<Vec<Batch>> = (0..2)
        .map(|index| collect(start_shard::<Batch>(&one, Shard { index, count: 2 }).unwrap()))
        .collect();
    assert!(shards.iter().all(|s| s.len() > 2), "too little data");
    assert_ne!(
        shards[0][0], shards[1][0],
        "the shards are not different data"
    );

    // One batch from each in turn, then the rest of the longer one.
    let mut merged = Vec::new();
    let (mut a, mut b) = (shards[0].iter(), shards[1].iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => merged.extend(x.into_iter().chain(y).cloned()),
        }
    }
    assert_eq!(merged.len(), whole.len());
    assert!(
        merged == whole,
        "the shards' union differs from the 2-worker stream"
    );
}
