//! Vector codecs for compressed storage: f16 ([`f16`]) and SQ8 scalar
//! quantisation ([`sq8`]).
//!
//! Stored vectors are compressed; queries stay f32. Distances between an f32
//! query and a compressed vector use the kernels in
//! [`crate::distance::Kernels`] (`l2_f16`/`dot_f16`, `l2_sq8`/`dot_u8`, and
//! `dot_u8i8` for SQ8 codes against an int8-quantised query).

pub mod f16;
pub mod sq8;

pub use sq8::{Sq8IntQuery, Sq8Quantizer, Sq8Query};

/// Errors of the codecs.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum QuantError {
    /// Training was given no vectors.
    #[error("cannot train an SQ8 quantizer on an empty sample")]
    EmptySample,
    /// A vector or parameter array has the wrong length.
    #[error("expected dimension {expected}, got {got} ({what})")]
    DimensionMismatch {
        /// What had the wrong length.
        what: &'static str,
        /// The quantizer's dimension.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// The dimension is 0 or above [`sq8::MAX_DIM`].
    #[error("unsupported dimension {0} (must be 1..={max})", max = sq8::MAX_DIM)]
    BadDimension(usize),
    /// A NaN or infinite value where a finite one is required.
    #[error("non-finite value {value} in {what} at dimension {dim}")]
    NonFinite {
        /// Which array held it.
        what: &'static str,
        /// Index of the dimension.
        dim: usize,
        /// The value.
        value: f32,
    },
    /// A scale that is not strictly positive.
    #[error("SQ8 scale at dimension {dim} is {value}, must be > 0")]
    BadScale {
        /// Index of the dimension.
        dim: usize,
        /// The value.
        value: f32,
    },
    /// Serialised parameters are shorter than their header says.
    #[error("truncated {what}: need {needed} bytes, got {got}")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// Serialised parameters carry bytes after their end.
    #[error("{what}: {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// Number of extra bytes.
        extra: usize,
    },
    /// The magic bytes do not match.
    #[error("bad magic in {what}: expected {expected:?}, got {got:?}")]
    BadMagic {
        /// What was being decoded.
        what: &'static str,
        /// The expected magic.
        expected: [u8; 4],
        /// The bytes found.
        got: [u8; 4],
    },
    /// A format version this build cannot read.
    #[error("unsupported {what} version {got} (this build reads version {supported})")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        got: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The stored checksum does not match the content.
    #[error("checksum mismatch in {what}: expected {expected:#010x}, got {got:#010x}")]
    ChecksumMismatch {
        /// What was being decoded.
        what: &'static str,
        /// Checksum stored in the bytes.
        expected: u32,
        /// Checksum computed over the content.
        got: u32,
    },
}

/// Result alias for the codecs.
pub type Result<T> = std::result::Result<T, QuantError>;
