//! The file-system boundary: every byte the durable layer and the engine
//! read or write goes through [`Backend`], so tests can swap in
//! [`FaultyBackend`] and inject ENOSPC, EIO, short and torn writes at any
//! operation.
//!
//! Two kinds of open file:
//! * [`FileHandle`]: a file being written front to back (WAL segments,
//!   files published with [`crate::publish`]), through `&mut self`;
//! * [`RandomFile`]: positional reads and writes through `&self`, shared
//!   between threads (the SSD tier's page files): vectored reads, reads from
//!   the page cache only (`RWF_NOWAIT`), `O_DIRECT`, preallocation.
//!
//! Only memory-mapped reads of immutable data files ([`crate::mmap`]) bypass
//! the backend.

mod faulty;
mod fs;

pub use faulty::{Fault, FaultyBackend, Op};
pub use fs::FsBackend;

use std::fmt;
use std::io::{self, IoSliceMut};
use std::path::Path;
use std::sync::Arc;

/// A small file-system interface: what the WAL, data files, manifest and the
/// engine's own files need, nothing more.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Creates `path` (truncating it if it exists) for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// Opens an existing `path` for writing; appends go to its current end.
    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// Opens an existing `path` for positional reads (and writes, with
    /// [`FileOptions::read_write`]).
    fn open_file(&self, path: &Path, opts: FileOptions) -> io::Result<Box<dyn RandomFile>>;
    /// Reads the whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Length of the file in bytes.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Whether `path` exists (a file or a directory).
    fn exists(&self, path: &Path) -> io::Result<bool> {
        match self.len(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
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

/// How [`Backend::open_file`] opens a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// Also open for writing.
    pub write: bool,
    /// `O_DIRECT`: reads and writes bypass the page cache. Buffers, offsets
    /// and lengths must then be aligned to the device's block size (4 KiB
    /// is always enough); some file systems (tmpfs) refuse the flag.
    pub direct: bool,
}

impl FileOptions {
    /// Positional reads only.
    pub fn read_only() -> Self {
        Self::default()
    }

    /// Positional reads and writes.
    pub fn read_write() -> Self {
        FileOptions {
            write: true,
            ..Self::default()
        }
    }

    /// Sets `O_DIRECT`.
    pub fn direct(mut self, direct: bool) -> Self {
        self.direct = direct;
        self
    }
}

/// An open file for positional reads and writes, shared between threads
/// (`&self` everywhere; the OS orders concurrent positional I/O).
pub trait RandomFile: Send + Sync + fmt::Debug {
    /// Fills `buf` from `offset`; `UnexpectedEof` if the file ends first.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Fills `bufs`, in order, from the contiguous range at `offset`
    /// (`preadv`); `UnexpectedEof` if the file ends first.
    fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<()>;
    /// Whether [`RandomFile::read_at_nowait`] can ever hit: false for
    /// `O_DIRECT` files and where the kernel has no `RWF_NOWAIT`.
    fn nowait_supported(&self) -> bool;
    /// Reads into `buf` from `offset` only what is in the page cache,
    /// without waiting for the device (`preadv2` with `RWF_NOWAIT`, Linux
    /// 4.14+): `Ok(Some(n))` for `n` bytes read (fewer than asked when part
    /// is not cached or the file ends), `Ok(None)` when the read would have
    /// to wait or the flag is unsupported.
    fn read_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<Option<usize>>;
    /// Writes all of `buf` at `offset`. On error an unknown part may have been written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data (and its length) durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Preallocates: reserves the blocks of `[offset, offset + len)` and
    /// extends the file to at least `offset + len` bytes (`fallocate`; where
    /// unsupported, extends it like [`RandomFile::set_len`]), so later
    /// writes there cannot fail for want of space. Never shrinks the file.
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Current length of the file.
    fn len(&self) -> io::Result<u64>;
}

/// The default backend: the real file system.
pub fn default_backend() -> Arc<dyn Backend> {
    Arc::new(FsBackend)
}
