//! Queries prepared once per search: checked and normalised for cosine
//! ([`prepare`]), then converted for the codes they are compared with
//! ([`CodeQuery`]: f32 and f16 codes take the f32 query through the
//! metric's [`Kernel`](crate::distance::Kernel), SQ8 codes an
//! [`Sq8Query`]).

use super::VectorCodec;
use crate::distance::{self, DistanceKernel, F16Kernel, Metric};
use crate::quant::Sq8Query;

/// Why a vector cannot be a query (or a stored vector) of an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorError {
    /// Its length is not the index's dimension.
    Dimension { expected: usize, got: usize },
    /// The value at `index` is NaN or infinite.
    NonFinite { index: usize },
    /// A cosine vector whose norm is zero or not finite.
    ZeroNorm,
}

/// A vector checked against an index's dimension and normalised for
/// cosine: what both tiers search with. Made only by [`prepare`].
#[derive(Clone, Copy, Debug)]
pub struct Prepared<'a> {
    v: &'a [f32],
    metric: Metric,
}

impl<'a> Prepared<'a> {
    pub fn as_slice(&self) -> &'a [f32] {
        self.v
    }

    /// The metric it was prepared for.
    pub fn metric(&self) -> Metric {
        self.metric
    }
}

/// Checks `v` (length `dim`, finite values) and copies it into `out`,
/// normalised for cosine.
pub fn prepare<'a>(
    v: &[f32],
    dim: usize,
    metric: Metric,
    out: &'a mut Vec<f32>,
) -> Result<Prepared<'a>, VectorError> {
    check(v, dim)?;
    prepare_checked(v, metric, out)
}

/// [`prepare`] for a vector its caller has already checked (as by
/// [`check`]): only copies and normalises it.
pub fn prepare_checked<'a>(
    v: &[f32],
    metric: Metric,
    out: &'a mut Vec<f32>,
) -> Result<Prepared<'a>, VectorError> {
    out.clear();
    out.extend_from_slice(v);
    if metric.normalizes() && !distance::normalize(out) {
        return Err(VectorError::ZeroNorm);
    }
    Ok(Prepared { v: out, metric })
}

/// Checks a vector's length and values.
pub fn check(v: &[f32], dim: usize) -> Result<(), VectorError> {
    if v.len() != dim {
        return Err(VectorError::Dimension {
            expected: dim,
            got: v.len(),
        });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(VectorError::NonFinite { index });
    }
    Ok(())
}

/// A prepared query converted for one codec's codes; `distance` takes a
/// code's little-endian bytes (of any alignment), as postings hold them.
pub enum CodeQuery<'q> {
    F32 {
        q: &'q [f32],
        kernel: DistanceKernel,
    },
    F16 {
        q: &'q [f32],
        kernel: F16Kernel,
    },
    Sq8(Sq8Query),
}

impl<'q> CodeQuery<'q> {
    pub fn new(codec: &VectorCodec, q: Prepared<'q>) -> Self {
        let (metric, q) = (q.metric, q.v);
        match codec {
            VectorCodec::F32 => CodeQuery::F32 {
                q,
                kernel: metric.kernel(),
            },
            VectorCodec::F16 => CodeQuery::F16 {
                q,
                kernel: metric.f16_kernel(),
            },
            VectorCodec::Sq8(quantizer) => CodeQuery::Sq8(Sq8Query::new(quantizer, metric, q)),
        }
    }

    /// Distance to `code` (lower is closer). `code` must have the codec's length.
    #[inline]
    pub fn distance(&self, code: &[u8]) -> f32 {
        match self {
            CodeQuery::F32 { q, kernel } => super::with_f32s(code, |v| kernel.distance(q, v)),
            CodeQuery::F16 { q, kernel } => super::with_f16s(code, |v| kernel.distance(q, v)),
            CodeQuery::Sq8(s) => s.distance(code),
        }
    }
}
