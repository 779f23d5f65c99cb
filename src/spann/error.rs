//! Errors of the SPANN tier: one enum, corruption kept apart from I/O.

use std::path::PathBuf;

/// Result alias of the SPANN module.
pub type Result<T, E = SpannError> = std::result::Result<T, E>;

/// What can go wrong building, opening, searching or updating a SPANN index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpannError {
    /// A parameter or argument is out of range or inconsistent; `field`
    /// names it (a [`SpannParams`](super::SpannParams) field, `dim`, `base`, ...).
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
    #[error("vector id {0} does not exist")]
    UnknownId(u32),
    #[error("{file}: I/O error: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: checksum mismatch at offset {offset}: expected {expected:#010x}, got {got:#010x}"
    )]
    ChecksumMismatch {
        file: PathBuf,
        offset: u64,
        expected: u32,
        got: u32,
    },
    #[error("{file}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("head index: {0}")]
    Heads(#[from] crate::hnsw::HnswError),
    #[error("quantizer: {0}")]
    Quant(#[from] crate::quant::QuantError),
}

impl SpannError {
    /// A [`SpannError::InvalidParam`] naming `field`.
    pub(crate) fn param(field: &'static str, message: impl Into<String>) -> Self {
        SpannError::InvalidParam {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn io(file: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SpannError {
        let file = file.into();
        move |source| SpannError::Io { file, source }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        SpannError::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}
