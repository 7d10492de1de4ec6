use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// Reads a text file line by line, checking UTF-8 as it goes so that an
/// error names the byte offset of the first bad byte. `.gz` files are
/// decompressed; offsets then count decompressed bytes.
///
/// Lines end at `\n` only, and every `\r` is dropped wherever it is: that is
/// what the reference's `tf.gfile.GFile.readline()` does (pinned by the
/// golden case `reader`), so `a\rb` reads as `ab` and CRLF files read as LF.
pub struct LineReader<'a> {
    path: PathBuf,
    reader: Box<dyn BufRead + Send + 'a>,
    buf: Vec<u8>,
    offset: u64,
    line_no: u64,
}

impl<'a> LineReader<'a> {
    pub fn open(path: &Path, bytes_read: &'a AtomicU64) -> Result<LineReader<'a>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file = Counting {
            inner: file,
            count: bytes_read,
        };
        let raw: Box<dyn Read + Send + 'a> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        Ok(LineReader {
            path: path.to_path_buf(),
            reader: Box::new(BufReader::with_capacity(1 << 20, raw)),
            buf: Vec::new(),
            offset: 0,
            line_no: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line with its 1-based number, the line ending kept, or
    /// `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        let start = self.offset;
        self.offset += n as u64;
        self.line_no += 1;
        if self.buf.contains(&b'\r') {
            // Checked before dropping, so offsets stay those of the file.
            if let Err(e) = std::str::from_utf8(&self.buf) {
                return Err(Error::invalid_utf8(
                    &self.path,
                    start + e.valid_up_to() as u64,
                ));
            }
            self.buf.retain(|&b| b != b'\r');
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some((self.line_no, s))),
            Err(e) => Err(Error::invalid_utf8(
                &self.path,
                start + e.valid_up_to() as u64,
            )),
        }
    }
}

/// Counts the bytes read from the file itself, before decompression.
struct Counting<'a> {
    inner: File,
    count: &'a AtomicU64,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn invalid_utf8_names_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, b"ok line\nab\xffcd\n").unwrap();
        let count = AtomicU64::new(0);
        let mut r = LineReader::open(&p, &count).unwrap();
        assert_eq!(r.next_line().unwrap(), Some((1, "ok line\n")));
        let err = r.next_line().unwrap_err().to_string();
        assert!(
            err.contains("bad.txt") && err.contains("byte offset 10"),
            "{err}"
        );
    }

    #[test]
    fn carriage_returns_are_dropped_as_the_reference_does() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cr.txt");
        std::fs::write(&p, b"a\rb\r\nc\r\r\n").unwrap();
        let count = AtomicU64::new(0);
        let mut r = LineReader::open(&p, &count).unwrap();
        assert_eq!(r.next_line().unwrap(), Some((1, "ab\n")));
        assert_eq!(r.next_line().unwrap(), Some((2, "c\n")));
        assert_eq!(r.next_line().unwrap(), None);
        drop(r);
        assert_eq!(count.into_inner(), 9);
    }

    #[test]
    fn gzip_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.txt.gz");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        gz.write_all("第一行\nsecond".as_bytes()).unwrap();
        gz.finish().unwrap();
        let count = AtomicU64::new(0);
        let mut r = LineReader::open(&p, &count).unwrap();
        assert_eq!(r.next_line().unwrap(), Some((1, "第一行\n")));
        assert_eq!(r.next_line().unwrap(), Some((2, "second")));
        assert_eq!(r.next_line().unwrap(), None);
    }
}
