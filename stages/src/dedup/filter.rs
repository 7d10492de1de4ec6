//! The worker's side of deduplication: keeps or drops each document as the
//! deduplication dataflow decided.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::Lead;
use crate::data::Document;
use crate::error::{Error, Result};
use crate::operator::Control;
use crate::stage::Stage;

/// What a deduplication worker tells the filters that see a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// One of this document's keys occurs here for the first time (in
    /// exact mode it has one key; a document all of whose keys are fresh
    /// is kept).
    Fresh(u64),
    /// Deduplication worker `from` has sent every `Fresh` below `index`.
    Through { from: usize, index: u64 },
}

/// Which documents a worker is handed: those whose index is `index`
/// modulo `of`, as ingest shares them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub index: u64,
    pub of: u64,
}

impl Share {
    pub fn has(&self, doc: u64) -> bool {
        doc % self.of == self.index
    }
}

/// The decisions received and not yet used.
#[derive(Debug)]
pub struct Pending {
    /// Fresh keys per document.
    fresh: BTreeMap<u64, u32>,
    /// Per deduplication worker: decided below this index.
    through: Vec<u64>,
}

impl Pending {
    /// Decisions will come from `sources` deduplication workers.
    pub fn new(sources: usize) -> Pending {
        Pending {
            fresh: BTreeMap::new(),
            through: vec![0; sources],
        }
    }

    pub fn apply(&mut self, d: Decision) {
        match d {
            Decision::Fresh(i) => *self.fresh.entry(i).or_default() += 1,
            Decision::Through { from, index } => self.through[from] = self.through[from].max(index),
        }
    }

    /// `Some(keep)` once document `index` is decided: kept when all its
    /// `keys` keys are fresh. Each document is asked about once, in
    /// increasing order, so what it answers is forgotten.
    pub fn decide(&mut self, index: u64, keys: u32) -> Option<bool> {
        let through = self.through.iter().min().copied().unwrap_or(u64::MAX);
        (index < through).then(|| self.fresh.remove(&index).unwrap_or(0) >= keys)
    }
}

/// Documents kept and dropped, over all workers.
#[derive(Debug, Default)]
pub struct DedupCounts {
    pub kept: AtomicU64,
    pub dropped: AtomicU64,
}

impl DedupCounts {
    pub fn kept(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The stage each worker runs right after ingest: passes on the documents
/// the dataflow kept, waiting for the decision on each one.
///
/// When the reader reads the corpus several times (dynamic masking's
/// epochs, indices starting again at 0), the first pass is decided by the
/// dataflow and later passes replay it: the filter then remembers the
/// indices it kept (8 bytes per kept document it sees).
pub struct DedupFilter {
    worker: usize,
    /// The documents counted as kept or dropped by this worker (each
    /// document by one worker, even when every worker sees it).
    counted: Share,
    pending: Pending,
    /// Keys per document (1 in exact mode, the bands in MinHash mode).
    keys: u32,
    /// Kept indices of the first pass, when there will be others.
    remembered: Option<Vec<u64>>,
    /// In a later pass: where in `remembered` it is.
    replay: Option<usize>,
    last: Option<u64>,
    decisions: Receiver<Decision>,
    lead: Arc<Lead>,
    counts: Arc<DedupCounts>,
    control: Control,
}

impl DedupFilter {
    /// The filter of local pipeline worker `worker`, which counts the
    /// documents of `counted`, with decisions from `sources` deduplication
    /// workers about documents of `keys` keys; `passes` > 1 when the corpus
    /// is read several times.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        worker: usize,
        counted: Share,
        sources: usize,
        keys: u32,
        passes: usize,
        decisions: Receiver<Decision>,
        lead: Arc<Lead>,
        counts: Arc<DedupCounts>,
        control: Control,
    ) -> DedupFilter {
        DedupFilter {
            worker,
            counted,
            pending: Pending::new(sources),
            keys,
            remembered: (passes > 1).then(Vec::new),
            replay: None,
            last: None,
            decisions,
            lead,
            counts,
            control,
        }
    }
}

impl Stage for DedupFilter {
    type In = Document;
    type Out = Document;

