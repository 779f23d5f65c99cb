//! Exact re-rank of a lossy (f16 or SQ8) graph: the full-precision vectors
//! kept beside the codes ([`ExactVectors`]), and the search that walks the
//! graph on codes, then re-scores the best `max(k, rerank × k)` candidates
//! with the f32 vectors ([`Hnsw::search_rerank`]).
//!
//! The vectors live either in memory (an aligned arena filled as nodes are
//! inserted, like the codes) or in a quiver-storage data file mapped read-only
//! (a frozen segment's vector file: resident only as the page cache holds it,
//! and not counted in [`Hnsw::memory_bytes`]). Both hold vectors as stored:
//! normalised for cosine.

use std::path::Path;

use quiver_storage::mmap::{MappedArray, Verify};
use quiver_storage::Backend;

use super::vectors::Arena;
use super::{Hnsw, HnswError, Neighbor, NodeId, Result};
use crate::quant::Sq8Quantizer;
use crate::score::{Prepared, VectorCodec, VectorEncoding};

/// Data-file kind of a file of full vectors (f32 rows), as segments write.
pub const EXACT_VECTORS_KIND: u32 = 0x5153_5631; // "QSV1"

/// Where an index's full-precision vectors live.
pub(crate) enum ExactVectors {
    /// An arena with one slot per node, written at insert.
    Memory(Arena<f32>),
    /// Rows of `dim` f32s in a mapped data file (read-only).
    Mapped(MappedArray<f32>),
}

impl ExactVectors {
    /// The vector of node `id` (`id` below the index's length).
    #[inline]
    pub(crate) fn get(&self, id: u32, dim: usize) -> Option<&[f32]> {
        match self {
            ExactVectors::Memory(a) => ((id as usize) < a.capacity()).then(|| a.get(id)),
            ExactVectors::Mapped(m) => {
                let start = id as usize * dim;
                m.get(start..start + dim)
            }
        }
    }

    /// Resident bytes counted as index memory with `len` nodes written (a
    /// mapped file counts 0).
    pub(crate) fn committed_bytes(&self, len: usize) -> usize {
        match self {
            ExactVectors::Memory(a) => a.committed_bytes(len),
            ExactVectors::Mapped(_) => 0,
        }
    }

    pub(crate) fn write_unpublished(&self, id: u32, v: &[f32]) -> Result<()> {
        match self {
            ExactVectors::Memory(a) => {
                a.write_unpublished(id, v);
                Ok(())
            }
            ExactVectors::Mapped(_) => Err(HnswError::param(
                "exact_vectors",
                "the index's full vectors are a read-only file: it takes no inserts",
            )),
        }
    }
}

/// Where an index keeps the full-precision vectors used for re-ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactSource {
    /// No separate copy: f32 codes are exact, lossy codes are not re-ranked.
    None,
    /// In memory, beside the codes.
    Memory,
    /// In a mapped vector file (page cache).
    Mapped,
}

impl Hnsw {
    /// Keeps an in-memory f32 copy of every vector inserted from now on, for
    /// [`Hnsw::search_rerank`] and [`Hnsw::vector`]. Only for an empty index
    /// with lossy codes (an f32 index is exact already and stays as is).
    pub fn with_exact_vectors(mut self) -> Result<Self> {
        if !self.codec().lossy() {
            return Ok(self);
        }
        if !self.is_empty() {
            return Err(HnswError::param(
                "exact_vectors",
                "can only be added to an empty index (use reencode_keeping_exact)",
            ));
        }
        self.exact = Some(ExactVectors::Memory(Arena::new(self.dim, self.capacity())));
        Ok(self)
    }

    /// Attaches the full vectors of every node from `vectors` (row-major,
    /// `len × dim` f32s, normalised for cosine), copied into memory.
    pub fn attach_exact_vectors(&mut self, vectors: &[f32]) -> Result<()> {
        self.check_exact_len(vectors.len())?;
        let arena = Arena::new(self.dim, self.capacity());
        for (i, row) in vectors.chunks_exact(self.dim).enumerate() {
            arena.write_unpublished(i as u32, row);
        }
        self.exact = Some(ExactVectors::Memory(arena));
        Ok(())
    }

    /// Attaches the full vectors of every node from a mapped data file
    /// (rows as for [`Hnsw::attach_exact_vectors`]); the index then takes
    /// no inserts.
    pub fn attach_exact_mapped(&mut self, vectors: MappedArray<f32>) -> Result<()> {
        self.check_exact_len(vectors.len())?;
        self.exact = Some(ExactVectors::Mapped(vectors));
        Ok(())
    }

    fn check_exact_len(&self, floats: usize) -> Result<()> {
        if floats != self.len() * self.dim {
            return Err(HnswError::param(
                "exact_vectors",
                format!(
                    "{floats} values for {} nodes of dimension {}",
                    self.len(),
                    self.dim
                ),
            ));
        }
        Ok(())
    }

    /// Where the index's exact vectors are kept.
    pub fn exact_source(&self) -> ExactSource {
        match &self.exact {
            None => ExactSource::None,
            Some(ExactVectors::Memory(_)) => ExactSource::Memory,
            Some(ExactVectors::Mapped(_)) => ExactSource::Mapped,
        }
    }

