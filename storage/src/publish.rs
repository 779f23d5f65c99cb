//! Writing whole files through a [`Backend`]: [`FileWriter`] buffers
//! appends to a [`FileHandle`]; [`AtomicFile`] is the one implementation of
//! publishing a finished file atomically: written to `<name>.tmp`, fsynced,
//! renamed to `<name>`, and the directory fsynced, so a crash leaves either
//! the old file (or none) or the whole new one. [`write_atomic`] does it
//! for bytes already in memory.

use crate::backend::{Backend, FileHandle};
use crate::error::{Error, Result};
use crate::file::TMP_SUFFIX;
use std::io;
use std::path::{Path, PathBuf};

/// Bytes a [`FileWriter`] gathers before one append.
pub const WRITE_BUFFER: usize = 1 << 20;

/// Buffered appends to a file being written front to back; one backend
/// append per [`WRITE_BUFFER`] bytes. Implements [`io::Write`].
#[derive(Debug)]
pub struct FileWriter {
    file: Box<dyn FileHandle>,
    buf: Vec<u8>,
    cap: usize,
}

impl FileWriter {
    /// Wraps `file`, gathering up to `cap` bytes per append.
    pub fn new(file: Box<dyn FileHandle>, cap: usize) -> Self {
        FileWriter {
            file,
            buf: Vec::with_capacity(cap.min(WRITE_BUFFER)),
            cap: cap.max(1),
        }
    }

    /// Creates (truncating) `path` through `backend`.
    pub fn create(backend: &dyn Backend, path: &Path) -> io::Result<Self> {
        Ok(Self::new(backend.create(path)?, WRITE_BUFFER))
    }

    /// Appends `bytes` (buffered).
    pub fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > self.cap {
            self.drain()?;
        }
        if bytes.len() >= self.cap {
            return self.file.append(bytes);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Appends `bytes` as one backend append (after what is buffered).
    pub fn put_unbuffered(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.drain()?;
        self.file.append(bytes)
    }

    fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let res = self.file.append(&self.buf);
            self.buf.clear();
            res?;
        }
        Ok(())
    }

    /// Bytes written so far (buffered ones included).
    pub fn len(&self) -> u64 {
        self.file.len() + self.buf.len() as u64
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes what is buffered and makes the file durable (`fdatasync`).
    pub fn finish(mut self) -> io::Result<()> {
        self.drain()?;
        self.file.sync()
    }
}

impl io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.put(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }
}

/// A file being written under a temporary name, published by
/// [`AtomicFile::commit`]; dropped uncommitted, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile<'a> {
    backend: &'a dyn Backend,
    writer: Option<FileWriter>,
    tmp: PathBuf,
    dir: PathBuf,
    dst: PathBuf,
}

impl<'a> AtomicFile<'a> {
    /// Starts writing `path` (as `<path>.tmp`) through `backend`.
    pub fn start(backend: &'a dyn Backend, path: &Path) -> Result<Self> {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            Error::InvalidArgument(format!("{} has no file name", path.display()))
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
        let writer = FileWriter::create(backend, &tmp).map_err(|e| Error::io("create", &tmp, e))?;
        Ok(AtomicFile {
            backend,
            writer: Some(writer),
            tmp,
            dir,
            dst: path.to_path_buf(),
        })
    }

    /// The temporary file being written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The writer of the temporary file.
    pub fn writer(&mut self) -> &mut FileWriter {
        self.writer.as_mut().expect("writer present until commit")
    }

    /// Appends `bytes`, naming the temporary file in errors.
    pub fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp.clone();
        self.writer()
            .put(bytes)
            .map_err(|e| Error::io("write", &tmp, e))
    }

    /// Appends `bytes` as one backend append (after what is buffered).
    pub fn put_unbuffered(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp.clone();
        self.writer()
            .put_unbuffered(bytes)
            .map_err(|e| Error::io("write", &tmp, e))
    }

    /// Fsyncs the temporary file, renames it over the destination and
    /// fsyncs the directory. On error the temporary file is removed (best
    /// effort) and the destination is the old file or the new one.
    pub fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("writer present until commit");
        if let Err(e) = writer.finish() {
            return Err(Error::io("write", &self.tmp, e));
        }
        if let Err(e) = self.backend.rename(&self.tmp, &self.dst) {
            return Err(Error::io("rename", &self.tmp, e));
        }
        // Renamed: nothing left to remove on drop.
        self.tmp = PathBuf::new();
        self.backend
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync dir", &self.dir, e))
    }
}

impl Drop for AtomicFile<'_> {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.writer = None;
            let _ = self.backend.remove(&self.tmp);
        }
    }
}

/// Writes `parts` (concatenated) to `dir/name` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomic(backend: &dyn Backend, dir: &Path, name: &str, parts: &[&[u8]]) -> Result<()> {
    let mut f = AtomicFile::start(backend, &dir.join(name))?;
    for part in parts {
        f.put_unbuffered(part)?;
    }
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Fault, FaultyBackend, FsBackend, Op};
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn commit_publishes_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = AtomicFile::start(&FsBackend, &path).unwrap();
        f.writer().write_all(b"hello ").unwrap();
        f.put(b"world").unwrap();
        assert!(!path.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        let mut f = AtomicFile::start(&FsBackend, &path).unwrap();
        f.put(b"other").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_fault_at_any_step_leaves_old_or_new() {
        for fault in [
            Fault::NoSpace,
            Fault::Io,
            Fault::ShortWrite,
            Fault::TornWrite,
        ] {
            for nth in 0..8 {
                let dir = tempfile::tempdir().unwrap();
                write_atomic(&FsBackend, dir.path(), "f", &[b"old"]).unwrap();
                let fb = FaultyBackend::new(Arc::new(FsBackend));
                fb.fail_nth(None, nth, fault);
                let res = write_atomic(&fb, dir.path(), "f", &[b"new ", b"bytes"]);
                let got = std::fs::read(dir.path().join("f")).unwrap();
                assert!(got == b"old" || got == b"new bytes", "{fault:?} at {nth}");
                if res.is_ok() {
                    assert_eq!(got, b"new bytes");
                }
                if fb.injected() == 0 {
                    assert!(res.is_ok());
                }
            }
        }
        let fb = FaultyBackend::new(Arc::new(FsBackend));
        let dir = tempfile::tempdir().unwrap();
        fb.fail_nth(Some(Op::Rename), 0, Fault::Io);
        assert!(write_atomic(&fb, dir.path(), "f", &[b"x"]).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
