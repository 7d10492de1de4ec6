//! How far the key reader may run ahead of the workers.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The index of the document each worker is at, shared by the workers'
/// filters and the key reader. The reader may read up to `window`
/// documents past the furthest worker.
///
/// Past the *furthest* worker, not the slowest: a worker waiting for the
/// decision on its document must always get it, even while another worker
/// is stalled (its sink full, because the consumer takes batches from the
/// workers in turn and is waiting for this one). Bounding the reader by the
/// slowest worker could deadlock when one worker's share is mostly
/// duplicates; bounding it by the furthest cannot. What this costs is that
/// decisions for a lagging worker queue up: at most one index per document
/// it keeps, so the queue is bounded by the distinct documents too.
pub struct Lead {
    positions: Mutex<Vec<u64>>,
    moved: Condvar,
    window: u64,
}

impl Lead {
    pub fn new(workers: usize, window: u64) -> Lead {
        Lead {
            positions: Mutex::new(vec![0; workers]),
            moved: Condvar::new(),
            window,
        }
    }

    /// A worker is at document `index` (`u64::MAX`: it has finished).
    pub fn advance(&self, worker: usize, index: u64) {
        let mut p = self.positions.lock().unwrap();
        if p[worker] < index {
            p[worker] = index;
            self.moved.notify_all();
        }
    }

    /// The first index the reader may not read yet.
    pub fn limit(&self) -> u64 {
        Self::limit_of(&self.positions.lock().unwrap(), self.window)
    }

    fn limit_of(positions: &[u64], window: u64) -> u64 {
        positions
            .iter()
            .max()
            .copied()
            .unwrap_or(0)
            .saturating_add(window)
    }

    /// Waits until the reader may read document `index`; returns the new
    /// limit, or `None` when `stopped` says the run is over.
    pub fn wait_for(&self, index: u64, stopped: impl Fn() -> bool) -> Option<u64> {
        let mut p = self.positions.lock().unwrap();
        loop {
            let limit = Self::limit_of(&p, self.window);
            if index < limit {
                return Some(limit);
            }
            if stopped() {
                return None;
            }
            p = self
                .moved
                .wait_timeout(p, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_furthest_worker_sets_the_limit() {
        let lead = Lead::new(2, 10);
        assert_eq!(lead.limit(), 10);
        lead.advance(1, 25);
        lead.advance(0, 3);
        assert_eq!(lead.limit(), 35);
        lead.advance(1, 20); // never moves back
        assert_eq!(lead.limit(), 35);
        lead.advance(0, u64::MAX);
        assert_eq!(lead.limit(), u64::MAX);
    }

    #[test]
    fn the_reader_waits_until_a_worker_moves() {
        let lead = Arc::new(Lead::new(2, 4));
        let waiter = {
            let lead = lead.clone();
            std::thread::spawn(move || lead.wait_for(7, || false))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        lead.advance(0, 5);
        assert_eq!(waiter.join().unwrap(), Some(9));
        assert_eq!(lead.wait_for(100, || true), None);
    }
}
