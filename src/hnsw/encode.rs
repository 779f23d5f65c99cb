//! Changing how an index stores its vectors. [`Hnsw::reencode`] turns an
//! index (typically a freshly built f32 one) into f16 or SQ8 codes; the
//! `build_*encoded` constructors build in f32, so every construction
//! distance is exact, then re-encode. The build therefore peaks at the f32
//! vectors plus the codes (plus links); the f32 copy is freed at the end.

use rayon::prelude::*;

use super::codes::{Codes, VectorCodec, VectorEncoding};
use super::{Hnsw, HnswError, HnswParams, Result};
use crate::distance::Metric;
use crate::quant::Sq8Quantizer;

impl Hnsw {
    /// [`Hnsw::build`], then stores the vectors as `encoding` (SQ8: a
    /// quantiser trained on the data, normalised for cosine).
    pub fn build_encoded(
        data: &[f32],
        dim: usize,
        metric: Metric,
        params: HnswParams,
        encoding: VectorEncoding,
        progress: bool,
    ) -> Result<Self> {
        Self::build(data, dim, metric, params, progress)?.reencode(encoding)
    }

    /// [`Hnsw::build_owned`], then stores the vectors as `encoding` (SQ8: a
    /// quantiser trained on the data, normalised for cosine).
    pub fn build_owned_encoded(
        data: Vec<f32>,
        dim: usize,
        metric: Metric,
        params: HnswParams,
        encoding: VectorEncoding,
        progress: bool,
    ) -> Result<Self> {
        Self::build_owned(data, dim, metric, params, progress)?.reencode(encoding)
    }

    /// Stores the vectors as `encoding`, keeping the graph. For SQ8 a
    /// quantiser is trained on the stored vectors (per-dimension min and max
    /// of all of them); an index already in `encoding` is returned as is.
    /// Re-encoding an f16 or SQ8 index decodes its codes first, so precision
    /// lost earlier is not recovered.
    pub fn reencode(self, encoding: VectorEncoding) -> Result<Self> {
        if encoding == self.encoding() {
            return Ok(self);
        }
        let codec = match encoding {
            VectorEncoding::F32 => VectorCodec::F32,
            VectorEncoding::F16 => VectorCodec::F16,
            VectorEncoding::Sq8 => {
                if self.is_empty() {
                    return Err(HnswError::param(
                        "codec",
                        "cannot train an SQ8 quantizer on an empty index; supply one",
                    ));
                }
                let rows: Vec<_> = (0..self.len() as u32)
                    .map(|i| self.codes.vector(i))
                    .collect();
                VectorCodec::Sq8(Sq8Quantizer::train(rows.iter().map(|r| &**r))?)
            }
        };
        self.reencode_with(codec)
    }

    /// Stores the vectors with `codec` (e.g. an SQ8 quantiser trained
    /// elsewhere; values outside its range are clamped), keeping the graph.
    pub fn reencode_with(mut self, codec: VectorCodec) -> Result<Self> {
        if codec == self.codec() {
            return Ok(self);
        }
        if let VectorCodec::Sq8(q) = &codec {
            if q.dim() != self.dim {
                return Err(HnswError::param(
                    "codec",
                    format!(
                        "SQ8 quantizer has dimension {}, index {}",
                        q.dim(),
                        self.dim
                    ),
                ));
            }
        }
        let codes = Codes::new(self.dim, self.metric, codec, self.capacity());
        (0..self.len() as u32)
            .into_par_iter()
            .for_each(|i| codes.write_unpublished(i, &self.codes.vector(i)));
        self.codes = codes;
        Ok(self)
    }
}
