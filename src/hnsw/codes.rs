//! How the graph's vectors are stored (in the [`VectorEncoding`]s of
//! [`crate::score`]: f32, f16 or SQ8 codes) and how distances to them are
//! computed.
//!
//! The graph code never touches codes directly. It asks a [`Space`] (one per
//! encoding) for a prepared query, a [`Dist`], and calls `dist(id)` on it:
//!
//! - a search query is compared with stored codes by the asymmetric f16
//!   kernels (`l2_f16`/`dot_f16`), or, for SQ8, quantised once to int8
//!   ([`Sq8IntQuery`], integer `dot_u8i8`; L2 also reads each node's stored
//!   code norm);
//! - node-to-node distances (inserts: neighbour selection and shrinking)
//!   decode one node into a scratch buffer ([`QueryTmp`]) and use it as the
//!   query.
//!
//! Everything generic over [`Space`] is monomorphised per encoding, so the
//! f32 path compiles to the same loop as before encodings existed.
//!
//! SQ8 parameters are fixed when the codes are created: values outside the
//! trained range (e.g. of vectors inserted after the build) are clamped to it.

use std::borrow::Cow;

use half::f16;

use super::vectors::Arena;
use crate::distance::{self, DistanceKernel, F16Kernel, Metric};
use crate::quant::{self, Sq8IntQuery, Sq8Quantizer};
pub(crate) use crate::score::{VectorCodec, VectorEncoding};

/// Reusable buffers for preparing one query (a decoded node, an SQ8 query).
#[derive(Default)]
pub(crate) struct QueryTmp {
    buf: Vec<f32>,
    sq8: Option<Sq8IntQuery>,
}

/// A query prepared against one encoding's codes.
pub(crate) trait Dist {
    /// Distance from the query to node `id` (lower is closer).
    fn dist(&self, id: u32) -> f32;
    /// Hints the first cache line of node `id`'s code into cache.
    fn prefetch(&self, id: u32);
    /// Hints every cache line of node `id`'s code into cache.
    fn prefetch_all(&self, id: u32);
    /// How many neighbours ahead of the one being scored the search pulls
    /// in whole codes ([`prefetch_all`](Self::prefetch_all)): 1 by default;
    /// more for codes scored faster than a cache miss (SQ8).
    #[inline(always)]
    fn prefetch_ahead(&self) -> usize {
        1
    }
}

/// One encoding's codes: prepares queries and writes and reads slots.
pub(crate) trait Space: Sync {
    type Query<'a>: Dist
    where
        Self: 'a;
    /// Prepares `q` (already normalised for cosine) as a query.
    fn query<'a>(&'a self, q: &'a [f32], tmp: &'a mut QueryTmp) -> Self::Query<'a>;
    /// Prepares the stored vector of node `id` as a query.
    fn node<'a>(&'a self, id: u32, tmp: &'a mut QueryTmp) -> Self::Query<'a>;
}

/// f32 codes: the vectors themselves.
pub(crate) struct F32Space {
    pub(crate) arena: Arena<f32>,
    kernel: DistanceKernel,
}

pub(crate) struct F32Query<'a> {
    q: &'a [f32],
    arena: &'a Arena<f32>,
    kernel: DistanceKernel,
}

impl Dist for F32Query<'_> {
    #[inline(always)]
    fn dist(&self, id: u32) -> f32 {
        self.kernel.distance(self.q, self.arena.get(id))
    }
    #[inline(always)]
    fn prefetch(&self, id: u32) {
        distance::prefetch(self.arena.get(id));
    }
    #[inline(always)]
    fn prefetch_all(&self, id: u32) {
        distance::prefetch_lines(self.arena.get(id), 64);
    }
}

impl Space for F32Space {
    type Query<'a> = F32Query<'a>;
    #[inline(always)]
    fn query<'a>(&'a self, q: &'a [f32], _: &'a mut QueryTmp) -> F32Query<'a> {
        F32Query {
            q,
            arena: &self.arena,
            kernel: self.kernel,
        }
    }
    #[inline(always)]
    fn node<'a>(&'a self, id: u32, _: &'a mut QueryTmp) -> F32Query<'a> {
        F32Query {
            q: self.arena.get(id),
            arena: &self.arena,
            kernel: self.kernel,
        }
    }
}

/// f16 codes.
pub(crate) struct F16Space {
    arena: Arena<f16>,
    kernel: F16Kernel,
}

pub(crate) struct F16Query<'a> {
    q: &'a [f32],
    arena: &'a Arena<f16>,
    kernel: F16Kernel,
}

impl Dist for F16Query<'_> {
    #[inline(always)]
    fn dist(&self, id: u32) -> f32 {
        self.kernel.distance(self.q, self.arena.get(id))
    }
    #[inline(always)]
    fn prefetch(&self, id: u32) {
        distance::prefetch(self.arena.get(id));
    }
    #[inline(always)]
    fn prefetch_all(&self, id: u32) {
        distance::prefetch_lines(self.arena.get(id), 64);
    }
}