    fn push(&mut self, doc: Document, emit: &mut dyn FnMut(Document)) -> Result<()> {
        if self.last.is_some_and(|l| doc.index <= l) {
            // A new pass over the corpus: the dataflow's part is done.
            self.lead.advance(self.worker, u64::MAX);
            self.replay = Some(0);
        }
        self.last = Some(doc.index);
        if let (Some(at), Some(kept)) = (self.replay.as_mut(), self.remembered.as_ref()) {
            while kept.get(*at).is_some_and(|&k| k < doc.index) {
                *at += 1;
            }
            if kept.get(*at) == Some(&doc.index) {
                emit(doc);
            }
            return Ok(());
        }
        self.lead.advance(self.worker, doc.index);
        loop {
            if let Some(keep) = self.pending.decide(doc.index, self.keys) {
                if self.counted.has(doc.index) {
                    let count = if keep {
                        &self.counts.kept
                    } else {
                        &self.counts.dropped
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                }
                if keep {
                    if let Some(r) = self.remembered.as_mut() {
                        r.push(doc.index);
                    }
                    emit(doc);
                }
                return Ok(());
            }
            // Another worker's failure ends the dataflow; do not wait for it.
            if self.control.stopped() {
                return Ok(());
            }
            match self.decisions.recv_timeout(Duration::from_millis(100)) {
                Ok(d) => self.pending.apply(d),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.control.stopped() {
                        return Ok(());
                    }
                    return Err(Error::data(format!(
                        "dedup: the deduplication dataflow ended before deciding document {} ({})",
                        doc.index, doc.origin
                    )));
                }
            }
        }
    }

    fn finish(&mut self, _emit: &mut dyn FnMut(Document)) -> Result<()> {
        self.lead.advance(self.worker, u64::MAX);
        Ok(())
    }
}

impl Drop for DedupFilter {
    fn drop(&mut self) {
        // A worker that stopped early must not hold the key reader back.
        self.lead.advance(self.worker, u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecided_until_through_passes_it() {
        let mut p = Pending::new(2);
        p.apply(Decision::Fresh(4));
        assert_eq!(p.decide(4, 1), None);
        p.apply(Decision::Through { from: 0, index: 5 });
        assert_eq!(p.decide(4, 1), None, "worker 1 has not spoken yet");
        p.apply(Decision::Through { from: 1, index: 9 });
        assert_eq!(p.decide(0, 1), Some(false));
        assert_eq!(p.decide(4, 1), Some(true));
        assert_eq!(p.decide(5, 1), None);
        p.apply(Decision::Through { from: 0, index: 3 }); // late, smaller: ignored
        assert_eq!(p.decide(5, 1), None);
    }

    #[test]
    fn with_several_keys_all_must_be_fresh() {
        let mut p = Pending::new(1);
        for i in [2, 2, 3, 3, 3] {
            p.apply(Decision::Fresh(i));
        }
        p.apply(Decision::Through { from: 0, index: 4 });
        assert_eq!(p.decide(2, 3), Some(false), "one band seen before");
        assert_eq!(p.decide(3, 3), Some(true));
    }

    #[test]
    fn filter_keeps_what_was_decided_and_counts() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let counts = Arc::new(DedupCounts::default());
        let lead = Arc::new(Lead::new(1, 100));
        // Sees every document, counts the even ones, three passes.
        let counted = Share { index: 0, of: 2 };
        let mut f = DedupFilter::new(
            0,
            counted,
            1,
            1,
            3,
            rx,
            lead,
            counts.clone(),
            Control::default(),
        );
        for d in [
            Decision::Fresh(0),
            Decision::Fresh(3),
            Decision::Through { from: 0, index: 3 },
            Decision::Through {
                from: 0,
                index: u64::MAX,
            },
        ] {
            tx.send(d).unwrap();
        }
        let docs: Vec<Document> = (0..3)
            .flat_map(|_| 0..5)
            .map(|index| Document {
                index,
                ..Document::default()
            })
            .collect();
        let out = crate::stage::run_all(&mut f, docs).unwrap();
        let kept: Vec<u64> = out.iter().map(|d| d.index).collect();
        assert_eq!(kept, vec![0, 3, 0, 3, 0, 3]);
        // First pass only, even indices only: 0 kept, 2 and 4 dropped.
        assert_eq!((counts.kept(), counts.dropped()), (1, 2));
    }

    #[test]
    fn a_vanished_dataflow_is_an_error_not_a_hang() {
        let (tx, rx) = crossbeam_channel::unbounded();
        drop(tx);
        let lead = Arc::new(Lead::new(1, 100));
        let all = Share { index: 0, of: 1 };
        let mut f = DedupFilter::new(
            0,
            all,
            1,
            1,
            1,
            rx,
            lead,
            Arc::default(),
            Control::default(),
        );
        let doc = Document {
            index: 7,
            origin: "c.txt:3".into(),
            lines: vec!["x".into()],
        };
        let err = f.push(doc, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("document 7 (c.txt:3)"), "{err}");
    }
}
