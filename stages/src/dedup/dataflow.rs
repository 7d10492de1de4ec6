//! The deduplication dataflow: differential-dataflow's `distinct` over
//! document keys, timestamped by document index.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::{source, Operator};
use timely::dataflow::{Scope, Stream};

use super::{
    document_key, near_duplicate_keys, Decision, DedupCounts, DedupFilter, Lead, MinHashParams,
    Share,
};
use crate::error::{Error, Result};
use crate::ingest::IngestPlan;
use crate::operator::Control;

/// Keys read per message to the dataflow.
const KEY_CHUNK: usize = 1024;

/// Key chunks the reader may queue for the dataflow.
const KEY_QUEUE: usize = 16;

/// Deduplication as `[dedup]` configures it.
#[derive(Clone, Copy, Debug)]
pub struct DedupPlan {
    pub keys: DedupKeys,
    /// How many documents the key reader may run ahead of the furthest
    /// worker (see [`Lead`]).
    pub lead_documents: u64,
}

/// What makes two documents the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedupKeys {
    /// The same words in the same order: one key per document.
    Exact,
    /// A shared MinHash band: a document is dropped when any of its band
    /// keys occurred in an earlier document.
    MinHash(MinHashParams),
}

impl DedupKeys {
    fn per_document(&self) -> u32 {
        match self {
            DedupKeys::Exact => 1,
            DedupKeys::MinHash(p) => p.bands as u32,
        }
    }

    fn of(&self, doc: &crate::Document, out: &mut Vec<u128>) {
        match self {
            DedupKeys::Exact => out.push(document_key(doc)),
            DedupKeys::MinHash(p) => near_duplicate_keys(doc, p, out),
        }
    }

    /// What the counts at the end of a run call the dropped documents.
    pub fn describe(&self) -> String {
        match self {
            DedupKeys::Exact => "exact duplicates (after whitespace normalization)".into(),
            DedupKeys::MinHash(p) => format!(
                "near duplicates (MinHash, {} bands of {} rows over {}-character shingles: about half the pairs above {:.2} Jaccard similarity)",
                p.bands,
                p.rows,
                p.shingle,
                p.threshold()
            ),
        }
    }
}

/// What one pipeline worker of this process is handed and counts.
#[derive(Clone, Copy, Debug)]
pub struct FilterSpec {
    /// The documents its reader hands it.
    pub sees: Share,
    /// The documents it counts (each document is counted by one worker).
    pub counted: Share,
}

/// A running deduplication dataflow and what the workers need from it.
pub struct Dedup {
    keys: DedupKeys,
    filters: Vec<DedupFilter>,
    counts: Arc<DedupCounts>,
    reader: Option<JoinHandle<()>>,
    guards: Option<timely::communication::WorkerGuards<()>>,
}

impl Dedup {
    /// Starts the dataflow on threads of its own, one per local pipeline
    /// worker (`filters`), with a key reader that reads the corpus once
    /// more. `passes` is how many times the pipeline's readers read it.
    ///
    /// Its own threads, because the pipeline's workers block on their sinks
    /// (that is how the consumer pushes back), and a blocked worker would
    /// hold back the frontier the other workers wait on. The deduplication
    /// workers never block: their reader only waits for the pipeline's
    /// *furthest* worker, so every document a worker waits for gets decided.
    pub fn start(
        plan: &DedupPlan,
        ingest: &IngestPlan,
        specs: &[FilterSpec],
        passes: usize,
        control: Control,
    ) -> Result<Dedup> {
        let peers = specs.len();
        let lead = Arc::new(Lead::new(peers, plan.lead_documents));
        let counts = Arc::new(DedupCounts::default());
        let mut routes = Vec::new();
        let mut filters = Vec::new();
        for (w, spec) in specs.iter().enumerate() {
            let (tx, rx) = unbounded();
            routes.push((spec.sees, tx));
            filters.push(DedupFilter::new(
                w,
                spec.counted,
                peers,
                plan.keys.per_document(),
                passes,
                rx,
                lead.clone(),
                counts.clone(),
                control.clone(),
            ));
        }
        let (key_tx, key_rx) = bounded(KEY_QUEUE);
        let reader = spawn_key_reader(ingest, plan.keys, lead, control.clone(), key_tx);
        let key_rx = Arc::new(Mutex::new(Some(key_rx)));

        let guards = timely::execute(timely::Config::process(peers), move |worker| {
            let index = worker.index();
            // One reader feeds worker 0; `distinct` spreads the keys over
            // every worker by hash.
            let keys = if index == 0 {
                key_rx.lock().unwrap().take()
            } else {
                None
            };
            let mut decisions = DecisionSender {
                from: index,
                routes: routes.clone(),
                through: 0,
            };
            let control = control.clone();
            worker.dataflow::<u64, _, _>(|scope| {
                key_source(scope, keys, control)
                    .as_collection()
                    .distinct()
                    .inner
                    .sink(
                        // Spread by document; each dedup worker tells the
                        // pipeline workers that see the document.
                        Exchange::new(|(_, index, _): &(u128, u64, isize)| *index),
                        "dedup decisions",
                        move |(input, frontier)| {
                            input.for_each(|_cap, data| {
                                for &(_, index, diff) in data.iter() {
                                    // Keys are only added, so `distinct`
                                    // only ever says +1.
                                    if diff > 0 {
                                        decisions.fresh(index);
                                    }
                                }
                            });
                            decisions.frontier(frontier.frontier().iter().min().copied());
                        },
                    );
            });
        })
        .map_err(|e| Error::config(format!("cannot start the dedup workers: {e}")))?;
        Ok(Dedup {
            keys: plan.keys,
            filters,
            counts,
            reader: Some(reader),
            guards: Some(guards),
        })
    }

