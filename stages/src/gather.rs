//! Gathering the workers' tokenized documents, so that every worker holds
//! the whole corpus in corpus order (what dynamic masking cuts, see
//! [`crate::instances::DynamicInstances`]) while each worker has cleaned,
//! split, tokenized and segmented only its share (every reader still reads
//! the whole corpus and keeps its share).
//!
//! Each worker broadcasts its documents; every worker merges the streams of
//! all workers back into one. A worker's stream is in corpus order: by
//! index within a pass over the corpus, pass after pass ([`Passes`], as
//! [`DynamicInstances`] reads it too). The merge hands on the smallest (pass, index) once every worker
//! whose stream has not ended has one waiting, so the result does not
//! depend on which worker ran ahead.
//!
//! The stages in front must treat each document on its own (as the built-in
//! ones do), so that a worker keeps the same documents in every pass and a
//! pass cannot go unseen; a `[clean]` program that kept state across
//! documents would now see only its worker's share, and one that dropped all
//! of a worker's documents in one pass but not in another would mislabel
//! that worker's passes.
//!
//! Flow control: a worker blocked on its full output channel has already
//! sent every document its own output came from, and the worker the
//! consumer waits for is behind it, so it has what it needs. Two things the
//! in-band end markers alone would not cover: a worker's reader pauses while
//! its own documents pile up unmerged ([`Backlog`]), and a stop ends every
//! gather at once, since a failed worker may never send its end marker.
//!
//! [`DynamicInstances`]: crate::instances::DynamicInstances

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Exchange;

use crate::data::TokenizedDocument;
use crate::ingest::Passes;
use crate::operator::{Control, Flow, FlowStream};

/// One worker's stream as the merge sees it.
#[derive(Debug, Default)]
struct Source {
    waiting: VecDeque<(u64, TokenizedDocument)>,
    passes: Passes,
    ended: bool,
}

/// Merges several streams, each in corpus order, into one in corpus order.
#[derive(Debug)]
pub struct OrderedMerge {
    sources: Vec<Source>,
}

impl OrderedMerge {
    pub fn new(sources: usize) -> OrderedMerge {
        OrderedMerge {
            sources: (0..sources).map(|_| Source::default()).collect(),
        }
    }

    /// The next document of `source`'s stream.
    pub fn push(&mut self, source: usize, doc: TokenizedDocument) {
        let s = &mut self.sources[source];
        let pass = s.passes.pass_of(doc.index);
        s.waiting.push_back((pass, doc));
    }

    /// `source`'s stream has ended.
    pub fn end(&mut self, source: usize) {
        self.sources[source].ended = true;
    }

    /// Hands on every document whose turn it is.
    pub fn release(&mut self, emit: &mut dyn FnMut(TokenizedDocument)) {
        loop {
            let mut next: Option<(usize, (u64, u64))> = None;
            for (i, s) in self.sources.iter().enumerate() {
                match s.waiting.front() {
                    Some((pass, doc)) => {
                        let key = (*pass, doc.index);
                        if next.is_none_or(|(_, k)| key < k) {
                            next = Some((i, key));
                        }
                    }
                    // A stream that may still bring a smaller document.
                    None if !s.ended => return,
                    None => {}
                }
            }
            let Some((i, _)) = next else { return };
            let (_, doc) = self.sources[i].waiting.pop_front().expect("a head");
            emit(doc);
        }
    }

    /// Documents of `source` that wait to be handed on.
    pub fn waiting(&self, source: usize) -> usize {
        self.sources.get(source).map_or(0, |s| s.waiting.len())
    }

    /// Every stream has ended and every document was handed on.
    pub fn finished(&self) -> bool {
        self.sources.iter().all(|s| s.ended && s.waiting.is_empty())
    }
}

/// How many of this worker's own documents wait in its merge for the other
/// workers'. Its reader pauses above [`BACKLOG_LIMIT`]: a worker whose
/// output has room but whose merge waits on a worker blocked by the
/// consumer would otherwise read on through its whole share, holding it in
/// memory on every worker.
#[derive(Clone, Debug)]
pub struct Backlog {
    waiting: Rc<Cell<usize>>,
    limit: usize,
}

/// Own documents a worker may hold unmerged before its reader pauses.
pub const BACKLOG_LIMIT: usize = 256;

impl Default for Backlog {
    fn default() -> Backlog {
        Backlog::with_limit(BACKLOG_LIMIT)
    }
}

impl Backlog {
    pub fn with_limit(limit: usize) -> Backlog {
        Backlog {
            waiting: Rc::default(),
            limit,
        }
    }