impl Space for F16Space {
    type Query<'a> = F16Query<'a>;
    fn query<'a>(&'a self, q: &'a [f32], _: &'a mut QueryTmp) -> F16Query<'a> {
        F16Query {
            q,
            arena: &self.arena,
            kernel: self.kernel,
        }
    }
    fn node<'a>(&'a self, id: u32, tmp: &'a mut QueryTmp) -> F16Query<'a> {
        let code = self.arena.get(id);
        let buf = &mut tmp.buf;
        buf.resize(code.len(), 0.0);
        quant::f16::decode(code, buf);
        let q: &'a [f32] = buf;
        F16Query {
            q,
            arena: &self.arena,
            kernel: self.kernel,
        }
    }
}

/// SQ8 codes and their quantiser; for L2 also each code's
/// [`Sq8Quantizer::centered_sq_norm`] (4 bytes a node), which the integer
/// distance needs.
pub(crate) struct Sq8Space {
    arena: Arena<u8>,
    norms: Option<Arena<f32>>,
    quantizer: Sq8Quantizer,
    metric: Metric,
}

pub(crate) struct Sq8Dist<'a> {
    q: &'a Sq8IntQuery,
    arena: &'a Arena<u8>,
    norms: Option<&'a Arena<f32>>,
}

impl Dist for Sq8Dist<'_> {
    #[inline(always)]
    fn dist(&self, id: u32) -> f32 {
        let norm = match self.norms {
            Some(n) => n.get(id)[0],
            None => 0.0,
        };
        self.q.distance(self.arena.get(id), norm)
    }
    #[inline(always)]
    fn prefetch(&self, id: u32) {
        distance::prefetch(self.arena.get(id));
        if let Some(n) = self.norms {
            distance::prefetch(n.get(id));
        }
    }
    #[inline(always)]
    fn prefetch_all(&self, id: u32) {
        distance::prefetch_lines(self.arena.get(id), 64);
    }
    /// A 384-d code is scored in a few nanoseconds, far less than a miss
    /// to L3 or memory, so whole codes are requested 8 neighbours ahead
    /// (measured on minilm, ef 32–512: 1 → 8 ahead is 10–20 % more QPS;
    /// 4–32 are within the noise of each other).
    #[inline(always)]
    fn prefetch_ahead(&self) -> usize {
        8
    }
}

impl Sq8Space {
    fn new(dim: usize, quantizer: Sq8Quantizer, metric: Metric, capacity: usize) -> Self {
        Sq8Space {
            arena: Arena::new(dim, capacity),
            norms: (metric == Metric::L2).then(|| Arena::new(1, capacity)),
            quantizer,
            metric,
        }
    }

    fn prepare<'a>(&'a self, q: &[f32], slot: &'a mut Option<Sq8IntQuery>) -> Sq8Dist<'a> {
        let prepared = match slot {
            Some(p) => {
                p.set_query(&self.quantizer, q);
                p
            }
            None => slot.insert(Sq8IntQuery::new(&self.quantizer, self.metric, q)),
        };
        Sq8Dist {
            q: prepared,
            arena: &self.arena,
            norms: self.norms.as_ref(),
        }
    }

    /// Writes `code` (and its norm, for L2) into the unpublished slot `id`.
    fn write_unpublished(&self, id: u32, code: &[u8]) {
        self.arena.write_unpublished(id, code);
        if let Some(n) = &self.norms {
            n.write_unpublished(id, &[self.quantizer.centered_sq_norm(code)]);
        }
    }
}

impl Space for Sq8Space {
    type Query<'a> = Sq8Dist<'a>;
    fn query<'a>(&'a self, q: &'a [f32], tmp: &'a mut QueryTmp) -> Sq8Dist<'a> {
        self.prepare(q, &mut tmp.sq8)
    }
    fn node<'a>(&'a self, id: u32, tmp: &'a mut QueryTmp) -> Sq8Dist<'a> {
        let QueryTmp { buf, sq8 } = tmp;
        buf.resize(self.quantizer.dim(), 0.0);
        self.quantizer.decode(self.arena.get(id), buf);
        self.prepare(buf, sq8)
    }
}

/// The stored vectors of an index, in one encoding.
pub(crate) enum Codes {
    F32(F32Space),
    F16(F16Space),
    Sq8(Sq8Space),
}

/// Runs `$body` with `$s` bound to the [`Space`] of `$codes`, monomorphised
/// per encoding.
macro_rules! with_space {
    ($codes:expr, $s:ident => $body:expr) => {
        match $codes {
            $crate::hnsw::codes::Codes::F32($s) => $body,
            $crate::hnsw::codes::Codes::F16($s) => $body,
            $crate::hnsw::codes::Codes::Sq8($s) => $body,
        }
    };
}
pub(crate) use with_space;

impl Codes {
    /// Empty storage for `capacity` vectors of dimension `dim`. An SQ8
    /// quantiser must have dimension `dim` (checked by the caller).
    pub(crate) fn new(dim: usize, metric: Metric, codec: VectorCodec, capacity: usize) -> Self {
        match codec {
            VectorCodec::F32 => Codes::F32(F32Space {
                arena: Arena::new(dim, capacity),
                kernel: metric.kernel(),
            }),
            VectorCodec::F16 => Codes::F16(F16Space {
                arena: Arena::new(dim, capacity),
                kernel: metric.f16_kernel(),
            }),
            VectorCodec::Sq8(quantizer) => {
                Codes::Sq8(Sq8Space::new(dim, quantizer, metric, capacity))
            }
        }
    }