    /// The filter stages of the pipeline's workers, in worker order. A
    /// filter that is dropped unused stops holding the key reader back.
    pub fn take_filters(&mut self) -> Vec<DedupFilter> {
        std::mem::take(&mut self.filters)
    }

    /// What the counts call the dropped documents.
    pub fn describe(&self) -> String {
        self.keys.describe()
    }

    pub fn counts(&self) -> Arc<DedupCounts> {
        self.counts.clone()
    }

    /// Waits for the reader and the dataflow's workers.
    pub fn join(mut self) -> std::result::Result<(), String> {
        // Unused filters would hold the reader back.
        self.filters.clear();
        if let Some(r) = self.reader.take() {
            r.join().map_err(|_| "the dedup key reader panicked")?;
        }
        if let Some(g) = self.guards.take() {
            for r in g.join() {
                r?;
            }
        }
        Ok(())
    }
}

/// Reads every document, as ingest does, and sends `(key, index)` for each
/// to the dataflow, in chunks, never more than the lead allows.
fn spawn_key_reader(
    ingest: &IngestPlan,
    keys: DedupKeys,
    lead: Arc<Lead>,
    control: Control,
    tx: Sender<Vec<(u128, u64)>>,
) -> JoinHandle<()> {
    let format = ingest.format.clone();
    let files = ingest.files.clone();
    std::thread::Builder::new()
        .name("dedup-keys".into())
        .spawn(move || {
            let mut chunk = Vec::with_capacity(KEY_CHUNK);
            let mut doc_keys = Vec::new();
            let mut limit = lead.limit();
            let ignored = AtomicU64::new(0);
            let result = format.read(&files, &ignored, &mut |doc| {
                if doc.index >= limit {
                    // A worker may be waiting for what is in hand.
                    if !chunk.is_empty() && tx.send(std::mem::take(&mut chunk)).is_err() {
                        return false;
                    }
                    match lead.wait_for(doc.index, || control.stopped()) {
                        Some(l) => limit = l,
                        None => return false,
                    }
                }
                if control.stopped() {
                    return false;
                }
                doc_keys.clear();
                keys.of(&doc, &mut doc_keys);
                chunk.extend(doc_keys.iter().map(|&k| (k, doc.index)));
                chunk.len() < KEY_CHUNK || tx.send(std::mem::take(&mut chunk)).is_ok()
            });
            match result {
                Ok(()) => {
                    if !chunk.is_empty() {
                        let _ = tx.send(chunk);
                    }
                }
                // The pipeline's own reader meets the same error; the first
                // one reported is the one the run fails with.
                Err(e) => control.fail(e),
            }
        })
        .expect("spawn dedup key reader")
}

/// The keys as a differential collection: `(key, index, +1)`, timestamped
/// by document index, so that `distinct` emits each key at the index of
/// its first occurrence, whichever worker handled which copy.
fn key_source<'s>(
    scope: Scope<'s, u64>,
    keys: Option<Receiver<Vec<(u128, u64)>>>,
    control: Control,
) -> Stream<'s, u64, Vec<(u128, u64, isize)>> {
    source(scope, "dedup keys", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = keys.is_some().then_some(cap);
        move |output| {
            let (Some(c), Some(rx)) = (cap.as_mut(), keys.as_ref()) else {
                return;
            };
            let mut ended = control.stopped();
            let mut next = None;
            for _ in 0..KEY_QUEUE {
                match rx.try_recv() {
                    Ok(chunk) => {
                        let last = chunk.last().map(|&(_, i)| i);
                        let mut session = output.session(&*c);
                        for (key, index) in chunk {
                            session.give((key, index, 1isize));
                        }
                        drop(session);
                        if let Some(l) = last {
                            next = Some(l + 1);
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                cap = None;
                return;
            }
            // Indices only grow: nothing below the next one will come.
            if let Some(n) = next {
                c.downgrade(&n);
                activator.activate();
            } else {
                // The reader has nothing yet; look again shortly rather than
                // block this thread, which the other workers need stepping.
                activator.activate_after(Duration::from_millis(1));
            }
        }
    })
}

/// Hands the fresh keys and the frontier of one deduplication worker to
/// the filters.
struct DecisionSender {
    from: usize,
    routes: Vec<(Share, Sender<Decision>)>,
    through: u64,
}

impl DecisionSender {
    fn fresh(&self, index: u64) {
        for (sees, tx) in &self.routes {
            if sees.has(index) {
                // A filter that is gone belongs to a run that is stopping.
                let _ = tx.send(Decision::Fresh(index));
            }
        }
    }

    /// Called after the fresh keys below `frontier` have been sent.
    fn frontier(&mut self, frontier: Option<u64>) {
        let now = frontier.unwrap_or(u64::MAX);
        if now > self.through {
            self.through = now;
            for (_, tx) in &self.routes {
                let _ = tx.send(Decision::Through {
                    from: self.from,
                    index: now,
                });
            }
        }
    }
}
