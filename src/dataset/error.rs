//! The dataset error type: every variant names the file and what is wrong
//! with it, so a malformed input never surfaces as a bare `io::Error` or a
//! panic.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias for the dataset module.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// Why a dataset file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The operating system refused a read or write.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file being read or written.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The extension names no format this operation understands.
    #[error("{}: unknown extension {ext:?}: expected one of {expected}", file.display())]
    UnknownFormat {
        /// The file.
        file: PathBuf,
        /// Its extension ("" when it has none).
        ext: String,
        /// The extensions that would have been accepted.
        expected: &'static str,
    },

    /// The file is shorter than its fixed-size header.
    #[error("{}: file is {len} bytes, shorter than its {header}-byte header", file.display())]
    TruncatedHeader {
        /// The file.
        file: PathBuf,
        /// Its length in bytes.
        len: u64,
        /// The header size in bytes.
        header: u64,
    },

    /// A header or row declares a dimension that is zero or negative.
    #[error("{}: row {row} has dimension {dim}, which is not positive", file.display())]
    BadDimension {
        /// The file.
        file: PathBuf,
        /// The row (0 for a file-wide header).
        row: usize,
        /// The declared dimension.
        dim: i64,
    },

    /// A big-ann header declares dimension 0.
    #[error("{}: header declares dimension 0", file.display())]
    ZeroDimension {
        /// The file.
        file: PathBuf,
    },

    /// A neighbour id does not fit the file format's signed 32-bit ids.
    #[error("{}: neighbour id {id} (query {row}) does not fit in an i32", file.display())]
    IdOverflow {
        /// The file.
        file: PathBuf,
        /// Query row.
        row: usize,
        /// The id.
        id: u32,
    },

    /// A row's dimension differs from the first row's.
    #[error("{}: row {row} has dimension {dim}, expected {expected}", file.display())]
    DimensionMismatch {
        /// The file.
        file: PathBuf,
        /// The offending row.
        row: usize,
        /// Its declared dimension.
        dim: i64,
        /// The dimension of row 0.
        expected: usize,
    },

    /// A row ends before its declared number of values.
    #[error(
        "{}: row {row} is truncated: it needs {needed} bytes at offset {offset}, the file has {available}",
        file.display()
    )]
    TruncatedRow {
        /// The file.
        file: PathBuf,
        /// The offending row.
        row: usize,
        /// Byte offset where the row's values start.
        offset: u64,
        /// Bytes the row needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },

    /// A big-ann header disagrees with the file's length.
    #[error(
        "{}: header says {rows} rows × {dim} dims = {expected} bytes of data, file has {actual} bytes",
        file.display()
    )]
    SizeMismatch {
        /// The file.
        file: PathBuf,
        /// Rows declared in the header.
        rows: u64,
        /// Dimension declared in the header.
        dim: u64,
        /// Data bytes the header implies.
        expected: u64,
        /// Data bytes actually present (file length minus header).
        actual: u64,
    },

    /// Sizes overflow the address space or a format's header fields.
    #[error("{}: {what} is too large ({rows} rows × {dim} dims)", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Which quantity overflowed.
        what: &'static str,
        /// Row count involved.
        rows: u64,
        /// Dimension involved.
        dim: u64,
    },

    /// A neighbour id is negative (other than the `-1` "no neighbour" pad).
    #[error("{}: row {row}, column {col} has id {id}, which is negative", file.display())]
    NegativeId {
        /// The file.
        file: PathBuf,
        /// Query row.
        row: usize,
        /// Position within the row.
        col: usize,
        /// The id found.
        id: i64,
    },

    /// A file the operation needs has no rows, so its dimension is unknown.
    #[error("{}: file has no rows", file.display())]
    Empty {
        /// The file.
        file: PathBuf,
    },

    /// Two inputs that must agree on the dimension do not.
    #[error("{what}: dimension {got}, expected {expected}")]
    InputMismatch {
        /// What was compared ("queries vs base").
        what: &'static str,
        /// The dimension found.
        got: usize,
        /// The dimension expected.
        expected: usize,
    },

    /// More base vectors than a `u32` id can name.
    #[error("{count} base vectors: ids must fit in a u32")]
    TooManyVectors {
        /// The number of vectors.
        count: usize,
    },

    /// A required HDF5 dataset or attribute is missing or has the wrong shape or value.
    #[error("{}: {what}", file.display())]
    Hdf5Layout {
        /// The file.
        file: PathBuf,
        /// What is wrong ("dataset \"train\" has 3 dimensions, expected 2").
        what: String,
    },
}

impl DatasetError {
    /// Wraps an `io::Error` with the file it concerns.
    pub(crate) fn io(file: &Path, source: io::Error) -> Self {
        DatasetError::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}
