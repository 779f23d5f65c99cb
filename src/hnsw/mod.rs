//! The in-memory HNSW graph index (Malkov & Yashunin, "Efficient and robust
//! approximate nearest neighbor search using Hierarchical Navigable Small World
//! graphs", TPAMI 2018).
//!
//! - Levels drawn from an exponential distribution with `mL = 1/ln(M)`; `M`
//!   neighbours per node on upper layers, `M0 = 2M` on layer 0.
//! - Neighbours chosen by the paper's heuristic (algorithm 4), greedy descent
//!   through the upper layers, then an `ef`-bounded beam search on layer 0.
//! - Concurrent inserts (rayon for bulk builds) with one lock per node; searches
//!   take no lock (see [`links`]).
//! - Deletes mark nodes; deleted nodes still route but are never returned.
//!   Searches accept an allow-filter. [`Hnsw::rebuild`] compacts.
//! - Vectors stored as f32, f16 or SQ8 codes ([`VectorEncoding`], [`codes`]);
//!   searches compare the f32 query with the codes directly.
//! - [`Hnsw::save`] / [`Hnsw::load`]: the flat file of docs/FORMAT.md.

mod build;
mod codes;
mod encode;
mod error;
mod filtered;
mod links;
mod persist;
mod search;
#[allow(unsafe_code)]
mod vectors;
mod visited;

pub use crate::score::{ParseEncodingError, VectorCodec, VectorEncoding};
pub use error::{HnswError, Result};
pub use filtered::FilterStats;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;

use crate::distance::Metric;
use crate::limits;
use crate::quant::Sq8Quantizer;
use codes::Codes;
use links::Links;
use visited::ScratchPool;

/// Index of a node inside one HNSW graph (not a user-facing point id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor {
    pub id: NodeId,
    /// Distance to the query under the index's metric (lower is closer).
    pub distance: f32,
}

/// Build parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    /// `M` in Malkov & Yashunin: neighbours per node on upper layers (2M on layer 0).
    pub m: usize,
    /// `efConstruction` in Malkov & Yashunin: beam width while inserting.
    pub ef_construction: usize,
    /// Seed of the level assignment (builds are reproducible per seed and order).
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            seed: 0x5157_4956_4552,
        }
    }
}

impl HnswParams {
    /// Checks ranges; an error names the field.
    pub fn validate(&self) -> Result<()> {
        if !(limits::MIN_HNSW_M..=limits::MAX_HNSW_M).contains(&self.m) {
            return Err(HnswError::param(
                "m",
                format!(
                    "must be in {}..={}, got {}",
                    limits::MIN_HNSW_M,
                    limits::MAX_HNSW_M,
                    self.m
                ),
            ));
        }
        if !(1..=limits::MAX_EF).contains(&self.ef_construction) {
            return Err(HnswError::param(
                "ef_construction",
                format!(
                    "must be in 1..={}, got {}",
                    limits::MAX_EF,
                    self.ef_construction
                ),
            ));
        }
        Ok(())
    }
}

/// Current entry point: the node on the top layer.
#[derive(Clone, Copy, Debug)]
struct Entry {
    node: u32,
    level: usize,
}

/// A (distance, node) pair ordered by distance, then id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) dist: f32,
    pub(crate) id: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.dist.total_cmp(&o.dist).then(self.id.cmp(&o.id))
    }
}

/// An HNSW index over vectors of one dimension and metric, stored as f32,
/// f16 or SQ8 codes.
pub struct Hnsw {
    dim: usize,
    metric: Metric,
    params: HnswParams,
    /// The stored vectors and their distance kernels.
    codes: Codes,
    links: Links,
    /// Slots reserved so far (ids `0..len` exist or are being inserted).
    len: AtomicUsize,
    entry: RwLock<Option<Entry>>,
    /// Held while inserting a node that raises the top layer.
    top_lock: Mutex<()>,
    deleted: Mutex<RoaringBitmap>,
    /// Mirror of `deleted` for lock-free checks in the search loop.
    deleted_flags: Box<[AtomicBool]>,
    deleted_count: AtomicUsize,
    pool: ScratchPool,
}

impl Hnsw {
    /// An empty index with room for `capacity` f32 vectors.
    pub fn new(dim: usize, metric: Metric, params: HnswParams, capacity: usize) -> Result<Self> {
        Self::with_codec(dim, metric, params, capacity, VectorCodec::F32)
    }

