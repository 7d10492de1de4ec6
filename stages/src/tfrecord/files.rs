//! Record files on disk, plain or compressed the way TensorFlow's `GZIP`
//! option compresses them: the whole framed stream as one gzip stream.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::framing::{masked_crc32c, RecordReader, RecordWriter, HEADER_LEN};
use crate::error::{Error, Result};

const BUFFER: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

impl Compression {
    /// `Gzip` for a `.gz` name, the convention for TensorFlow `GZIP` files.
    pub fn from_path(path: &Path) -> Compression {
        match path.extension() {
            Some(ext) if ext == "gz" => Compression::Gzip,
            _ => Compression::None,
        }
    }
}

/// Opens a record file, plain or gzip-compressed.
///
/// The content decides, not the name: a file is read as gzip when it starts
/// with the gzip magic `1f 8b 08` and its first 12 bytes are not a valid
/// record header. The second test matters because a plain file whose first
/// record is 559,903 bytes long or more can also start with those bytes; a
/// gzip header passes the length CRC check only by a 1 in 2^32 chance.
pub fn open_records(path: &Path) -> Result<RecordReader<Box<dyn Read>>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; HEADER_LEN as usize];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let gzip = got >= 3
        && head[..3] == [0x1f, 0x8b, 0x08]
        && !(got == head.len() && is_valid_header(&head));
    let stream = Cursor::new(head[..got].to_vec()).chain(file);
    let reader: Box<dyn Read> = if gzip {
        Box::new(BufReader::with_capacity(
            BUFFER,
            MultiGzDecoder::new(BufReader::with_capacity(BUFFER, stream)),
        ))
    } else {
        Box::new(BufReader::with_capacity(BUFFER, stream))
    };
    let reader = RecordReader::new(reader, path);
    Ok(if gzip { reader.decompressed() } else { reader })
}

fn is_valid_header(head: &[u8; HEADER_LEN as usize]) -> bool {
    let stored = u32::from_le_bytes(head[8..12].try_into().expect("4-byte slice"));
    masked_crc32c(&head[..8]) == stored
}

/// Creates (truncates) a record file. Call [`RecordFileWriter::finish`] at the
/// end: it flushes and, for gzip, writes the trailer, reporting any error.
pub fn create_records(path: &Path, compression: Compression) -> Result<RecordFileWriter> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let file = BufWriter::with_capacity(BUFFER, file);
    let sink = match compression {
        Compression::None => Sink::Plain(file),
        Compression::Gzip => Sink::Gzip(GzEncoder::new(file, flate2::Compression::default())),
    };
    Ok(RecordFileWriter {
        path: path.to_path_buf(),
        writer: RecordWriter::new(sink),
    })
}

/// A record file being written; see [`create_records`].
pub struct RecordFileWriter {
    path: PathBuf,
    writer: RecordWriter<Sink>,
}

impl RecordFileWriter {
    pub fn write_record(&mut self, data: &[u8]) -> Result<()> {
        self.writer
            .write_record(data)
            .map_err(|e| Error::io(&self.path, e))
    }

    pub fn records_written(&self) -> u64 {
        self.writer.records_written()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Completes the file; returns the number of records written.
    pub fn finish(self) -> Result<u64> {
        let records = self.writer.records_written();
        let path = self.path;
        let done = match self.writer.into_inner() {
            Sink::Plain(w) => w.into_inner().map_err(|e| e.into_error()),
            Sink::Gzip(w) => w
                .finish()
                .and_then(|w| w.into_inner().map_err(|e| e.into_error())),
        };
        done.map_err(|e| Error::io(&path, e))?;
        Ok(records)
    }
}

enum Sink {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(buf),
            Sink::Gzip(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}
