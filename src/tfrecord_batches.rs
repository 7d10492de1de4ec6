//! Batches read back from TFRecord files, for training and evaluating from
//! files instead of the live stream: once in file order (evaluation, as the
//! reference's eval `input_fn` reads them), or repeated and shuffled as the
//! reference's training `input_fn` reads them (run_pretraining.py
//! `input_fn_builder`: file order shuffled, files interleaved, records
//! shuffled in a buffer, repeated without end).

use std::collections::VecDeque;
use std::path::PathBuf;

use anyhow::Context as _;
use nezha_stages::batch::Batching;
use nezha_stages::stage::Stage;
use nezha_stages::tfrecord::{decode_instance, open_records, RecordReader};
use nezha_stages::Batch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

type Reader = RecordReader<Box<dyn std::io::Read>>;

/// One record and where it comes from (`file: record N`), for errors.
pub struct Record {
    pub origin: String,
    pub bytes: Vec<u8>,
    /// The pass over the files it belongs to.
    pub pass: u64,
}

/// Files read as the reference's training `input_fn` reads them, one pass
/// after another without end; every pass reads every record once:
/// - the file order is shuffled anew each pass;
/// - `CYCLE` files are read at a time, one record from each in turn (its
///   `parallel_interleave(cycle_length=min(4, #files))`), a finished file
///   replaced by the next;
/// - records pass through a shuffle buffer of `SHUFFLE_BUFFER` (its
///   `shuffle(buffer_size=100)`), drained at the end of each pass so that
///   passes do not mix.
///
/// Everything is drawn from (seed, pass), so the stream is the same on
/// every process: ranks take their batches from it
/// ([`TfRecordBatches::for_rank`]), and a resumed run reads it again from
/// the start and skips what was consumed.
pub struct RepeatedRecords {
    files: Vec<PathBuf>,
    seed: u64,
    pass: u64,
    rng: SmallRng,
    /// Files of this pass not opened yet, in order.
    pending: VecDeque<PathBuf>,
    open: Vec<(PathBuf, Reader)>,
    turn: usize,
    buffer: Vec<Record>,
    read_this_pass: u64,
}

/// Files read at a time.
const CYCLE: usize = 4;
/// Records shuffled at a time.
const SHUFFLE_BUFFER: usize = 100;

impl RepeatedRecords {
    pub fn new(files: Vec<PathBuf>, seed: u64) -> RepeatedRecords {
        let mut r = RepeatedRecords {
            files,
            seed,
            pass: 0,
            rng: SmallRng::seed_from_u64(0),
            pending: VecDeque::new(),
            open: Vec::new(),
            turn: 0,
            buffer: Vec::new(),
            read_this_pass: 0,
        };
        r.start_pass(0);
        r
    }

    fn start_pass(&mut self, pass: u64) {
        self.pass = pass;
        self.rng = SmallRng::seed_from_u64(
            self.seed ^ (pass.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let mut order = self.files.clone();
        // Fisher–Yates.
        for i in (1..order.len()).rev() {
            order.swap(i, self.rng.random_range(0..=i));
        }
        self.pending = order.into();
        self.open.clear();
        self.turn = 0;
        self.read_this_pass = 0;
    }

    /// The next record of the interleaved files of this pass, `None` at the
    /// pass's end.
    fn interleaved(&mut self) -> anyhow::Result<Option<Record>> {
        loop {
            while self.open.len() < CYCLE {
                let Some(f) = self.pending.pop_front() else {
                    break;
                };
                let reader = open_records(&f)?;
                self.open.push((f, reader));
            }
            if self.open.is_empty() {
                return Ok(None);
            }
            self.turn %= self.open.len();
            let (path, reader) = &mut self.open[self.turn];
            match reader.next() {
                Some(bytes) => {
                    let origin =
                        format!("{}: record {}", path.display(), reader.records_read() - 1);
                    self.turn += 1;
                    return Ok(Some(Record {
                        origin,
                        bytes: bytes?,
                        pass: self.pass,
                    }));
                }
                None => {
                    // Its place goes to the next file, read from this turn.
                    self.open.remove(self.turn);
                    if let Some(f) = self.pending.pop_front() {
                        let reader = open_records(&f)?;
                        self.open.insert(self.turn, (f, reader));
                    }
                }
            }
        }
    }

    fn next_record(&mut self) -> anyhow::Result<Record> {
        loop {
            while self.buffer.len() < SHUFFLE_BUFFER {
                match self.interleaved()? {
                    Some(r) => {
                        self.read_this_pass += 1;
                        self.buffer.push(r);
                    }
                    None => break,
                }
            }
            if !self.buffer.is_empty() {
                let i = self.rng.random_range(0..self.buffer.len());
                return Ok(self.buffer.swap_remove(i));
            }
            if self.read_this_pass == 0 {
                // Repeating would loop without end.
                anyhow::bail!(
                    "the TFRecord files hold no record: {}",
                    self.files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            self.start_pass(self.pass + 1);
        }
    }
}

impl Iterator for RepeatedRecords {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_record())
    }
}

/// Files in order, once: evaluation's reading.
struct InOrder {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, Reader)>,
}

impl Iterator for InOrder {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let f = self.files.next()?;
                match open_records(&f) {
                    Ok(r) => self.current = Some((f, r)),
                    Err(e) => return Some(Err(e.into())),
                }
            }
            let (path, reader) = self.current.as_mut()?;
            match reader.next() {
                Some(bytes) => {
                    let origin =
                        format!("{}: record {}", path.display(), reader.records_read() - 1);
                    return Some(bytes.map_err(Into::into).map(|bytes| Record {
                        origin,
                        bytes,
                        pass: 0,
                    }));
                }
                None => self.current = None,
            }
        }
    }
}

