//! The gather in a real dataflow of two workers: each worker reads its share
//! from its own channel, and both end up with every document in corpus
//! order; a worker whose merge waits stops taking from its channel once its
//! backlog is full; a stop ends the gather although a worker never sends
//! its end marker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use nezha_stages::error::Error;
use nezha_stages::gather::{gather, Backlog};
use nezha_stages::operator::{channel_source_while, Control, Flow};
use nezha_stages::TokenizedDocument;
use timely::dataflow::operators::Inspect;

type Feed = Receiver<Result<TokenizedDocument, Error>>;

fn doc(index: u64) -> TokenizedDocument {
    TokenizedDocument {
        index,
        segments: vec![vec![index as u32 + 1]],
    }
}

/// Per worker, as the run goes: items its source has taken from its
/// channel, and whether its gather has ended.
#[derive(Clone)]
struct Probe {
    taken: Arc<Vec<AtomicUsize>>,
    ended: Arc<Vec<AtomicBool>>,
}

impl Probe {
    fn new() -> Probe {
        Probe {
            taken: Arc::new((0..2).map(|_| AtomicUsize::new(0)).collect()),
            ended: Arc::new((0..2).map(|_| AtomicBool::new(false)).collect()),
        }
    }
}

/// Runs two workers, worker w reading from `feeds[w]` with a backlog limit
/// of `limit`, and returns what each worker's gather handed on (`None` for
/// the end marker). A run that does not end within 30 s fails the test.
fn run(feeds: Vec<Feed>, limit: usize, control: Control, probe: Probe) -> Vec<Vec<Option<u64>>> {
    let (done, result) = bounded(1);
    std::thread::spawn(move || {
        let _ = done.send(run_dataflow(feeds, limit, control, probe));
    });
    result
        .recv_timeout(Duration::from_secs(30))
        .expect("the workers did not finish: a gather waits for ever")
}

fn run_dataflow(
    feeds: Vec<Feed>,
    limit: usize,
    control: Control,
    probe: Probe,
) -> Vec<Vec<Option<u64>>> {
    let feeds = Arc::new(Mutex::new(feeds.into_iter().map(Some).collect::<Vec<_>>()));
    let seen = Arc::new(Mutex::new(vec![Vec::new(), Vec::new()]));
    let seen_w = seen.clone();
    timely::execute(timely::Config::process(2), move |worker| {
        let me = worker.index();
        let rx = feeds.lock().unwrap()[me].take().unwrap();
        let (control, seen, probe) = (control.clone(), seen_w.clone(), probe.clone());
        let taken = probe.taken.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let backlog = Backlog::with_limit(limit);
            let room = backlog.clone();
            let docs =
                channel_source_while(scope, "feed", rx, control.clone(), move || room.has_room())
                    .inspect(move |flow| {
                        if let Flow::Item(_) = flow {
                            taken[me].fetch_add(1, Ordering::SeqCst);
                        }
                    });
            gather(docs, "gather", control, backlog).inspect(move |flow| {
                let item = match flow {
                    Flow::Item(d) => Some(d.index),
                    Flow::End => {
                        probe.ended[me].store(true, Ordering::SeqCst);
                        None
                    }
                };
                seen.lock().unwrap()[me].push(item);
            });
        });
    })
    .unwrap()
    .join();
    let seen = seen.lock().unwrap().clone();
    seen
}

/// Sends `indices` into `tx` from a thread, after `delay`, then closes it.
fn feed(tx: Sender<Result<TokenizedDocument, Error>>, indices: Vec<u64>, delay: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        for i in indices {
            if tx.send(Ok(doc(i))).is_err() {
                return;
            }
        }
    });
}

#[test]
fn both_workers_get_every_document_in_corpus_order_and_a_waiting_reader_pauses() {
    // Two passes over 600 documents, some missing (dropped upstream).
    let pass: Vec<u64> = (0..600).filter(|i| i % 7 != 3).collect();
    let corpus: Vec<u64> = pass.iter().chain(&pass).copied().collect();
    let share = |w: u64| -> Vec<u64> { corpus.iter().copied().filter(|i| i % 2 == w).collect() };
    let (tx0, rx0) = bounded(1);
    let (tx1, rx1) = bounded(1);
    // Worker 1's reader starts late: worker 0's merge waits for it, and
    // worker 0's source must stop taking once its backlog is full.
    let limit = 5;
    feed(tx0, share(0), Duration::ZERO);
    feed(tx1, share(1), Duration::from_millis(400));
    let probe = Probe::new();
    let early = Arc::new(AtomicUsize::new(usize::MAX));
    let (watch, note) = (probe.clone(), early.clone());
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        note.store(watch.taken[0].load(Ordering::SeqCst), Ordering::SeqCst);
    });
    let seen = run(vec![rx0, rx1], limit, Control::default(), probe.clone());
    let want: Vec<Option<u64>> = corpus.iter().map(|&i| Some(i)).chain([None]).collect();
    assert_eq!(seen[0], want, "worker 0");
    assert_eq!(seen[1], want, "worker 1");
    let taken: Vec<usize> = probe
        .taken
        .iter()
        .map(|t| t.load(Ordering::SeqCst))
        .collect();
    assert_eq!(taken, [share(0).len(), share(1).len()]);
    // One burst of the source (64) may pass the limit before it looks again.
    let early = early.load(Ordering::SeqCst);
    assert!(
        early <= limit + 64,
        "worker 0 took {early} of its {} documents while worker 1 was silent",
        share(0).len()
    );
}

#[test]
fn a_stop_ends_the_gather_without_the_silent_workers_end() {
    let (tx0, rx0) = bounded(1);
    let (tx1, rx1) = bounded::<Result<TokenizedDocument, Error>>(1);
    feed(tx0, vec![0, 2, 4], Duration::ZERO);
    let (control, probe) = (Control::default(), Probe::new());
    let (stopper, watch) = (control.clone(), probe.clone());
    let waited_out = Arc::new(AtomicBool::new(false));
    let timed_out = waited_out.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        stopper.stop();
        // Worker 1 stays silent (as one blocked on a full channel would)
        // until worker 0's gather has ended; only a broken gather makes
        // this wait run out.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !watch.ended[0].load(Ordering::SeqCst) {
            if std::time::Instant::now() > deadline {
                timed_out.store(true, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(tx1);
    });
    let seen = run(vec![rx0, rx1], 16, control, probe);
    assert!(
        !waited_out.load(Ordering::SeqCst),
        "worker 0's gather waited for worker 1's end marker after the stop"
    );
    // Nothing could be handed on (worker 1 might still have sent document
    // 1), and each gather ended.
    assert_eq!(seen[0], [None]);
    assert_eq!(seen[1], [None]);
}
