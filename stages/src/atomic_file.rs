//! Complete-or-absent files: everything nezha writes for others to read
//! (TFRecords, vocabularies, checkpoints, metrics, plots, fine-tuning
//! outputs) goes through here, so a crash, a full disk or a failed write
//! never leaves a half-written file under the name a reader looks for, and
//! never destroys the previous complete one.
//!
//! The bytes go to a temporary next to the final path ([`temp_path`]), which
//! is fsync'd, renamed over the final name, and followed by an fsync of the
//! directory so that the rename itself is durable. On any failure, and when
//! an [`AtomicFile`] is dropped without [`AtomicFile::commit`], the temporary
//! is removed and whatever was under the final name before is untouched.
//!
//! Errors are [`Error::Io`]: the final path, what was being done, and the
//! operating system's error.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The buffer of [`AtomicFile::create`]'s writer.
const BUFFER_BYTES: usize = 1 << 20;

/// The temporary for `path`: `NAME.tmp-PID-N` in the same directory (so
/// that the rename stays within one file system), N counting this process's
/// temporaries so that two writers of one final name never share one. The
/// name matches the repository's `*.tmp-*` ignore rule.
pub fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// An [`Error::Io`] for `path` that says what failed.
fn failed(path: &Path, what: &str, e: io::Error) -> Error {
    Error::io(path, io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// A file written under a [`temp_path`] and renamed into place only by
/// [`commit`](AtomicFile::commit); dropped uncommitted, it leaves nothing.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary for `path` (and `path`'s directory if missing).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        AtomicFile::with_buffer(path, BUFFER_BYTES)
    }

    fn with_buffer(path: &Path, capacity: usize) -> Result<AtomicFile> {
        if path.file_name().is_none() {
            return Err(Error::config(format!(
                "output path {} names no file",
                path.display()
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| failed(path, &format!("creating {}", dir.display()), e))?;
        }
        let tmp = temp_path(path);
        let file = File::create(&tmp)
            .map_err(|e| failed(path, &format!("creating {}", tmp.display()), e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            writer: Some(BufWriter::with_capacity(capacity, file)),
            committed: false,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("file not yet committed")
    }

    /// Flushes and fsyncs the temporary, renames it over the final path and
    /// fsyncs the directory. On failure the temporary is removed (by drop).
    pub fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("file not yet committed");
        let file = writer
            .into_inner()
            .map_err(|e| failed(&self.path, "writing", e.into_error()))?;
        file.sync_all()
            .map_err(|e| failed(&self.path, "syncing", e))?;
        drop(file);
        rename_into_place(&self.tmp, &self.path)?;
        self.committed = true;
        sync_parent(&self.path)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Discard the buffer rather than flush it into a file that goes.
            if let Some(w) = self.writer.take() {
                let _ = w.into_parts();
            }
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

/// Writes `bytes` to `path` atomically (creating `path`'s directory if
/// missing).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    // Unbuffered: the bytes are already in memory.
    let mut f = AtomicFile::with_buffer(path, 0)?;
    f.write_all(bytes).map_err(|e| failed(path, "writing", e))?;
    f.commit()
}

/// Puts `tmp`, a complete file or directory that something else wrote at a
/// [`temp_path`] of `path` (a directory of files already fsync'd, or a file
/// a library wrote by name), in place as [`AtomicFile::commit`] does: fsync
/// `tmp`, rename it over `path`, fsync the directory. On failure `tmp` is
/// removed.
pub fn persist(tmp: &Path, path: &Path) -> Result<()> {
    let result = File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| failed(path, &format!("syncing {}", tmp.display()), e))
        .and_then(|()| rename_into_place(tmp, path));
    if result.is_err() {
        let _ = if tmp.is_dir() {
            fs::remove_dir_all(tmp)
        } else {
            fs::remove_file(tmp)
        };
    }
    result?;
    sync_parent(path)
}

fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path)
        .map_err(|e| failed(path, &format!("renaming {} into place", tmp.display()), e))
}

/// Makes a rename into `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| failed(path, &format!("syncing directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn temporaries_are_ignored_by_git_and_never_shared() {
        let p = Path::new("/some/dir/out.tfrecord");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        for t in [a, b] {
            assert_eq!(t.parent(), p.parent());
            let name = t.file_name().unwrap().to_string_lossy().into_owned();
            // .gitignore's `*.tmp-*`.
            let (head, tail) = name.split_once(".tmp-").unwrap();
            assert_eq!(head, "out.tfrecord");
            assert!(
                tail.starts_with(&format!("{}-", std::process::id())),
                "{name}"
            );
        }
    }

    #[test]
    fn a_committed_file_appears_complete_and_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        let mut f = AtomicFile::create(&p).unwrap();
        assert_eq!(f.path(), p);
        let big: Vec<u8> = (0..3 * BUFFER_BYTES).map(|i| i as u8).collect();
        f.write_all(b"abc").unwrap();
        f.write_all(&big).unwrap();
        assert!(!p.exists(), "visible before commit");
        f.commit().unwrap();
        let got = fs::read(&p).unwrap();
        assert_eq!(&got[..3], b"abc");
        assert_eq!(&got[3..], &big[..]);
        assert_eq!(names(dir.path()), ["out.bin"]);
    }

    #[test]
    fn write_file_replaces_the_previous_file_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/out.txt");
        write_file(&p, b"first").unwrap();
        write_file(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(names(&dir.path().join("a/b")), ["out.txt"]);
    }

    #[test]
    fn a_dropped_file_leaves_nothing_and_the_previous_one_survives() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.bin");
        let mut f = AtomicFile::create(&fresh).unwrap();
        f.write_all(b"abc").unwrap();
        drop(f);

        // A write that fails halfway (the caller's serialiser gives up)
        // drops its file without commit.
        let old = dir.path().join("old.bin");
        fs::write(&old, b"previous").unwrap();
        let mut f = AtomicFile::create(&old).unwrap();
        f.write_all(b"half of the new").unwrap();
        drop(f);
        assert_eq!(fs::read(&old).unwrap(), b"previous");
        assert_eq!(names(dir.path()), ["old.bin"]);
    }

    #[test]
    fn a_commit_into_a_removed_directory_fails_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let p = sub.join("out.bin");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"abc").unwrap();
        fs::remove_dir_all(&sub).unwrap();
        let err = f.commit().unwrap_err().to_string();
        assert!(err.contains(&*p.to_string_lossy()), "{err}");
        assert!(err.contains("os error"), "{err}");
        assert!(!sub.exists());
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_and_keeps_what_was_there() {
        // The final name is taken by a non-empty directory: the rename fails
        // after the temporary was written and synced.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("taken");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("inside"), b"previous").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        let err = f.commit().unwrap_err().to_string();
        assert!(err.contains(&*p.to_string_lossy()), "{err}");
        assert!(err.contains("renaming"), "{err}");
        assert_eq!(names(dir.path()), ["taken"]);
        assert_eq!(fs::read(p.join("inside")).unwrap(), b"previous");

        let err = write_file(&p, b"new").unwrap_err().to_string();
        assert!(err.contains(&*p.to_string_lossy()), "{err}");
        assert_eq!(names(dir.path()), ["taken"]);
    }

    #[test]
    fn an_unwritable_path_is_named() {
        // A regular file cannot be a directory, even for root.
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let target = blocker.join("out.tfrecord");
        let err = AtomicFile::create(&target).err().unwrap().to_string();
        assert!(err.contains(&*target.to_string_lossy()), "{err}");
        let err = write_file(&target, b"x").unwrap_err().to_string();
        assert!(err.contains(&*target.to_string_lossy()), "{err}");
        assert!(err.contains("os error"), "{err}");
        assert_eq!(names(dir.path()), ["file"]);
    }

    #[test]
    fn persist_puts_a_directory_in_place_or_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("step-1");
        let tmp = temp_path(&done);
        fs::create_dir(&tmp).unwrap();
        fs::write(tmp.join("state.json"), b"{}").unwrap();
        persist(&tmp, &done).unwrap();
        assert_eq!(fs::read(done.join("state.json")).unwrap(), b"{}");

        // A second one cannot replace the complete, non-empty first.
        let tmp = temp_path(&done);
        fs::create_dir(&tmp).unwrap();
        fs::write(tmp.join("state.json"), b"{\"new\":1}").unwrap();
        let err = persist(&tmp, &done).unwrap_err().to_string();
        assert!(err.contains(&*done.to_string_lossy()), "{err}");
        assert_eq!(names(dir.path()), ["step-1"]);
        assert_eq!(fs::read(done.join("state.json")).unwrap(), b"{}");
    }
}
