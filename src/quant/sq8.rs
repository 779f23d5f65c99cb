//! SQ8: per-dimension scalar quantisation to one byte.
//!
//! Dimension `i` is stored as `cᵢ = round((xᵢ − minᵢ) / scaleᵢ)` clamped to
//! `0..=255`, and read back as `minᵢ + scaleᵢ·cᵢ`; `min` and `scale =
//! (max − min) / 255` come from a training sample ([`Sq8Quantizer::train`]).
//! Values inside the trained range come back within `scaleᵢ / 2`; values
//! outside it are clamped to the range.
//!
//! Graph searches use [`Sq8IntQuery`] (module `int`): the query quantised
//! once to int8, one exact integer dot product per code.
//!
//! [`Sq8Query`] is the asymmetric f32 form (exact distance to the decoded
//! vector up to f32 rounding): the query stays f32 and it precomputes, once
//! per query, the arrays that let the SIMD kernels work on the codes directly:
//!
//! * L2: `q' = q − min`, distance `Σ (q'ᵢ − scaleᵢ·cᵢ)²` (`l2_sq8`);
//! * inner product / cosine: `w = q·scale` and `b = 1 − Σ qᵢ·minᵢ`, distance
//!   `b − Σ wᵢ·cᵢ` (`dot_u8`), i.e. `1 − <q, decoded>`.
//!
//! # Serialised parameters (`to_bytes`), little-endian
//!
//! | offset      | size  | field                                        |
//! |-------------|-------|----------------------------------------------|
//! | 0           | 4     | magic `b"QSQ8"`                              |
//! | 4           | 2     | version (1)                                  |
//! | 6           | 2     | reserved, written 0, ignored on read         |
//! | 8           | 4     | `dim` (1..=65535)                            |
//! | 12          | 4·dim | `min`, f32                                   |
//! | 12 + 4·dim  | 4·dim | `scale`, f32                                 |
//! | 12 + 8·dim  | 4     | CRC-32C of bytes `0..12 + 8·dim`             |

mod int;
pub use int::{Sq8IntQuery, MAX_OUTLIERS};

use super::{QuantError, Result};
use crate::distance::{self, kernels, Kernels, Metric, Sq8L2Fn, U8DotFn};

/// Largest supported dimension.
pub const MAX_DIM: usize = crate::limits::MAX_DIMENSION;

const MAGIC: [u8; 4] = *b"QSQ8";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 12;
const WHAT: &str = "SQ8 parameters";

/// Per-dimension min/scale quantiser from f32 to u8.
#[derive(Clone, Debug, PartialEq)]
pub struct Sq8Quantizer {
    min: Vec<f32>,
    scale: Vec<f32>,
}

