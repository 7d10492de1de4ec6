use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use super::Ingest;
use crate::data::Document;
use crate::error::{Error, Result};

/// Reads the corpus on its own thread and sends this worker's share of the
/// documents (those whose index is `worker` modulo `peers`) down a bounded
/// channel, so reading never runs ahead of processing by more than the
/// channel's capacity.
///
/// Every worker reads the whole input and keeps its share: reading and
/// checking text is much cheaper than tokenizing it, and this keeps workers
/// independent (none waits on another's reader) and the split
/// deterministic.
pub fn spawn_reader(
    ingest: Arc<dyn Ingest>,
    files: Arc<Vec<PathBuf>>,
    worker: usize,
    peers: usize,
    bytes_read: Arc<AtomicU64>,
    tx: Sender<Result<Document, Error>>,
) -> JoinHandle<()> {
    spawn_reader_passes(ingest, files, worker, peers, 1, bytes_read, tx)
}

/// As [`spawn_reader`], reading the whole input `passes` times in a row
/// (the epochs of dynamic masking); document indices start again at 0 with
/// each pass.
pub fn spawn_reader_passes(
    ingest: Arc<dyn Ingest>,
    files: Arc<Vec<PathBuf>>,
    worker: usize,
    peers: usize,
    passes: usize,
    bytes_read: Arc<AtomicU64>,
    tx: Sender<Result<Document, Error>>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("ingest-{worker}"))
        .spawn(move || {
            for _ in 0..passes {
                let mut open = true;
                // A reader that panicked would only close its channel, which
                // reads as the end of the corpus: the panic is an error.
                let result = crate::operator::catch_panic(worker, "ingest", || {
                    ingest.read(&files, &bytes_read, &mut |doc| {
                        if doc.index % peers as u64 != worker as u64 {
                            return true;
                        }
                        open = tx.send(Ok(doc)).is_ok();
                        open
                    })
                });
                if let Err(e) = result {
                    let _ = tx.send(Err(e));
                    return;
                }
                if !open {
                    return;
                }
            }
        })
        .expect("spawn ingest thread")
}