/// Batches of decoded records, every record checked (CRC, feature names,
/// lengths).
pub struct TfRecordBatches {
    records: Box<dyn Iterator<Item = anyhow::Result<Record>>>,
    batching: Batching,
    ready: VecDeque<Batch>,
    seq_len: usize,
    max_predictions: usize,
    /// This rank's share: of every `world` consecutive batches, the
    /// `rank`-th.
    rank: usize,
    world: usize,
    batch_size: u64,
    /// Records of the stream gone by, this rank's or not.
    seen: u64,
    done: bool,
}

impl TfRecordBatches {
    /// The files once, in order.
    pub fn new(
        files: Vec<PathBuf>,
        batch_size: usize,
        seq_len: usize,
        max_predictions: usize,
    ) -> Self {
        let records = InOrder {
            files: files.into_iter(),
            current: None,
        };
        Self::of(
            Box::new(records),
            batch_size,
            seq_len,
            max_predictions,
            0,
            1,
        )
    }

    /// Rank `rank` of `world`'s batches of the repeated, shuffled stream
    /// ([`RepeatedRecords`]): of its batches of `batch_size`, every
    /// `world`-th from the `rank`-th, so that global step k trains on the
    /// records one process with batch world·batch_size would, whatever the
    /// number of processes.
    pub fn for_rank(
        files: Vec<PathBuf>,
        seed: u64,
        batch_size: usize,
        seq_len: usize,
        max_predictions: usize,
        rank: usize,
        world: usize,
    ) -> Self {
        let records = RepeatedRecords::new(files, seed);
        Self::of(
            Box::new(records),
            batch_size,
            seq_len,
            max_predictions,
            rank,
            world,
        )
    }

    fn of(
        records: Box<dyn Iterator<Item = anyhow::Result<Record>>>,
        batch_size: usize,
        seq_len: usize,
        max_predictions: usize,
        rank: usize,
        world: usize,
    ) -> Self {
        TfRecordBatches {
            records,
            batching: Batching::new(batch_size, seq_len, max_predictions, false),
            ready: VecDeque::new(),
            seq_len,
            max_predictions,
            rank,
            world,
            batch_size: batch_size as u64,
            seen: 0,
            done: false,
        }
    }

    fn fill(&mut self) -> anyhow::Result<()> {
        while self.ready.is_empty() && !self.done {
            let Some(record) = self.records.next() else {
                self.done = true;
                break;
            };
            let record = record?;
            // Batch k holds the stream's records k·B … (k+1)·B−1 and goes to
            // rank k mod world: a rank decodes and batches only its own
            // records (the others' only pass through the CRC check).
            let batch = self.seen / self.batch_size;
            self.seen += 1;
            if batch % self.world as u64 != self.rank as u64 {
                continue;
            }
            let inst = decode_instance(&record.bytes, self.seq_len, self.max_predictions)
                .with_context(|| record.origin.clone())?;
            let ready = &mut self.ready;
            self.batching.push(inst, &mut |b| ready.push_back(b))?;
        }
        Ok(())
    }
}

