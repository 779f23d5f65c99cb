//! Vector codes inside postings (f32, f16, SQ8) and the per-query distance
//! to a code, prepared once per search.

use half::f16;

use super::params::Encoding;
use crate::distance::{self, DistanceKernel, Metric};
use crate::quant::{Sq8Quantizer, Sq8Query};

/// Encodes vectors for one index.
#[derive(Clone, Debug)]
pub struct Codec {
    pub encoding: Encoding,
    pub dim: usize,
    pub sq8: Option<Sq8Quantizer>,
}

impl Codec {
    /// Appends the code of `v` to `out`.
    pub fn encode(&self, v: &[f32], out: &mut Vec<u8>) {
        match self.encoding {
            Encoding::F32 => out.extend_from_slice(bytemuck::cast_slice(v)),
            Encoding::F16 => v
                .iter()
                .for_each(|&x| out.extend_from_slice(&f16::from_f32(x).to_le_bytes())),
            Encoding::Sq8 => {
                let q = self.sq8.as_ref().expect("SQ8 codec has a quantizer");
                let start = out.len();
                out.resize(start + self.dim, 0);
                q.encode(v, &mut out[start..]);
            }
        }
    }

    /// Decodes `code` into `out` (approximately for f16 / SQ8).
    pub fn decode(&self, code: &[u8], out: &mut Vec<f32>) {
        out.clear();
        match self.encoding {
            Encoding::F32 => out.extend(
                code.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            Encoding::F16 => out.extend(
                code.chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            Encoding::Sq8 => {
                out.resize(self.dim, 0.0);
                if let Some(q) = &self.sq8 {
                    q.decode(code, out);
                }
            }
        }
    }

    /// Whether codes are lossy (so results are re-ranked).
    pub fn lossy(&self) -> bool {
        self.encoding != Encoding::F32
    }
}

/// Distance from one (normalised, for cosine) query to codes.
pub enum CodeDistance {
    F32 { kernel: DistanceKernel, q: Vec<f32> },
    F16 { l2: bool, q: Vec<f32> },
    Sq8(Sq8Query),
}

impl CodeDistance {
    pub fn new(codec: &Codec, metric: Metric, q: &[f32]) -> Self {
        match codec.encoding {
            Encoding::F32 => CodeDistance::F32 {
                kernel: metric.kernel(),
                q: q.to_vec(),
            },
            Encoding::F16 => CodeDistance::F16 {
                l2: metric == Metric::L2,
                q: q.to_vec(),
            },
            Encoding::Sq8 => CodeDistance::Sq8(Sq8Query::new(
                codec.sq8.as_ref().expect("SQ8 codec has a quantizer"),
                metric,
                q,
            )),
        }
    }

    /// Distance to `code` (lower is closer). `code` must have the codec's length.
    #[inline]
    pub fn distance(&self, code: &[u8]) -> f32 {
        match self {
            CodeDistance::F32 { kernel, q } => match bytemuck::try_cast_slice::<u8, f32>(code) {
                Ok(v) => kernel.distance(q, v),
                Err(_) => kernel.distance(q, &f32s(code)),
            },
            CodeDistance::F16 { l2, q } => {
                let k = distance::kernels();
                let owned;
                let v: &[f16] = match bytemuck::try_cast_slice::<u8, f16>(code) {
                    Ok(v) => v,
                    Err(_) => {
                        owned = code
                            .chunks_exact(2)
                            .map(|b| f16::from_le_bytes([b[0], b[1]]))
                            .collect::<Vec<_>>();
                        &owned
                    }
                };
                if *l2 {
                    (k.l2_f16)(q, v)
                } else {
                    1.0 - (k.dot_f16)(q, v)
                }
            }
            CodeDistance::Sq8(s) => s.distance(code),
        }
    }
}

/// Little-endian f32s from bytes of any alignment.
pub fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