impl Sq8Quantizer {
    /// Learns per-dimension `min` and `scale = (max − min) / 255` from
    /// `sample` (all vectors must have the dimension of the first).
    ///
    /// A dimension whose range in the sample is zero (or too small to divide
    /// into 255 normal f32 steps) gets `scale = 1`: its sample value encodes
    /// exactly as code 0, and other values round to whole steps above it.
    pub fn train<'a>(sample: impl IntoIterator<Item = &'a [f32]>) -> Result<Self> {
        let mut it = sample.into_iter();
        let first = it.next().ok_or(QuantError::EmptySample)?;
        let dim = first.len();
        if dim == 0 || dim > MAX_DIM {
            return Err(QuantError::BadDimension(dim));
        }
        let mut min = vec![f32::INFINITY; dim];
        let mut max = vec![f32::NEG_INFINITY; dim];
        for v in std::iter::once(first).chain(it) {
            if v.len() != dim {
                return Err(QuantError::DimensionMismatch {
                    what: "training vector",
                    expected: dim,
                    got: v.len(),
                });
            }
            for (i, &x) in v.iter().enumerate() {
                if !x.is_finite() {
                    return Err(QuantError::NonFinite {
                        what: "training vector",
                        dim: i,
                        value: x,
                    });
                }
                min[i] = min[i].min(x);
                max[i] = max[i].max(x);
            }
        }
        let scale = min
            .iter()
            .zip(&max)
            .map(|(&lo, &hi)| {
                // f64: `hi - lo` can exceed f32::MAX.
                let s = ((f64::from(hi) - f64::from(lo)) / 255.0) as f32;
                if s >= f32::MIN_POSITIVE {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Self { min, scale })
    }

    /// Builds a quantiser from known parameters, validating them: equal
    /// lengths in `1..=MAX_DIM`, finite `min`, finite `scale > 0`.
    pub fn from_params(min: Vec<f32>, scale: Vec<f32>) -> Result<Self> {
        let dim = min.len();
        if dim == 0 || dim > MAX_DIM {
            return Err(QuantError::BadDimension(dim));
        }
        if scale.len() != dim {
            return Err(QuantError::DimensionMismatch {
                what: "SQ8 scale",
                expected: dim,
                got: scale.len(),
            });
        }
        if let Some((i, &m)) = min.iter().enumerate().find(|(_, m)| !m.is_finite()) {
            return Err(QuantError::NonFinite {
                what: "SQ8 min",
                dim: i,
                value: m,
            });
        }
        if let Some((i, &s)) = scale
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(if s.is_finite() {
                QuantError::BadScale { dim: i, value: s }
            } else {
                QuantError::NonFinite {
                    what: "SQ8 scale",
                    dim: i,
                    value: s,
                }
            });
        }
        Ok(Self { min, scale })
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Per-dimension minimum (the value of code 0).
    pub fn min(&self) -> &[f32] {
        &self.min
    }

    /// Per-dimension step between consecutive codes.
    pub fn scale(&self) -> &[f32] {
        &self.scale
    }

    /// Encodes `v` into `out` (values outside the trained range are clamped).
    ///
    /// # Panics
    /// If `v` or `out` does not have [`dim`](Self::dim) elements.
    pub fn encode(&self, v: &[f32], out: &mut [u8]) {
        self.check_len("vector", v.len());
        self.check_len("code buffer", out.len());
        for (((o, &x), &m), &s) in out.iter_mut().zip(v).zip(&self.min).zip(&self.scale) {
            // `as u8` saturates and maps NaN to 0.
            *o = ((x - m) / s).round().clamp(0.0, 255.0) as u8;
        }
    }

    /// Encodes `v` into a new code.
    ///
    /// # Panics
    /// If `v` does not have [`dim`](Self::dim) elements.
    pub fn encode_vec(&self, v: &[f32]) -> Vec<u8> {
        let mut out = vec![0; self.dim()];
        self.encode(v, &mut out);
        out
    }

    /// Decodes `code` into `out` (`minᵢ + scaleᵢ·codeᵢ`).
    ///
    /// # Panics
    /// If `code` or `out` does not have [`dim`](Self::dim) elements.
    pub fn decode(&self, code: &[u8], out: &mut [f32]) {
        self.check_len("code", code.len());
        self.check_len("output buffer", out.len());
        for (((o, &c), &m), &s) in out.iter_mut().zip(code).zip(&self.min).zip(&self.scale) {
            *o = m + s * f32::from(c);
        }
    }

    /// Length of [`to_bytes`](Self::to_bytes)' output.
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 8 * self.dim() + 4
    }

    /// Serialises the parameters (format in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        // dim <= MAX_DIM (validated at construction), fits u32.
        out.extend_from_slice(&(self.dim() as u32).to_le_bytes());
        for x in self.min.iter().chain(&self.scale) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses [`to_bytes`](Self::to_bytes)' output. `bytes` must be exactly
    /// one serialised quantiser; truncated, corrupted or invalid input gives
    /// an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let truncated = |needed| QuantError::Truncated {
            what: WHAT,
            needed,
            got: bytes.len(),
        };
        let header = bytes.get(..HEADER_LEN).ok_or(truncated(HEADER_LEN))?;
        let magic = [header[0], header[1], header[2], header[3]];
        if magic != MAGIC {
            return Err(QuantError::BadMagic {
                what: WHAT,
                expected: MAGIC,
                got: magic,
            });
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if version != VERSION {
            return Err(QuantError::UnsupportedVersion {
                what: WHAT,
                got: version,
                supported: VERSION,
            });
        }
        let dim = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(QuantError::BadDimension(dim));
        }
        let body_end = HEADER_LEN + 8 * dim;
        let total = body_end + 4;
        if bytes.len() < total {
            return Err(truncated(total));
        }
        if bytes.len() > total {
            return Err(QuantError::TrailingBytes {
                what: WHAT,
                extra: bytes.len() - total,
            });
        }
        let stored = u32::from_le_bytes([
            bytes[body_end],
            bytes[body_end + 1],
            bytes[body_end + 2],
            bytes[body_end + 3],
        ]);
        let computed = crc32c::crc32c(&bytes[..body_end]);
        if stored != computed {
            return Err(QuantError::ChecksumMismatch {
                what: WHAT,
                expected: stored,
                got: computed,
            });
        }
        let mut floats = bytes[HEADER_LEN..body_end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let min = floats.by_ref().take(dim).collect();
        let scale = floats.collect();
        Self::from_params(min, scale)
    }

    fn check_len(&self, what: &str, got: usize) {
        assert!(
            got == self.dim(),
            "SQ8 {what}: expected dimension {}, got {got}",
            self.dim()
        );
    }
}

