//! Errors of the HNSW index.

use std::path::PathBuf;

/// Result alias of the HNSW module.
pub type Result<T, E = HnswError> = std::result::Result<T, E>;

/// What can go wrong building, querying, saving or loading an index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HnswError {
    /// A parameter or argument is out of range; `field` names it
    /// (`m`, `ef_construction`, `dim`, `capacity`, `codec`, `data`).
    #[error("invalid parameter {field}: {message}")]
    InvalidParam {
        field: &'static str,
        message: String,
    },
    #[error("{what}: expected dimension {expected}, got {got}")]
    Dimension {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("{what}: value at index {index} is not finite")]
    NonFinite { what: String, index: usize },
    #[error("{what}: vector has zero norm and cannot be normalised for cosine")]
    ZeroNorm { what: String },
    #[error("index is full ({capacity} vectors); reserve more capacity")]
    Full { capacity: usize },
    #[error("vector codec: {0}")]
    Codec(#[from] crate::quant::QuantError),
    #[error("node {0} does not exist")]
    UnknownNode(u32),
    #[error("{file}: I/O error: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: corrupt index file at offset {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
}

impl HnswError {
    /// An [`HnswError::InvalidParam`] naming `field`.
    pub(crate) fn param(field: &'static str, message: impl Into<String>) -> Self {
        HnswError::InvalidParam {
            field,
            message: message.into(),
        }
    }
}
