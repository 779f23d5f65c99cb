//! The one error type of `quiver-storage`.
//!
//! Corruption is its own variant and always names the file and byte offset;
//! it is never an `io::Error` in disguise.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the durable layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with what was being done and to which file.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"append to"`, `"fsync"`, ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A stored checksum does not match the bytes it covers.
    #[error("checksum mismatch in {} at offset {offset}: expected {expected:#010x}, got {got:#010x}", file.display())]
    ChecksumMismatch {
        /// The file holding the damaged bytes.
        file: PathBuf,
        /// Byte offset of the damaged record or header in `file`.
        offset: u64,
        /// Checksum stored on disk.
        expected: u32,
        /// Checksum computed over the bytes read.
        got: u32,
    },

    /// Bytes that cannot be what the format says (bad magic, impossible length, LSN going backwards...).
    #[error("corrupt {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The file holding the damaged bytes.
        file: PathBuf,
        /// Byte offset of the problem in `file`.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A format version this build cannot read.
    #[error("{}: unsupported format version {found} (this build reads {supported})", file.display())]
    UnsupportedVersion {
        /// The file concerned.
        file: PathBuf,
        /// Version found in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },

    /// A typed view was requested over bytes whose size or alignment does not fit the type.
    #[error("{}: cannot view {len} bytes at address alignment {addr_align} as [{ty}] (size {size}, align {align})", file.display())]
    Layout {
        /// The file concerned.
        file: PathBuf,
        /// Element type requested.
        ty: &'static str,
        /// Payload length in bytes.
        len: usize,
        /// `size_of` the element type.
        size: usize,
        /// `align_of` the element type.
        align: usize,
        /// Largest power of two dividing the payload address.
        addr_align: usize,
    },

    /// The data directory is already open (locked) by this or another process.
    #[error("data directory {} is locked by another process or handle", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// A previous I/O failure left the WAL writer in an unknown state; reopen the log.
    #[error("write-ahead log {} is poisoned after an unrecoverable I/O failure ({reason}); reopen it", dir.display())]
    Poisoned {
        /// The WAL directory.
        dir: PathBuf,
        /// The failure that poisoned it.
        reason: String,
    },

    /// A caller-supplied argument is out of range (record too large, bad file name...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            file: file.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// The error as an `io::Error`: the OS error itself for [`Error::Io`]
    /// (kind and errno kept), anything else wrapped (for callers whose own
    /// error type records I/O failures as `io::Error`).
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io { source, .. } => source,
            other => io::Error::other(other),
        }
    }

    /// True for the corruption variants (`ChecksumMismatch`, `Corrupt`, `UnsupportedVersion`).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::ChecksumMismatch { .. }
                | Error::Corrupt { .. }
                | Error::UnsupportedVersion { .. }
        )
    }
}