    /// The full-precision vector of `id`: the f32 code, or the exact copy
    /// of a lossy index that keeps one; `None` otherwise.
    pub fn exact_vector(&self, id: NodeId) -> Option<&[f32]> {
        if id.0 as usize >= self.len() {
            return None;
        }
        match &self.exact {
            Some(e) => e.get(id.0, self.dim),
            None => self.codes.f32_slot(id.0),
        }
    }

    /// Every node's full-precision vector, row-major (for writing a vector
    /// file); `None` when the index holds lossy codes only.
    pub fn exact_rows(&self) -> Option<Vec<f32>> {
        let mut out = Vec::with_capacity(self.len() * self.dim);
        for i in 0..self.len() as u32 {
            out.extend_from_slice(self.exact_vector(NodeId(i))?);
        }
        Some(out)
    }

    /// Stores the vectors as `codec` and keeps the current f32 vectors as the
    /// exact copy (an f32 index only; no copy is made). An index already
    /// lossy is re-encoded from its exact copy when it has one.
    pub fn reencode_keeping_exact(mut self, codec: crate::score::VectorCodec) -> Result<Self> {
        if !codec.lossy() {
            return self.reencode_with(codec);
        }
        // Both read the codes' capacity: take them before the arena moves.
        let (capacity, len) = (self.capacity(), self.len());
        let exact = match self.exact.take() {
            Some(e) => e,
            None => match self.codes.take_f32_arena() {
                Some(a) => ExactVectors::Memory(a),
                None => {
                    return Err(HnswError::param(
                        "exact_vectors",
                        "a lossy index without its full vectors cannot keep them",
                    ))
                }
            },
        };
        let codes = super::codes::Codes::new(self.dim, self.metric, codec, capacity);
        for i in 0..len as u32 {
            if let Some(v) = exact.get(i, self.dim) {
                codes.write_unpublished(i, v);
            }
        }
        self.codes = codes;
        self.exact = Some(exact);
        Ok(self)
    }

    /// [`Hnsw::reencode_keeping_exact`] to `encoding`; for SQ8 with a
    /// quantiser trained on the full vectors (per-dimension min and max).
    pub fn reencode_exact(self, encoding: VectorEncoding) -> Result<Self> {
        let codec = match encoding {
            VectorEncoding::F32 => VectorCodec::F32,
            VectorEncoding::F16 => VectorCodec::F16,
            VectorEncoding::Sq8 => {
                let rows: Option<Vec<&[f32]>> = (0..self.len() as u32)
                    .map(|i| self.exact_vector(NodeId(i)))
                    .collect();
                let rows = rows.filter(|r| !r.is_empty()).ok_or_else(|| {
                    HnswError::param("codec", "no full vectors to train an SQ8 quantizer on")
                })?;
                VectorCodec::Sq8(Sq8Quantizer::train(rows)?)
            }
        };
        self.reencode_keeping_exact(codec)
    }

    /// Writes the full vectors to the data file `dir/name` (through
    /// `backend`, atomically) and from then on reads them from it, mapped:
    /// the in-memory copy is freed, and the index takes no more inserts.
    pub fn spill_exact_vectors(
        &mut self,
        backend: &dyn Backend,
        dir: &Path,
        name: &str,
    ) -> Result<()> {
        let rows = self
            .exact_rows()
            .ok_or_else(|| HnswError::param("exact_vectors", "the index keeps no full vectors"))?;
        let path = dir.join(name);
        let io = |e: quiver_storage::Error| HnswError::Io {
            file: path.clone(),
            source: e.into_io(),
        };
        quiver_storage::file::write_data_file(
            backend,
            dir,
            name,
            EXACT_VECTORS_KIND,
            4,
            bytemuck::cast_slice(&rows),
        )
        .map_err(io)?;
        drop(rows);
        let mapped = MappedArray::<f32>::open(&path, Verify::Header).map_err(io)?;
        self.attach_exact_mapped(mapped)
    }

    /// Searches on the codes for the best `max(k, rerank × k)` nodes (beam
    /// `max(ef, that)`), re-scores them with the full vectors and returns
    /// the `k` nearest by exact distance, nearest first (ties by id). With
    /// `rerank == 0`, f32 codes or no exact copy it is
    /// [`Hnsw::search_prepared`].
    pub fn search_rerank(
        &self,
        query: Prepared<'_>,
        k: usize,
        ef: usize,
        rerank: usize,
    ) -> Result<Vec<Neighbor>> {
        let Some(exact) = self.exact.as_ref().filter(|_| rerank > 0) else {
            return self.search_prepared(query, k, ef);
        };
        let pool = k.saturating_mul(rerank).max(k);
        let mut cands = self.search_prepared(query, pool, ef.max(pool))?;
        let kernel = self.metric.kernel();
        let q = query.as_slice();
        // The f32 vectors are cold: request every candidate's lines first,
        // so their misses overlap instead of queueing one vector at a time.
        for c in cands.iter() {
            if let Some(v) = exact.get(c.id.0, self.dim) {
                crate::distance::prefetch_lines(v, 64);
            }
        }
        for c in cands.iter_mut() {
            if let Some(v) = exact.get(c.id.0, self.dim) {
                c.distance = kernel.distance(q, v);
            }
        }
        cands.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        cands.truncate(k);
        Ok(cands)
    }
}
