//! Errors of a collection.

use std::path::PathBuf;

/// Result alias of the collection module.
pub type Result<T, E = CollectionError> = std::result::Result<T, E>;

/// What can go wrong opening, writing or searching a collection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectionError {
    /// A request field is invalid; `field` names it (e.g. `points[3].vector`).
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// A collection directory does not exist.
    #[error("collection not found at {0}")]
    NotFound(PathBuf),
    /// A collection directory already holds a collection.
    #[error("a collection already exists at {0}")]
    AlreadyExists(PathBuf),
    /// A request exceeds a configured limit.
    #[error("{field}: {message}")]
    LimitExceeded { field: String, message: String },
    /// The durable layer failed.
    #[error(transparent)]
    Storage(#[from] quiver_storage::Error),
    /// The in-memory index failed.
    #[error(transparent)]
    Index(#[from] crate::hnsw::HnswError),
    /// The SSD tier's index failed.
    #[error("SSD tier: {0}")]
    Ssd(crate::spann::SpannError),
    /// Bytes on disk (a WAL record or segment file) do not decode.
    #[error("{file}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// Plain I/O outside the storage layer (config file).
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CollectionError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CollectionError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}
