//! Scoring, one stack for both tiers: how vectors are encoded
//! ([`VectorEncoding`], [`VectorCodec`]: f32, f16, SQ8), how a query is
//! prepared once per search ([`prepare`]: checked, normalised for cosine)
//! and how it is compared with codes ([`CodeQuery`] for SPANN's posting
//! bytes; the HNSW arenas use the same kernels through
//! [`crate::hnsw`]'s per-encoding spaces).
//!
//! The rules live in one place each: "squared L2, or `1 − <q, v>` for inner
//! product and cosine" for f32 and f16 codes in
//! [`crate::distance::Kernel`]; SQ8's in [`crate::quant::Sq8Query`]; the
//! f16 saturation and SQ8 clamping in [`crate::quant`]. The SIMD kernels
//! stay in [`crate::distance`].

mod encoding;
mod query;

pub use encoding::{f32s, with_f16s, with_f32s, ParseEncodingError, VectorCodec, VectorEncoding};
pub use query::{check, prepare, prepare_checked, CodeQuery, Prepared, VectorError};
