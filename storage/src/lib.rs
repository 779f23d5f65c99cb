//! quiver-storage: the durable layer under every collection. It knows bytes,
//! records and files, not vectors or graphs.
//!
//! * [`backend`]: the file-system trait all writes go through, the real
//!   [`FsBackend`] and the fault-injecting [`FaultyBackend`] for tests.
//! * [`wal`]: the write-ahead log (segments, group commit, replay, recovery).
//! * [`file`](mod@file): immutable checksummed data files, written atomically.
//! * [`publish`]: buffered file writing and the one atomic publish of a
//!   finished file (temp, fsync, rename, fsync dir).
//! * [`mmap`]: typed, alignment-checked read-only views of data files.
//! * [`manifest`]: the atomically replaced list of live files and the checkpoint LSN.
//! * [`store`]: a data directory tying these together under a [`DirLock`].
//!
//! Every on-disk format is documented in `docs/FORMAT.md`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod error;
pub mod file;
mod lock;
pub mod manifest;
pub mod mmap;
pub mod publish;
pub mod store;
pub mod wal;

pub use backend::{
    Backend, Fault, FaultyBackend, FileHandle, FileOptions, FsBackend, Op, RandomFile,
};
pub use error::{Error, Result};
pub use lock::{DirLock, LOCK_FILE};
pub use publish::{write_atomic, AtomicFile, FileWriter};
pub use wal::{Fsync, Lsn, Record, Recovery, Ticket, Wal, WalOptions};