    /// An empty index with room for `capacity` vectors stored with `codec`.
    /// An SQ8 quantiser must have dimension `dim` and be trained on vectors
    /// as stored (normalised for cosine); inserted values outside its range
    /// are clamped.
    pub fn with_codec(
        dim: usize,
        metric: Metric,
        params: HnswParams,
        capacity: usize,
        codec: VectorCodec,
    ) -> Result<Self> {
        params.validate()?;
        if dim == 0 || dim > limits::MAX_DIMENSION {
            return Err(HnswError::param(
                "dim",
                format!("must be in 1..={}, got {dim}", limits::MAX_DIMENSION),
            ));
        }
        if capacity > u32::MAX as usize - 1 {
            return Err(HnswError::param(
                "capacity",
                format!("{capacity} exceeds u32 node ids"),
            ));
        }
        if let VectorCodec::Sq8(q) = &codec {
            if q.dim() != dim {
                return Err(HnswError::param(
                    "codec",
                    format!("SQ8 quantizer has dimension {}, index {dim}", q.dim()),
                ));
            }
        }
        Ok(Self {
            dim,
            metric,
            params,
            codes: Codes::new(dim, metric, codec, capacity),
            links: Links::new(params.m, capacity),
            len: AtomicUsize::new(0),
            entry: RwLock::new(None),
            top_lock: Mutex::new(()),
            deleted: Mutex::new(RoaringBitmap::new()),
            deleted_flags: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
            deleted_count: AtomicUsize::new(0),
            pool: ScratchPool::new(),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// How the vectors are stored.
    pub fn encoding(&self) -> VectorEncoding {
        self.codes.encoding()
    }

    /// The encoding with its parameters (e.g. to build another index with
    /// the same SQ8 quantiser).
    pub fn codec(&self) -> VectorCodec {
        self.codes.codec()
    }

    /// The SQ8 quantiser, for an SQ8 index.
    pub fn sq8_quantizer(&self) -> Option<&Sq8Quantizer> {
        self.codes.sq8_quantizer()
    }

    /// Nodes inserted (deleted ones included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire).min(self.capacity())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nodes not deleted. Racing inserts and deletes may make it stale, never
    /// wrong by more than they did: the deleted count is read first, and a
    /// node is deleted only after it is counted in `len`, which only grows,
    /// so the later `len` is at least that count.
    pub fn live_len(&self) -> usize {
        let deleted = self.deleted_count.load(Ordering::Acquire);
        self.len().saturating_sub(deleted)
    }

    /// Slots available before [`Hnsw::reserve`] is needed.
    pub fn capacity(&self) -> usize {
        self.codes.capacity()
    }

    /// Grows the capacity to at least `capacity` slots.
    pub fn reserve(&mut self, capacity: usize) {
        if capacity <= self.capacity() {
            return;
        }
        self.codes.grow(capacity);
        self.links.grow(capacity);
        let mut flags = std::mem::take(&mut self.deleted_flags).into_vec();
        flags.resize_with(capacity, || AtomicBool::new(false));
        self.deleted_flags = flags.into_boxed_slice();
    }

    /// The stored vector of `id` (normalised for cosine), if it exists:
    /// borrowed for f32 storage, decoded from its code for f16 and SQ8.
    pub fn vector(&self, id: NodeId) -> Option<Cow<'_, [f32]>> {
        ((id.0 as usize) < self.len()).then(|| self.codes.vector(id.0))
    }

    /// Marks `id` deleted: it keeps routing searches but is never returned.
    /// Returns `false` if it was already deleted.
    pub fn delete(&self, id: NodeId) -> Result<bool> {
        if id.0 as usize >= self.len() {
            return Err(HnswError::UnknownNode(id.0));
        }
        let mut d = self.deleted.lock();
        if !d.insert(id.0) {
            return Ok(false);
        }
        self.deleted_flags[id.0 as usize].store(true, Ordering::Release);
        self.deleted_count.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Whether `id` is marked deleted.
    pub fn is_deleted(&self, id: NodeId) -> bool {
        self.deleted_flags
            .get(id.0 as usize)
            .is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// A copy of the deleted set.
    pub fn deleted(&self) -> RoaringBitmap {
        self.deleted.lock().clone()
    }

    /// Resident bytes of the index: vector codes (and SQ8 parameters),
    /// links and bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        self.codes.bytes()
            + self.links.bytes()
            + self.deleted_flags.len()
            + self.deleted.lock().serialized_size()
            + std::mem::size_of::<Self>()
    }

    /// Checks a vector's dimension and values; returns a message naming the problem.
    fn check_vector(&self, v: &[f32], what: &str) -> Result<()> {
        crate::score::check(v, self.dim).map_err(|e| vector_error(e, what))
    }
}

/// The index's error for a vector `what` that [`crate::score`] rejected.
pub(crate) fn vector_error(e: crate::score::VectorError, what: &str) -> HnswError {
    use crate::score::VectorError;
    let what = what.to_string();
    match e {
        VectorError::Dimension { expected, got } => HnswError::Dimension {
            what,
            expected,
            got,
        },
        VectorError::NonFinite { index } => HnswError::NonFinite { what, index },
        VectorError::ZeroNorm => HnswError::ZeroNorm { what },
    }
}

#[cfg(test)]
mod encoding_tests;
#[cfg(test)]
mod tests;
