//! The TFRecord framing: each record is `u64` little-endian length, the
//! masked CRC32C of those 8 length bytes, the data, and the masked CRC32C of
//! the data (TensorFlow's `core/lib/io/record_writer.cc`).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;

use crate::error::{Error, Result};

/// Bytes before the data: length and its CRC.
pub const HEADER_LEN: u64 = 12;
/// Bytes after the data: its CRC.
pub const FOOTER_LEN: u64 = 4;

/// TensorFlow masks its CRCs because a CRC computed over data that itself
/// embeds CRCs is weak; the mask is part of the format.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames records onto any writer. It writes each record with three
/// `write_all` calls, so give it a buffered writer.
pub struct RecordWriter<W: Write> {
    inner: W,
    records: u64,
    bytes: u64,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(inner: W) -> Self {
        RecordWriter {
            inner,
            records: 0,
            bytes: 0,
        }
    }

    pub fn write_record(&mut self, data: &[u8]) -> io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(&len);
        header[8..].copy_from_slice(&masked_crc32c(&len).to_le_bytes());
        self.inner.write_all(&header)?;
        self.inner.write_all(data)?;
        self.inner.write_all(&masked_crc32c(data).to_le_bytes())?;
        self.records += 1;
        self.bytes += HEADER_LEN + data.len() as u64 + FOOTER_LEN;
        Ok(())
    }

    /// Records written so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// Framed bytes written so far (before any compression below).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> RecordWriter<GzEncoder<W>> {
    /// A writer of TensorFlow `GZIP`-compressed record files: the whole
    /// framed stream is one gzip stream. Call [`RecordWriter::finish`].
    pub fn gzip(inner: W) -> Self {
        RecordWriter::new(GzEncoder::new(inner, flate2::Compression::default()))
    }

    /// Writes the gzip trailer and returns the underlying writer. Dropping
    /// the writer instead would swallow any error of that last write.
    pub fn finish(self) -> io::Result<W> {
        self.inner.finish()
    }
}

/// Reads framed records and checks both CRCs of each. Errors name the
/// stream, the record number (from 0) and the byte offset of the record's
/// start; after an error the reader yields nothing more.
pub struct RecordReader<R: Read> {
    inner: R,
    name: PathBuf,
    /// "byte offset", or for a decompressed stream a phrase that says the
    /// offset counts decompressed bytes.
    offset_kind: &'static str,
    records: u64,
    offset: u64,
    done: bool,
}

impl<R: Read> RecordReader<R> {
    /// `name` is what errors call the stream, usually its file path.
    pub fn new(inner: R, name: impl Into<PathBuf>) -> Self {
        RecordReader {
            inner,
            name: name.into(),
            offset_kind: "byte offset",
            records: 0,
            offset: 0,
            done: false,
        }
    }

    /// Marks the stream as decompressed, so errors say which offsets they
    /// give.
    pub(crate) fn decompressed(mut self) -> Self {
        self.offset_kind = "decompressed byte offset";
        self
    }

    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Records read so far: also the number of the next record.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Byte offset of the next record in the (decompressed) stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next record into `buf` (replacing its contents), reusing its
    /// allocation. Returns `false` at a clean end of stream.
    pub fn read_record(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let result = self.read_framed(buf);
        match result {
            Ok(true) => {
                self.records += 1;
                self.offset += HEADER_LEN + buf.len() as u64 + FOOTER_LEN;
            }
            Ok(false) | Err(_) => self.done = true,
        }
        result
    }

    fn read_framed(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        let mut header = [0u8; HEADER_LEN as usize];
        let got = self.fill(&mut header)?;
        if got == 0 {
            return Ok(false);
        }
        if got < header.len() {
            return Err(self.error(format!(
                "truncated: the stream ends {got} bytes into the {HEADER_LEN}-byte record header"
            )));
        }
        let len_bytes: [u8; 8] = header[..8].try_into().expect("8-byte slice");
        let stored = u32::from_le_bytes(header[8..].try_into().expect("4-byte slice"));
        let computed = masked_crc32c(&len_bytes);
        if stored != computed {
            return Err(self.error(format!(
                "bad length CRC (stored {stored:#010x}, computed {computed:#010x}): the header is corrupt"
            )));
        }
        let len = u64::from_le_bytes(len_bytes);
        buf.clear();
        // `take` + `read_to_end` grows the buffer as data arrives, so a
        // huge length in a truncated file costs no huge allocation.
        let got = (&mut self.inner)
            .take(len)
            .read_to_end(buf)
            .map_err(|e| self.read_error(e))? as u64;
        if got < len {
            return Err(self.error(format!(
                "truncated: the stream ends after {got} of the record's {len} data bytes"
            )));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        let got = self.fill(&mut footer)?;
        if got < footer.len() {
            return Err(self.error(format!(
                "truncated: the stream ends {got} bytes into the {FOOTER_LEN}-byte data CRC"
            )));
        }
        let stored = u32::from_le_bytes(footer);
        let computed = masked_crc32c(buf);
        if stored != computed {
            let crc_offset = self.offset + HEADER_LEN + len;
            return Err(self.error(format!(
                "bad data CRC (stored {stored:#010x} at {} {crc_offset}, computed {computed:#010x} over {len} data bytes)",
                self.offset_kind
            )));
        }
        Ok(true)
    }

    /// Reads until `buf` is full or the stream ends; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        Ok(got)
    }

    fn error(&self, message: String) -> Error {
        Error::data(format!(
            "{}: record {} at {} {}: {message}",
            self.name.display(),
            self.records,
            self.offset_kind,
            self.offset
        ))
    }

    fn read_error(&self, e: io::Error) -> Error {
        self.error(format!("read error: {e}"))
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        match self.read_record(&mut buf) {
            Ok(true) => Some(Ok(buf)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_of_empty_input_matches_tensorflow() {
        // crc32c("") is 0, so the masked value is the mask delta itself.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    }

    #[test]
    fn frame_layout_is_length_crc_data_crc() {
        let mut w = RecordWriter::new(Vec::new());
        w.write_record(b"abc").unwrap();
        let bytes = w.into_inner();
        assert_eq!(bytes.len(), 12 + 3 + 4);
        assert_eq!(&bytes[..8], &3u64.to_le_bytes());
        assert_eq!(
            &bytes[8..12],
            &masked_crc32c(&3u64.to_le_bytes()).to_le_bytes()
        );
        assert_eq!(&bytes[12..15], b"abc");
        assert_eq!(&bytes[15..], &masked_crc32c(b"abc").to_le_bytes());
    }
}
