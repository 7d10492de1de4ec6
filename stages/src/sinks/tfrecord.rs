use std::path::PathBuf;

use flate2::write::GzEncoder;

use crate::atomic_file::AtomicFile;
use crate::data::Instance;
use crate::error::{Error, Result};
use crate::tfrecord::{encode_instance, RecordWriter};

/// Writes instances as `tf.train.Example` records in the reference layout,
/// spreading them over the output files round-robin as the reference does.
/// Nothing appears at the output paths unless every file is complete.
pub struct TfRecordSink {
    pub outputs: Vec<PathBuf>,
    pub gzip: bool,
    pub max_seq_length: usize,
    pub max_predictions_per_seq: usize,
}

#[derive(Clone, Debug, Default)]
pub struct WriteSummary {
    pub records: u64,
    /// Wall time of the run, filled in by the caller.
    pub seconds: f64,
    pub bytes: u64,
    pub per_file: Vec<(PathBuf, u64)>,
}

enum Out {
    Plain(RecordWriter<AtomicFile>),
    Gzip(RecordWriter<GzEncoder<AtomicFile>>),
}

impl Out {
    fn write(&mut self, record: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Plain(w) => w.write_record(record),
            Out::Gzip(w) => w.write_record(record),
        }
    }

    fn commit(self) -> Result<()> {
        match self {
            Out::Plain(w) => w.into_inner().commit(),
            Out::Gzip(w) => {
                let gz = w.into_inner();
                let path = gz.get_ref().path().to_path_buf();
                let file = gz.finish().map_err(|e| Error::io(&path, e))?;
                file.commit()
            }
        }
    }
}

impl TfRecordSink {
    /// Creates every output file (as a temporary) before consuming anything,
    /// so an unwritable path fails before any work is done.
    pub fn open(&self) -> Result<TfRecordWriters<'_>> {
        if self.outputs.is_empty() {
            return Err(Error::config("no output file given"));
        }
        let mut outs = Vec::new();
        for path in &self.outputs {
            let file = AtomicFile::create(path)?;
            outs.push(if self.gzip {
                Out::Gzip(RecordWriter::new(GzEncoder::new(
                    file,
                    flate2::Compression::default(),
                )))
            } else {
                Out::Plain(RecordWriter::new(file))
            });
        }
        Ok(TfRecordWriters {
            sink: self,
            outs,
            counts: vec![0; self.outputs.len()],
            buf: Vec::with_capacity(4096),
            next: 0,
            bytes: 0,
        })
    }
}

/// The open output files of a [`TfRecordSink`].
pub struct TfRecordWriters<'a> {
    sink: &'a TfRecordSink,
    outs: Vec<Out>,
    counts: Vec<u64>,
    buf: Vec<u8>,
    next: usize,
    bytes: u64,
}

impl TfRecordWriters<'_> {
    pub fn write(&mut self, inst: &Instance) -> Result<()> {
        self.buf.clear();
        encode_instance(
            inst,
            self.sink.max_seq_length,
            self.sink.max_predictions_per_seq,
            &mut self.buf,
        )?;
        let i = self.next;
        self.outs[i]
            .write(&self.buf)
            .map_err(|e| Error::io(&self.sink.outputs[i], e))?;
        self.counts[i] += 1;
        self.bytes += self.buf.len() as u64 + 16;
        self.next = (i + 1) % self.outs.len();
        Ok(())
    }

    /// Finishes and renames every file into place.
    pub fn commit(self) -> Result<WriteSummary> {
        for out in self.outs {
            out.commit()?;
        }
        Ok(WriteSummary {
            records: self.counts.iter().sum(),
            seconds: 0.0,
            bytes: self.bytes,
            per_file: self.sink.outputs.iter().cloned().zip(self.counts).collect(),
        })
    }
}
