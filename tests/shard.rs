//! Data-parallel sharding of the dataflow: process r of 2, each with one
//! worker, runs global worker slot r of 2, so the two processes' streams
//! together are exactly the stream of one process with two workers (which
//! takes a batch from each worker in turn).

use std::path::Path;

use nezha_pipeline::{start, start_shard, Plan, RunOptions, Shard};
use nezha_stages::Batch;

mod common;
use common::{chapters, root};

fn plan(dir: &Path, workers: usize) -> Plan {
    plan_over(dir, &chapters(4), workers, "", "")
}

/// A pipeline over the documents `docs`, with `masking` lines in its
/// `[masking]` and `extra` sections.
fn plan_over(dir: &Path, docs: &[String], workers: usize, masking: &str, extra: &str) -> Plan {
    std::fs::write(dir.join("corpus.txt"), docs.join("\n\n")).unwrap();
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
{masking}
[batching]
batch_size = 8
{extra}
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

fn collect(mut running: nezha_pipeline::Running<Batch>) -> Vec<Batch> {
    let items: Vec<Batch> = running.items.by_ref().collect();
    running.finish().unwrap();
    items
}

#[test]
fn two_shards_of_one_worker_make_one_process_of_two() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = collect(start::<Batch>(&plan(tmp.path(), 2)).unwrap());
    let one = plan(tmp.path(), 1);
    assert_shards_make_whole(&one, &whole);
}

/// Dedup across processes: each shard decides the duplicates of the whole
/// corpus the same way, so the shards still make the 2-worker stream, in
/// which the duplicates are gone.
#[test]
fn two_shards_drop_the_same_duplicates_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let chapters = chapters(4);
    // Chapters 1 and 2 again at the end, each on the other shard's slot
    // (documents go to slot index mod 2).
    let mut docs = chapters.clone();
    docs.extend([chapters[1].clone(), chapters[2].clone()]);
    let dedup = "[dedup]\nkind = \"exact\"";
    let whole = collect(start::<Batch>(&plan_over(tmp.path(), &docs, 2, "", dedup)).unwrap());
    let one = plan_over(tmp.path(), &docs, 1, "", dedup);
    assert_shards_make_whole(&one, &whole);
    // The repeats come last, so what is kept is the corpus without them,
    // with the same indices: the same stream.
    let without = collect(start::<Batch>(&plan_over(tmp.path(), &chapters, 2, "", "")).unwrap());
    assert!(whole == without, "dedup kept other documents");
    let with_repeats = collect(start::<Batch>(&plan_over(tmp.path(), &docs, 2, "", "")).unwrap());
    assert!(with_repeats.len() > whole.len());
}

/// Dynamic masking across processes: each process gathers its own
/// workers' shares of the whole corpus, and the processes deal the one
/// sequence by global slot, so two shards still make the 2-worker stream.
#[test]
fn two_shards_with_dynamic_masking_make_one_process_of_two() {
    let tmp = tempfile::tempdir().unwrap();
    let chapters = chapters(5);
    let dynamic = "kind = \"dynamic\"\nepochs = 2";
    let whole = collect(start::<Batch>(&plan_over(tmp.path(), &chapters, 2, dynamic, "")).unwrap());
    let one = plan_over(tmp.path(), &chapters, 1, dynamic, "");
    assert_shards_make_whole(&one, &whole);
}

/// Shard r of 2 (one worker each) produces global worker slot r's stream:
/// taking a batch from each in turn gives the stream of one process with
/// two workers.
fn assert_shards_make_whole(one: &Plan, whole: &[Batch]) {
    let shards: Vec<Vec<Batch>> = (0..2)
        .map(|index| collect(start_shard::<Batch>(one, Shard { index, count: 2 }).unwrap()))
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

/// Dynamic masking with two workers in each of two processes: the
/// processes take the one sequence's batches in turn (each process's
/// workers deal among themselves every other batch), so the two streams
/// interleaved batch by batch are the stream of one process, whatever its
/// workers.
#[test]
fn two_shards_of_two_workers_with_dynamic_masking_interleave_to_one_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let chapters = chapters(5);
    let dynamic = "kind = \"dynamic\"\nepochs = 2";
    let whole = collect(start::<Batch>(&plan_over(tmp.path(), &chapters, 1, dynamic, "")).unwrap());
    let two = plan_over(tmp.path(), &chapters, 2, dynamic, "");
    let shards: Vec<Vec<Batch>> = (0..2)
        .map(|index| collect(start_shard::<Batch>(&two, Shard { index, count: 2 }).unwrap()))
        .collect();
    let mut merged = Vec::new();
    for i in 0..shards[0].len().max(shards[1].len()) {
        merged.extend(shards.iter().filter_map(|s| s.get(i)).cloned());
    }
    assert!(whole.len() > 8, "too little data");
    // Each worker drops its own last partial batch: the tail may differ
    // by fewer batches than there are workers.
    let common = merged.len().min(whole.len());
    assert!(whole.len() - common < 4 && merged.len() - common < 4);
    assert!(
        merged[..common] == whole[..common],
        "the interleaved shards differ from one process's stream"
    );
}

/// The reference generator needs every document in one process: a shard
/// of several is refused with the reason.
#[test]
fn reference_mode_refuses_several_processes() {
    let tmp = tempfile::tempdir().unwrap();
    plan_over(tmp.path(), &chapters(2), 1, "", "");
    let file = tmp.path().join("p.toml");
    let toml = std::fs::read_to_string(&file)
        .unwrap()
        .replace("[instances]\n", "[instances]\nkind = \"reference\"\n");
    let plan = Plan::parse(&file, &toml, RunOptions::default()).unwrap();
    let err = match start_shard::<Batch>(&plan, Shard { index: 0, count: 2 }) {
        Ok(_) => panic!("reference mode ran on a shard of 2"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("runs in one process") && err.contains("kind = \"streaming\""),
        "{err}"
    );
}
