//! Batches read back from TFRecord files, for training from files instead
//! of the live stream.

use std::path::PathBuf;

use anyhow::Context as _;
use nezha_stages::batch::Batching;
use nezha_stages::stage::Stage;
use nezha_stages::tfrecord::{decode_instance, open_records};
use nezha_stages::Batch;

/// Batches read back from TFRecord files in the reference layout, files in
/// order, every record checked (CRC, feature names, lengths).
pub struct TfRecordBatches {
    files: std::vec::IntoIter<PathBuf>,
    records: Option<(
        PathBuf,
        nezha_stages::tfrecord::RecordReader<Box<dyn std::io::Read>>,
    )>,
    batching: Batching,
    ready: std::collections::VecDeque<Batch>,
    seq_len: usize,
    max_predictions: usize,
    index: u64,
    done: bool,
}

impl TfRecordBatches {
    pub fn new(
        files: Vec<PathBuf>,
        batch_size: usize,
        seq_len: usize,
        max_predictions: usize,
    ) -> Self {
        TfRecordBatches {
            files: files.into_iter(),
            records: None,
            batching: Batching::new(batch_size, seq_len, max_predictions, false),
            ready: Default::default(),
            seq_len,
            max_predictions,
            index: 0,
            done: false,
        }
    }

    fn fill(&mut self) -> anyhow::Result<()> {
        while self.ready.is_empty() && !self.done {
            if self.records.is_none() {
                match self.files.next() {
                    Some(f) => self.records = Some((f.clone(), open_records(&f)?)),
                    None => {
                        self.done = true;
                        break;
                    }
                }
            }
            let (path, reader) = self.records.as_mut().expect("opened above");
            match reader.next() {
                Some(record) => {
                    let bytes = record?;
                    let inst = decode_instance(&bytes, self.seq_len, self.max_predictions)
                        .with_context(|| {
                            format!("{}: record {}", path.display(), reader.records_read() - 1)
                        })?;
                    self.index += 1;
                    let ready = &mut self.ready;
                    self.batching.push(inst, &mut |b| ready.push_back(b))?;
                }
                None => self.records = None,
            }
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
