use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// Reads a text file line by line, checking UTF-8 as it goes so that an
/// error names the byte offset of the first bad byte. `.gz`, `.zst` and
/// `.xz` files are decompressed, chosen by extension; offsets then count
/// decompressed bytes, and a truncated or corrupt file is an error naming
/// it and the decompressed offset reached.
///
/// Lines end at `\n` only, and every `\r` is dropped wherever it is: that is
/// what the reference's `tf.gfile.GFile.readline()` does (pinned by the
/// golden case `reader`), so `a\rb` reads as `ab` and CRLF files read as LF.
///
/// With [`LineReader::max_line`], a longer line comes in pieces of at most
/// that many bytes, each cut after the last sentence end or space of its
/// second half (else at a character boundary), all with the line's number:
/// a file that is one 100 MB line is then read in bounded memory.
pub struct LineReader<'a> {
    path: PathBuf,
    reader: Box<dyn BufRead + Send + 'a>,
    buf: Vec<u8>,
    /// The rest of a line cut by `max_line`, read before the file.
    carry: Vec<u8>,
    /// File offset of the next piece's first byte.
    offset: u64,
    line_no: u64,
    /// The last piece was cut from a line that goes on.
    inside_line: bool,
    max_line: Option<usize>,
}

impl<'a> LineReader<'a> {
    pub fn open(path: &Path, bytes_read: &'a AtomicU64) -> Result<LineReader<'a>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file = Counting {
            inner: file,
            count: bytes_read,
        };
        let raw: Box<dyn Read + Send + 'a> = match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Box::new(MultiGzDecoder::new(file)),
            // Multi-frame files (as `zstd` writes concatenated inputs) read
            // on across frames, as gzip members do.
            Some("zst") => {
                Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| Error::io(path, e))?)
            }
            // Concatenated .xz streams too, as `xz -d` reads them.
            Some("xz") => Box::new(liblzma::read::XzDecoder::new_multi_decoder(file)),
            _ => Box::new(file),
        };
        Ok(LineReader {
            path: path.to_path_buf(),
            reader: Box::new(BufReader::with_capacity(1 << 20, raw)),
            buf: Vec::new(),
            carry: Vec::new(),
            offset: 0,
            line_no: 0,
            inside_line: false,
            max_line: None,
        })
    }

    /// Hands on lines longer than `bytes` (at least 8) in pieces.
    pub fn max_line(mut self, bytes: Option<usize>) -> LineReader<'a> {
        self.max_line = bytes.map(|b| b.max(8));
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line (or piece of a long line) with its 1-based number, the
    /// line ending kept, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        Ok(self.next_piece()?.map(|(n, line, _)| (n, line)))
    }

    /// [`LineReader::next_line`], and whether [`LineReader::max_line`] cut
    /// the line there (its rest still to come).
    pub fn next_piece(&mut self) -> Result<Option<(u64, &str, bool)>> {
        self.buf.clear();
        self.buf.append(&mut self.carry);
        let limit = self.max_line.unwrap_or(usize::MAX);
        let mut ended = false;
        while self.buf.len() < limit {
            let offset = self.offset + self.buf.len() as u64;
            let available = self.reader.fill_buf().map_err(|e| {
                Error::io(
                    &self.path,
                    std::io::Error::new(e.kind(), format!("{e} (at decompressed byte {offset})")),
                )
            })?;
            if available.is_empty() {
                break;
            }
            let window = &available[..available.len().min(limit - self.buf.len())];
            let (take, newline) = match window.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (window.len(), false),
            };
            self.buf.extend_from_slice(&window[..take]);
            self.reader.consume(take);
            if newline {
                ended = true;
                break;
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let start = self.offset;
        let cut = !ended && self.buf.len() >= limit;
        if cut {
            let cut = self.cut_point(start)?;
            self.carry.extend_from_slice(&self.buf[cut..]);
            self.buf.truncate(cut);
        }
        self.offset += self.buf.len() as u64;
        if !self.inside_line {
            self.line_no += 1;
        }
        // A piece cut by the bound: the line goes on in the next.
        self.inside_line = cut;
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
            Ok(s) => Ok(Some((self.line_no, s, cut))),
            Err(e) => Err(Error::invalid_utf8(
                &self.path,
                start + e.valid_up_to() as u64,
            )),
        }
    }

    /// Where to cut a full `buf` of a longer line: after the last sentence
    /// end or space in its second half, else after its last whole
    /// character.
    fn cut_point(&self, start: u64) -> Result<usize> {
        let valid = match std::str::from_utf8(&self.buf) {
            Ok(s) => s,
            // A character cut by the limit: the piece ends before it.
            Err(e) if e.error_len().is_none() => {
                std::str::from_utf8(&self.buf[..e.valid_up_to()]).expect("valid prefix")
            }
            Err(e) => {
                return Err(Error::invalid_utf8(
                    &self.path,
                    start + e.valid_up_to() as u64,
                ))
            }
        };
        let half = valid.len() / 2;
        let nice = valid
            .char_indices()
            .rev()
            .take_while(|&(i, _)| i >= half)
            .find(|&(_, c)| SENTENCE_ENDS.contains(&c) || c.is_whitespace())
            .map(|(i, c)| i + c.len_utf8());
        Ok(nice.unwrap_or(valid.len()).max(1))
    }
}