    /// Whether the reader may go on.
    pub fn has_room(&self) -> bool {
        self.waiting.get() < self.limit
    }
}

/// The gather as a timely operator: every worker's documents go to every
/// worker, which merges them. Its stream ends once all workers' have, or at
/// once when the run stops (an error anywhere, or the consumer has enough):
/// a failed worker's end marker may never come, its worker being blocked on
/// a full channel that nobody reads any more.
pub fn gather<'s>(
    docs: FlowStream<'s, TokenizedDocument>,
    name: &str,
    control: Control,
    backlog: Backlog,
) -> FlowStream<'s, TokenizedDocument> {
    let scope = docs.scope();
    let (me, peers) = (scope.index(), scope.peers());
    docs.flat_map(move |flow| {
        // A copy for every other worker; this worker's own takes the original.
        let mut copies: Vec<_> = (0..peers)
            .filter(|&to| to != me)
            .map(|to| (to as u64, me, flow.clone()))
            .collect();
        copies.push((me as u64, me, flow));
        copies
    })
    .exchange(|(to, _, _)| *to)
    .unary(Pipeline, name, move |cap, info| {
        let activator = scope.activator_for(info.address);
        // Held until the end marker is out: a stop may need it when no
        // input has come.
        let mut cap = Some(cap);
        let mut merge = OrderedMerge::new(peers);
        move |input, output| {
            input.for_each(|_, data| {
                for (_, from, flow) in data.drain(..) {
                    match flow {
                        _ if cap.is_none() => {}
                        Flow::Item(doc) => merge.push(from, doc),
                        Flow::End => merge.end(from),
                    }
                }
            });
            let Some(c) = cap.as_ref() else { return };
            let mut session = output.session(c);
            if !control.stopped() {
                merge.release(&mut |doc| session.give(Flow::Item(doc)));
            }
            if merge.finished() || control.stopped() {
                session.give(Flow::End);
                drop(session);
                cap = None;
                merge = OrderedMerge::new(0);
                backlog.waiting.set(0);
                return;
            }
            drop(session);
            backlog.waiting.set(merge.waiting(me));
            // A stop may come while no input does.
            activator.activate_after(STOP_CHECK);
        }
    })
}

/// How often a waiting gather looks whether the run was stopped.
const STOP_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(index: u64) -> TokenizedDocument {
        TokenizedDocument {
            index,
            segments: vec![vec![index as u32]],
        }
    }

    /// Two passes over documents 0..10, dealt to `peers` workers by index,
    /// some dropped (as empty documents are): merged in any interleaving of
    /// the workers, they come out in corpus order, pass after pass.
    #[test]
    fn merges_the_shares_back_into_corpus_order_in_any_interleaving() {
        let kept: Vec<u64> = (0..10).filter(|i| i % 4 != 3).collect();
        let corpus: Vec<u64> = kept.iter().chain(&kept).copied().collect();
        for peers in [1, 2, 3] {
            let shares: Vec<Vec<u64>> = (0..peers)
                .map(|w| corpus.iter().copied().filter(|i| i % peers == w).collect())
                .collect();
            // Interleavings: one worker far ahead, then round-robin.
            for lead in 0..peers as usize {
                let mut merge = OrderedMerge::new(peers as usize);
                let mut out = Vec::new();
                let mut order: Vec<usize> = shares[lead].iter().map(|_| lead).collect();
                for round in 0..corpus.len() {
                    for (w, share) in shares.iter().enumerate() {
                        if w != lead && round < share.len() {
                            order.push(w);
                        }
                    }
                }
                let mut next = vec![0usize; peers as usize];
                for w in order {
                    merge.push(w, doc(shares[w][next[w]]));
                    next[w] += 1;
                    if next[w] == shares[w].len() {
                        merge.end(w);
                    }
                    merge.release(&mut |d| out.push(d.index));
                }
                assert!(merge.finished());
                assert_eq!(out, corpus, "{peers} workers, worker {lead} ahead");
            }
        }
    }

    #[test]
    fn waits_for_a_worker_that_may_still_bring_an_earlier_document() {
        let mut merge = OrderedMerge::new(2);
        let mut out = Vec::new();
        merge.push(0, doc(4));
        merge.release(&mut |d| out.push(d.index));
        assert!(out.is_empty(), "worker 1 may still send 1 or 3");
        merge.push(1, doc(1));
        merge.release(&mut |d| out.push(d.index));
        assert_eq!(out, [1]);
        merge.end(1);
        merge.release(&mut |d| out.push(d.index));
        assert_eq!(out, [1, 4]);
        assert!(!merge.finished());
        merge.end(0);
        assert!(merge.finished());
    }
}
