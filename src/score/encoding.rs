//! Vector encodings (f32, f16, SQ8) and their codes: one [`VectorCodec`]
//! says how both tiers store a vector, and writes and reads the
//! little-endian code bytes of SPANN postings. f16 codes saturate at
//! ±65504 and SQ8 codes clamp to the quantiser's range ([`crate::quant`]).

use half::f16;

use crate::quant::{self, Sq8Quantizer};

/// How an index stores its vectors.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VectorEncoding {
    /// Full precision, 4 bytes per dimension.
    #[default]
    F32,
    /// IEEE half precision, 2 bytes per dimension.
    F16,
    /// 8-bit scalar quantisation, 1 byte per dimension (per-dimension min and
    /// scale, [`Sq8Quantizer`]).
    Sq8,
}

impl VectorEncoding {
    /// Name as used on the command line and in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            VectorEncoding::F32 => "f32",
            VectorEncoding::F16 => "f16",
            VectorEncoding::Sq8 => "sq8",
        }
    }

    /// Stable code used in the index file header.
    pub fn code(self) -> u8 {
        match self {
            VectorEncoding::F32 => 0,
            VectorEncoding::F16 => 1,
            VectorEncoding::Sq8 => 2,
        }
    }

    /// Inverse of [`VectorEncoding::code`].
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(VectorEncoding::F32),
            1 => Some(VectorEncoding::F16),
            2 => Some(VectorEncoding::Sq8),
            _ => None,
        }
    }

    /// Bytes of one stored vector of dimension `dim` (before slot padding).
    pub fn code_bytes(self, dim: usize) -> usize {
        match self {
            VectorEncoding::F32 => 4 * dim,
            VectorEncoding::F16 => 2 * dim,
            VectorEncoding::Sq8 => dim,
        }
    }
}

impl std::fmt::Display for VectorEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown encoding name.
#[derive(Debug, thiserror::Error)]
#[error("unknown vector encoding {0:?}: expected f32, f16 or sq8")]
pub struct ParseEncodingError(pub String);

impl std::str::FromStr for VectorEncoding {
    type Err = ParseEncodingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(VectorEncoding::F32),
            "f16" => Ok(VectorEncoding::F16),
            "sq8" => Ok(VectorEncoding::Sq8),
            _ => Err(ParseEncodingError(s.to_string())),
        }
    }
}

/// An encoding with its parameters: what an empty index needs to store codes.
#[derive(Clone, Debug, PartialEq)]
pub enum VectorCodec {
    F32,
    F16,
    /// SQ8 with a fixed quantiser (of the index's dimension).
    Sq8(Sq8Quantizer),
}

impl VectorCodec {
    pub fn encoding(&self) -> VectorEncoding {
        match self {
            VectorCodec::F32 => VectorEncoding::F32,
            VectorCodec::F16 => VectorEncoding::F16,
            VectorCodec::Sq8(_) => VectorEncoding::Sq8,
        }
    }
}

impl VectorCodec {
    /// The SQ8 quantiser, for an SQ8 codec.
    pub fn sq8(&self) -> Option<&Sq8Quantizer> {
        match self {
            VectorCodec::Sq8(q) => Some(q),
            _ => None,
        }
    }

    /// Whether codes are lossy (so search results are re-ranked).
    pub fn lossy(&self) -> bool {
        !matches!(self, VectorCodec::F32)
    }

    /// Appends the little-endian code of `v` (already normalised for
    /// cosine) to `out`.
    pub fn encode_bytes(&self, v: &[f32], out: &mut Vec<u8>) {
        match self {
            VectorCodec::F32 => out.extend_from_slice(bytemuck::cast_slice(v)),
            VectorCodec::F16 => out.extend(
                v.iter()
                    .flat_map(|&x| quant::f16::encode_one(x).to_le_bytes()),
            ),
            VectorCodec::Sq8(q) => {
                let start = out.len();
                out.resize(start + q.dim(), 0);
                q.encode(v, &mut out[start..]);
            }
        }
    }

    /// Decodes a little-endian `code` (of any alignment) into `out`
    /// (replacing its contents; approximately for f16 and SQ8).
    pub fn decode_bytes(&self, code: &[u8], out: &mut Vec<f32>) {
        out.clear();
        match self {
            VectorCodec::F32 => out.extend(f32s(code)),
            VectorCodec::F16 => out.extend(
                code.chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            VectorCodec::Sq8(q) => {
                out.resize(q.dim(), 0.0);
                q.decode(code, out);
            }
        }
    }
}

/// Little-endian f32s from bytes of any alignment.
pub fn f32s(b: &[u8]) -> impl Iterator<Item = f32> + '_ {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Runs `f` on the little-endian f32s in `b`: borrowed in place when `b` is
/// 4-byte aligned on a little-endian target (page buffers always are), else
/// decoded into a temporary vector.
#[inline]
pub fn with_f32s<R>(b: &[u8], f: impl FnOnce(&[f32]) -> R) -> R {
    #[cfg(target_endian = "little")]
    if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(b) {
        return f(v);
    }
    f(&f32s(b).collect::<Vec<_>>())
}

/// Runs `f` on the little-endian f16s in `b`, borrowed in place when it can
/// be (as [`with_f32s`]), else decoded into a temporary vector.
#[inline]
pub fn with_f16s<R>(b: &[u8], f: impl FnOnce(&[f16]) -> R) -> R {
    #[cfg(target_endian = "little")]
    if let Ok(v) = bytemuck::try_cast_slice::<u8, f16>(b) {
        return f(v);
    }
    let v: Vec<f16> = b
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]))
        .collect();
    f(&v)
}