/// Where a long line is best cut.
const SENTENCE_ENDS: &[char] = &['。', '！', '？', '；', '.', '!', '?', ';'];

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
    fn long_lines_come_in_bounded_pieces_cut_at_sentence_ends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long.txt");
        // 3-byte characters; 16-byte pieces.
        std::fs::write(&p, "一二三。四五六七八九十\nab cdefghijklmnopqrs\nx\n").unwrap();
        let count = AtomicU64::new(0);
        let mut r = LineReader::open(&p, &count).unwrap().max_line(Some(16));
        let mut pieces = Vec::new();
        while let Some((n, piece)) = r.next_line().unwrap() {
            assert!(piece.len() <= 16, "{piece:?}");
            pieces.push((n, piece.to_string()));
        }
        let want = [
            (1, "一二三。"),
            (1, "四五六七八"),
            (1, "九十\n"),
            // No sentence end or space in the second half: cut at 16.
            (2, "ab cdefghijklmno"),
            (2, "pqrs\n"),
            (3, "x\n"),
        ];
        let want: Vec<(u64, String)> = want.iter().map(|(n, s)| (*n, s.to_string())).collect();
        assert_eq!(pieces, want);
    }

    #[test]
    fn invalid_utf8_in_a_cut_line_names_its_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, b"abcdefghij\xffklmnopqrstuvwxyz\n").unwrap();
        let count = AtomicU64::new(0);
        let mut r = LineReader::open(&p, &count).unwrap().max_line(Some(8));
        assert_eq!(r.next_line().unwrap(), Some((1, "abcdefgh")));
        let err = r.next_line().unwrap_err().to_string();
        assert!(err.contains("byte offset 10"), "{err}");
    }

    #[test]
    fn zstd_and_xz_files_read_as_the_plain_text_and_truncation_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = "第一行\nsecond\n".repeat(2000);
        let zst = dir.path().join("c.txt.zst");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
        let xz = dir.path().join("c.txt.xz");
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(text.as_bytes()).unwrap();
        std::fs::write(&xz, enc.finish().unwrap()).unwrap();
        for p in [&zst, &xz] {
            let count = AtomicU64::new(0);
            let mut r = LineReader::open(p, &count).unwrap();
            let mut read = String::new();
            while let Some((_, line)) = r.next_line().unwrap() {
                read.push_str(line);
            }
            assert_eq!(read, text, "{}", p.display());
            // Cut the file short: an error that names it, never a short read.
            let bytes = std::fs::read(p).unwrap();
            let ext = p.extension().unwrap().to_str().unwrap();
            let short = dir.path().join(format!("short.{ext}"));
            std::fs::write(&short, &bytes[..bytes.len() / 2]).unwrap();
            let mut r = LineReader::open(&short, &count).unwrap();
            let err = loop {
                match r.next_line() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{}: a truncated file read to its end", short.display()),
                    Err(e) => break e.to_string(),
                }
            };
            assert!(
                err.contains(short.to_str().unwrap()) && err.contains("decompressed byte"),
                "{err}"
            );
        }
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