    pub(crate) fn encoding(&self) -> VectorEncoding {
        match self {
            Codes::F32(_) => VectorEncoding::F32,
            Codes::F16(_) => VectorEncoding::F16,
            Codes::Sq8(_) => VectorEncoding::Sq8,
        }
    }

    /// The encoding and its parameters.
    pub(crate) fn codec(&self) -> VectorCodec {
        match self {
            Codes::F32(_) => VectorCodec::F32,
            Codes::F16(_) => VectorCodec::F16,
            Codes::Sq8(s) => VectorCodec::Sq8(s.quantizer.clone()),
        }
    }

    pub(crate) fn sq8_quantizer(&self) -> Option<&Sq8Quantizer> {
        match self {
            Codes::Sq8(s) => Some(&s.quantizer),
            _ => None,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        match self {
            Codes::F32(s) => s.arena.capacity(),
            Codes::F16(s) => s.arena.capacity(),
            Codes::Sq8(s) => s.arena.capacity(),
        }
    }

    /// Resident bytes once slots `0..len` are written (see
    /// [`Arena::committed_bytes`]), with the quantiser's parameters.
    pub(crate) fn committed_bytes(&self, len: usize) -> usize {
        match self {
            Codes::F32(s) => s.arena.committed_bytes(len),
            Codes::F16(s) => s.arena.committed_bytes(len),
            Codes::Sq8(s) => {
                s.arena.committed_bytes(len)
                    + s.norms.as_ref().map_or(0, |n| n.committed_bytes(len))
                    + 8 * s.quantizer.dim()
            }
        }
    }

    /// The f32 code of slot `id` (an f32 index only).
    pub(crate) fn f32_slot(&self, id: u32) -> Option<&[f32]> {
        match self {
            Codes::F32(s) => Some(s.arena.get(id)),
            _ => None,
        }
    }

    /// Moves an f32 index's arena out, leaving an empty one (of capacity
    /// 0) in its place; `None` for lossy codes. The caller replaces the codes.
    pub(crate) fn take_f32_arena(&mut self) -> Option<Arena<f32>> {
        match self {
            Codes::F32(s) => {
                let dim = s.arena.len();
                Some(std::mem::replace(&mut s.arena, Arena::new(dim, 0)))
            }
            _ => None,
        }
    }

    pub(crate) fn grow(&mut self, capacity: usize) {
        match self {
            Codes::F32(s) => s.arena.grow(capacity),
            Codes::F16(s) => s.arena.grow(capacity),
            Codes::Sq8(s) => {
                s.arena.grow(capacity);
                if let Some(n) = &mut s.norms {
                    n.grow(capacity);
                }
            }
        }
    }

    /// Encodes `v` (already normalised for cosine) into the unpublished slot
    /// `id` (see [`Arena::write_unpublished`]). SQ8 clamps values outside the
    /// quantiser's range; f16 saturates beyond ±65504.
    pub(crate) fn write_unpublished(&self, id: u32, v: &[f32]) {
        match self {
            Codes::F32(s) => s.arena.write_unpublished(id, v),
            Codes::F16(s) => s.arena.write_unpublished(id, &quant::f16::encode_vec(v)),
            Codes::Sq8(s) => s.write_unpublished(id, &s.quantizer.encode_vec(v)),
        }
    }

    /// Writes raw codes (from a file) into the unpublished slot `id`;
    /// `raw` holds exactly one code's bytes, little-endian.
    pub(crate) fn write_raw_unpublished(&self, id: u32, raw: &[u8]) {
        match self {
            Codes::F32(s) => {
                let v: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                s.arena.write_unpublished(id, &v);
            }
            Codes::F16(s) => {
                let v: Vec<f16> = raw
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]))
                    .collect();
                s.arena.write_unpublished(id, &v);
            }
            Codes::Sq8(s) => s.write_unpublished(id, raw),
        }
    }

    /// The code of slot `id` as little-endian bytes (for saving).
    pub(crate) fn raw(&self, id: u32) -> &[u8] {
        match self {
            Codes::F32(s) => bytemuck::cast_slice(s.arena.get(id)),
            Codes::F16(s) => bytemuck::cast_slice(s.arena.get(id)),
            Codes::Sq8(s) => s.arena.get(id),
        }
    }

    /// The vector of slot `id`: borrowed for f32, decoded otherwise.
    pub(crate) fn vector(&self, id: u32) -> Cow<'_, [f32]> {
        match self {
            Codes::F32(s) => Cow::Borrowed(s.arena.get(id)),
            Codes::F16(s) => Cow::Owned(quant::f16::decode_vec(s.arena.get(id))),
            Codes::Sq8(s) => {
                let mut out = vec![0.0; s.quantizer.dim()];
                s.quantizer.decode(s.arena.get(id), &mut out);
                Cow::Owned(out)
            }
        }
    }
}