impl Iterator for TfRecordBatches {
    type Item = anyhow::Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            self.done = true;
            self.ready.clear();
            return Some(Err(e));
        }
        self.ready.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nezha_stages::tfrecord::RecordWriter;

    /// `files` files of `per_file` records each; record bytes name their
    /// file and index.
    fn write_files(dir: &std::path::Path, files: usize, per_file: usize) -> Vec<PathBuf> {
        (0..files)
            .map(|f| {
                let path = dir.join(format!("part-{f}.tfrecord"));
                let mut w = RecordWriter::new(std::fs::File::create(&path).unwrap());
                for i in 0..per_file {
                    w.write_record(format!("{f}/{i}").as_bytes()).unwrap();
                }
                path
            })
            .collect()
    }

    fn passes(records: &mut RepeatedRecords, n: u64) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = vec![Vec::new(); n as usize];
        loop {
            let r = records.next().unwrap().unwrap();
            if r.pass >= n {
                return out;
            }
            out[r.pass as usize].push(String::from_utf8(r.bytes).unwrap());
        }
    }

    #[test]
    fn every_pass_reads_every_record_once_in_a_new_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_files(dir.path(), 6, 70);
        let mut all: Vec<String> = (0..6)
            .flat_map(|f| (0..70).map(move |i| format!("{f}/{i}")))
            .collect();
        all.sort();
        let got = passes(&mut RepeatedRecords::new(files.clone(), 7), 3);
        for pass in &got {
            let mut sorted = pass.clone();
            sorted.sort();
            assert_eq!(sorted, all);
        }
        assert_ne!(got[0], got[1]);
        assert_ne!(got[1], got[2]);
        // From (seed, pass) alone: the same again, another seed differs.
        assert_eq!(passes(&mut RepeatedRecords::new(files.clone(), 7), 3), got);
        assert_ne!(passes(&mut RepeatedRecords::new(files, 8), 1)[0], got[0]);
    }

    /// `files` files of `per_file` instances each; instance number n
    /// (counting across files) carries n + 10 as its one segment-A token.
    fn write_instances(dir: &std::path::Path, files: usize, per_file: usize) -> Vec<PathBuf> {
        use nezha_stages::tfrecord::encode_instance;
        (0..files)
            .map(|f| {
                let path = dir.join(format!("inst-{f}.tfrecord"));
                let mut w = RecordWriter::new(std::fs::File::create(&path).unwrap());
                for i in 0..per_file {
                    let n = (f * per_file + i) as u32;
                    let inst = nezha_stages::Instance {
                        tokens: vec![2, n + 10, 3, 7, 3],
                        segment_a_len: 3,
                        is_random_next: false,
                        masked_positions: vec![3],
                        masked_labels: vec![7],
                    };
                    let mut buf = Vec::new();
                    encode_instance(&inst, 8, 2, &mut buf).unwrap();
                    w.write_record(&buf).unwrap();
                }
                path
            })
            .collect()
    }

    /// The instance numbers of batch after batch.
    fn numbers(batches: impl Iterator<Item = anyhow::Result<Batch>>, n: usize) -> Vec<Vec<i64>> {
        batches
            .take(n)
            .map(|b| {
                let b = b.unwrap();
                (0..b.size)
                    .map(|s| b.input_ids[s * b.seq_len + 1] - 10)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn ranks_share_one_stream_whatever_their_number() {
        let dir = tempfile::tempdir().unwrap();
        // 4 files of 30: a pass is 120 instances, 15 batches of 8.
        let files = write_instances(dir.path(), 4, 30);
        let steps = 45; // three passes of one process with batch 8
        let alone = numbers(
            TfRecordBatches::for_rank(files.clone(), 3, 8, 8, 2, 0, 1),
            steps,
        );
        for pass in alone.chunks(15) {
            let mut seen: Vec<i64> = pass.iter().flatten().copied().collect();
            seen.sort();
            assert_eq!(
                seen,
                (0..120).collect::<Vec<_>>(),
                "a pass sees every record once"
            );
        }
        assert_ne!(alone[..15], alone[15..30]);
        for world in [2, 4] {
            let per_rank: Vec<Vec<Vec<i64>>> = (0..world)
                .map(|rank| {
                    numbers(
                        TfRecordBatches::for_rank(files.clone(), 3, 8 / world, 8, 2, rank, world),
                        steps,
                    )
                })
                .collect();
            for (step, global) in alone.iter().enumerate() {
                let together: Vec<i64> = per_rank.iter().flat_map(|r| r[step].clone()).collect();
                assert_eq!(&together, global, "{world} ranks, step {step}");
            }
        }
    }

    #[test]
    fn an_empty_file_set_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_files(dir.path(), 2, 0);
        let err = RepeatedRecords::new(files, 1)
            .next()
            .unwrap()
            .err()
            .unwrap();
        assert!(err.to_string().contains("hold no record"), "{err}");
    }
}