/// The factor that normalises `query` for [`Metric::Cosine`] (1 for a zero
/// or non-finite norm, and for the other metrics).
fn query_scale(metric: Metric, query: &[f32]) -> f32 {
    if !metric.normalizes() {
        return 1.0;
    }
    let n = distance::dot(query, query).sqrt();
    if n.is_finite() && n > 0.0 {
        1.0 / n
    } else {
        1.0
    }
}

/// A query prepared for distances to SQ8 codes ("lower is closer", as
/// [`Metric`]): L2 squared, or `1 − <q, decoded>` for inner product and
/// cosine. Reuse one per search thread with [`set_query`](Self::set_query)
/// to avoid allocating per query.
#[derive(Clone, Debug)]
pub struct Sq8Query {
    metric: Metric,
    /// L2: `q − min`; inner product / cosine: `q · scale`.
    a: Vec<f32>,
    /// L2: the quantiser's scale; empty otherwise.
    scale: Vec<f32>,
    /// Inner product / cosine: `1 − Σ qᵢ·minᵢ`.
    bias: f32,
    l2: Sq8L2Fn,
    dot: U8DotFn,
}

impl Sq8Query {
    /// Prepares `query` with the detected kernels. For [`Metric::Cosine`] the
    /// query is normalised here (a zero query is left as is), matching stored
    /// vectors that were normalised before encoding.
    ///
    /// # Panics
    /// If `query` does not have the quantiser's dimension.
    pub fn new(quantizer: &Sq8Quantizer, metric: Metric, query: &[f32]) -> Self {
        Self::with_kernels(quantizer, metric, query, kernels())
    }

    /// As [`new`](Self::new), with an explicit kernel table (tests, benches).
    pub fn with_kernels(
        quantizer: &Sq8Quantizer,
        metric: Metric,
        query: &[f32],
        kernels: &Kernels,
    ) -> Self {
        let mut q = Self {
            metric,
            a: Vec::with_capacity(quantizer.dim()),
            scale: Vec::new(),
            bias: 0.0,
            l2: kernels.l2_sq8,
            dot: kernels.dot_u8,
        };
        q.set_query(quantizer, query);
        q
    }

    /// Re-prepares this value for another query, reusing its buffers.
    ///
    /// # Panics
    /// If `query` does not have the quantiser's dimension.
    pub fn set_query(&mut self, quantizer: &Sq8Quantizer, query: &[f32]) {
        quantizer.check_len("query", query.len());
        self.a.clear();
        self.scale.clear();
        match self.metric {
            Metric::L2 => {
                self.a
                    .extend(query.iter().zip(&quantizer.min).map(|(&x, &m)| x - m));
                self.scale.extend_from_slice(&quantizer.scale);
                self.bias = 0.0;
            }
            Metric::InnerProduct | Metric::Cosine => {
                let inv_norm = query_scale(self.metric, query);
                let mut qmin = 0.0f64;
                for ((&x, &m), &s) in query.iter().zip(&quantizer.min).zip(&quantizer.scale) {
                    let x = x * inv_norm;
                    self.a.push(x * s);
                    qmin += f64::from(x) * f64::from(m);
                }
                self.bias = (1.0 - qmin) as f32;
            }
        }
    }

    /// The metric this query was prepared for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Distance from the query to `code` (lower is closer).
    ///
    /// # Panics
    /// If `code` does not have the quantiser's dimension.
    #[inline]
    pub fn distance(&self, code: &[u8]) -> f32 {
        match self.metric {
            Metric::L2 => (self.l2)(&self.a, &self.scale, code),
            Metric::InnerProduct | Metric::Cosine => self.bias - (self.dot)(&self.a, code),
        }
    }
}

#[cfg(test)]
mod tests;
