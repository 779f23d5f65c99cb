//! The file-system boundary: every byte the durable layer writes goes through
//! [`Backend`], so tests can swap in [`FaultyBackend`] and inject ENOSPC, EIO
//! and short writes at any operation.
//!
//! Reads of immutable data files go through `mmap` (see [`crate::mmap`]) and
//! bypass the backend; everything that writes, renames, removes or fsyncs
//! does not.

mod faulty;
mod fs;

pub use faulty::{Fault, FaultyBackend, Op};
pub use fs::FsBackend;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A small file-system interface: what the WAL, data files and manifest need, nothing more.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Creates `path` (truncating it if it exists) for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// Opens an existing `path` for writing; appends go to its current end.
    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// Reads the whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Length of the file in bytes.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Names of the regular files directly inside `dir` (not recursive, unsorted).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Fsyncs the directory itself, making creations, renames and removals in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file being written.
pub trait FileHandle: Send + fmt::Debug {
    /// Writes all of `buf` at the current end of the file. On error an unknown prefix may have been written.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes the file's data (and its length) durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes; later appends go there.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Current length as seen through this handle.
    fn len(&self) -> u64;
    /// True if the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The default backend: the real file system.
pub fn default_backend() -> Arc<dyn Backend> {
    Arc::new(FsBackend)
}
