//! Which rank was lost: a collective that fails because a peer died only
//! says that a connection closed (Gloo) or that time ran out. Every rank
//! therefore beats a counter into the store from a thread of its own; after
//! a failure a survivor reads every rank's counter twice, a few beats apart,
//! and names the ranks whose counter stopped without a word.
//!
//! Keys: `nezha/heartbeat/<rank>` holds `beat <n>` while the rank lives, or
//! `left <why>` once it leaves on its own (finished, or failed and said so).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::store::Store;

/// What one rank's key said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Beat {
    Alive(u64),
    Left(String),
}

impl Beat {
    fn parse(bytes: &[u8]) -> Beat {
        let text = String::from_utf8_lossy(bytes);
        match text.split_once(' ') {
            Some(("beat", n)) => Beat::Alive(n.parse().unwrap_or(0)),
            Some(("left", why)) => Beat::Left(why.to_string()),
            _ => Beat::Left(format!("unreadable heartbeat {text:?}")),
        }
    }
}

fn key(rank: usize) -> String {
    format!("nezha/heartbeat/{rank}")
}

/// A survivor's judgement after a failed collective.
#[derive(Clone, Debug)]
pub struct Diagnosis {
    /// Ranks that stopped beating without leaving (rank 0 when the store
    /// it serves is gone).
    pub lost: Vec<usize>,
    /// Names the lost ranks and those that left, and why.
    pub message: String,
}

/// This rank's heartbeat thread, and the means to judge the others'.
pub struct Heartbeat {
    store: Arc<Store>,
    rank: usize,
    world_size: usize,
    interval: Duration,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Heartbeat {
    /// Sets this rank's key and starts beating it every `interval`. Start it
    /// once the process group exists: c10d's group set-up uses the store
    /// client too, and blocking `get`s would delay the beats.
    pub fn start(
        store: Arc<Store>,
        rank: usize,
        world_size: usize,
        interval: Duration,
    ) -> Result<Heartbeat> {
        store.set(&key(rank), b"beat 0")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("heartbeat-{rank}"))
                .spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(interval);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        n += 1;
                        // A store that no longer answers is judged by
                        // `lost_ranks`; the thread has nobody to tell.
                        if store
                            .set(&key(rank), format!("beat {n}").as_bytes())
                            .is_err()
                        {
                            break;
                        }
                    }
                })
                .expect("spawning the heartbeat thread")
        };
        Ok(Heartbeat {
            store,
            rank,
            world_size,
            interval,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Every rank's current word; `Err` when the store (rank 0) does not answer.
    pub fn read(&self) -> Result<Vec<Beat>> {
        (0..self.world_size)
            .map(|r| Ok(Beat::parse(&self.store.get(&key(r))?)))
            .collect()
    }

    /// Explains a failed collective: which ranks stopped beating within three
    /// beats, which left on their own, or that the store itself is gone (its
    /// host, rank 0, is lost). Takes about three intervals.
    pub fn diagnose(&self) -> Diagnosis {
        let store_lost = |e: crate::Error| Diagnosis {
            lost: vec![0],
            message: format!(
                "lost rank 0: the store it serves at {}:{} does not answer ({e})",
                self.store.addr(),
                self.store.port()
            ),
        };
        let first = match self.read() {
            Ok(b) => b,
            Err(e) => return store_lost(e),
        };
        std::thread::sleep(self.interval * 3);
        let second = match self.read() {
            Ok(b) => b,
            Err(e) => return store_lost(e),
        };
        let mut lost = Vec::new();
        let mut left = Vec::new();
        for (r, (a, b)) in first.iter().zip(&second).enumerate() {
            if r == self.rank {
                continue;
            }
            match (a, b) {
                (Beat::Alive(x), Beat::Alive(y)) if x == y => lost.push(r),
                (_, Beat::Left(why)) => left.push(format!("rank {r} left ({why})")),
                _ => {}
            }
        }
        let silent = self.interval * 3;
        let message = match (lost.as_slice(), left.is_empty()) {
            ([], true) => "every other rank still beats its heartbeat: none was lost (a rank may \
                           be stalled or slower than the timeout)"
                .to_string(),
            ([], false) => left.join("; "),
            (lost, _) => {
                let names: Vec<String> = lost.iter().map(|r| format!("rank {r}")).collect();
                let mut msg = format!(
                    "lost {}: no heartbeat for {silent:?} (killed, crashed, or its machine is \
                     unreachable)",
                    names.join(", ")
                );
                if !left.is_empty() {
                    msg.push_str(&format!("; {}", left.join("; ")));
                }
                msg
            }
        };
        Diagnosis { lost, message }
    }

    /// Waits up to `within` until every rank not in `except` has left, so that
    /// rank 0, whose exit takes the store down, lets the others read it first.
    pub fn wait_for_others_to_leave(&self, except: &[usize], within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let Ok(beats) = self.read() else { return };
            let waiting = beats.iter().enumerate().any(|(r, b)| {
                r != self.rank && !except.contains(&r) && matches!(b, Beat::Alive(_))
            });
            if !waiting {
                return;
            }
            std::thread::sleep(self.interval);
        }
    }

    /// Stops beating and records why this rank leaves (the first reason
    /// given wins).
    pub fn leave(&self, why: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
            let why = why.replace('\n', " ");
            let _ = self
                .store
                .set(&key(self.rank), format!("left {why}").as_bytes());
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.leave("finished");
    }
}
