//! The streaming dataflow end to end: the bounded channel hands checked
//! batches to a consumer, the output is deterministic for a seed and worker
//! count, and a slow consumer holds the readers back.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use nezha_pipeline::{start, Plan};
use nezha_stages::sinks::BatchCounter;
use nezha_stages::Batch;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn plan(dir: &Path, input: &str, workers: usize, extra: &str) -> Plan {
    plan_masking(dir, input, workers, extra, "")
}

/// [`plan`] with `masking` added to `[masking]`.
fn plan_masking(dir: &Path, input: &str, workers: usize, extra: &str, masking: &str) -> Plan {
    let toml = format!(
        r#"seed = 7
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
{extra}
[masking]
max_predictions_per_seq = 10
{masking}
[batching]
batch_size = 16
[sink]
kind = "check"
"#,
        vocab = root().join("data/vocab.txt").display()
    );
    let file = dir.join("p.toml");
    std::fs::write(&file, &toml).unwrap();
    Plan::load(&file, Default::default()).unwrap()
}

fn all_batches(plan: &Plan) -> Vec<Batch> {
    let mut running = start::<Batch>(plan).unwrap();
    let batches: Vec<Batch> = running.items.by_ref().collect();
    running.finish().unwrap();
    batches
}

/// The first chapters of the bundled corpus, so the test stays quick.
fn sample(dir: &Path, chapters: usize) -> String {
    let text = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let part: Vec<&str> = text.split("\n\n").take(chapters).collect();
    let path = dir.join("sample.txt");
    std::fs::write(&path, part.join("\n\n")).unwrap();
    path.display().to_string()
}

#[test]
fn batches_are_checked_counted_and_deterministic_per_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path(), 12);
    for workers in [1, 2] {
        let p = plan(dir.path(), &input, workers, "");
        let first = all_batches(&p);
        let mut counter = BatchCounter::default();
        for b in &first {
            counter.add(b, 21128).unwrap();
        }
        assert!(counter.batches > 50, "{counter:?}");
        let share = counter.random_next as f64 / counter.sequences as f64;
        assert!((0.4..0.7).contains(&share), "random-next share {share}");
        assert_eq!(
            first,
            all_batches(&p),
            "{workers} workers: same seed, same batches"
        );
    }
    let one = all_batches(&plan(dir.path(), &input, 1, ""));
    let two = all_batches(&plan(dir.path(), &input, 2, ""));
    assert_ne!(one, two, "worker count is part of the stream's identity");
}

/// `[masking] epochs` on static masking: the stream is the one-pass stream
/// until the first pass ends, then the corpus again, cut and masked anew.
#[test]
fn static_masking_epochs_read_the_corpus_again_cut_anew() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path(), 6);
    let extra = "shuffle_buffer = 64";
    let once = all_batches(&plan(dir.path(), &input, 1, extra));
    let twice = all_batches(&plan_masking(dir.path(), &input, 1, extra, "epochs = 2"));
    let n = once.len();
    assert!(n > 10, "{n} batches");
    assert!(
        // A pass cut anew makes about as many instances, not exactly as many.
        (2 * n * 95 / 100..=2 * n * 105 / 100).contains(&twice.len()),
        "{} batches over two epochs, {n} over one",
        twice.len()
    );
    // Until the shuffle buffer (64 instances = 4 batches) reaches the end
    // of the first pass, both runs are the same stream.
    assert_eq!(twice[..n - 5], once[..n - 5]);
    let second = &twice[n + 5..];
    let same = second.iter().zip(&once).filter(|(a, b)| a == b).count();
    assert_eq!(same, 0, "the second pass repeats batches of the first");
}

#[test]
fn a_slow_consumer_holds_the_readers_back() {
    let dir = tempfile::tempdir().unwrap();
    // 100,000 small documents (11 MB): far more than the queues, buffers
    // and the 1 MB read buffer hold.
    let mut text = String::new();
    for d in 0..100_000 {
        text.push_str(&format!(
            "第{d}篇。天下大势，分久必合。\n合久必分，周末七国分争。\n并入于秦，及秦灭之后。\n\n"
        ));
    }
    let input = dir.path().join("many.txt");
    std::fs::write(&input, &text).unwrap();
    let p = plan(
        dir.path(),
        &input.display().to_string(),
        2,
        "reservoir_documents = 10\nshuffle_buffer = 50",
    );
    let mut running = start::<Batch>(&p).unwrap();
    let first = running.items.next().expect("a batch");
    assert_eq!(first.size, 16);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let read = running.bytes_read.load(Ordering::Relaxed);
    assert!(
        read < running.total_bytes / 4,
        "readers ran ahead of a stalled consumer: {read} of {} bytes",
        running.total_bytes
    );
    // Draining the rest lets the readers finish.
    let rest = running.items.by_ref().count();
    assert!(rest > 1000);
    assert_eq!(
        running.bytes_read.load(Ordering::Relaxed),
        running.total_bytes
    );
    running.finish().unwrap();
}

#[test]
fn a_consumer_that_stops_early_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path(), 30);
    let p = plan(dir.path(), &input, 2, "");
    let mut running = start::<Batch>(&p).unwrap();
    let taken: Vec<Batch> = running.items.by_ref().take(3).collect();
    assert_eq!(taken.len(), 3);
    running.stop();
    running.finish().unwrap();
}
