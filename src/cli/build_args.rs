//! The flags of `quiver index` (bare index or, with `--data --collection`,
//! a collection: `bulk.rs`) and the index flags `quiver bench` shares, in
//! one module that `bench.rs`, `index.rs` and `bulk.rs` all read.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use quiver::distance::Metric;
use quiver::hnsw::{HnswParams, VectorEncoding};
use quiver::spann::{Encoding, SpannParams};

/// Which index `quiver index` / `quiver bench` builds.
#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// In-memory HNSW graph.
    Hnsw,
    /// SPANN: heads in memory, posting lists on disk (an index directory).
    Spann,
}

/// SPANN build settings shared by `quiver index` and `quiver bench`.
#[derive(Args, Clone)]
pub struct SpannBuildArgs {
    /// SPANN: share of the vectors that become heads [default: 1/6, a
    /// collection's].
    #[arg(long, default_value_t = SpannParams::recommended().head_ratio, hide_default_value = true)]
    pub head_ratio: f64,
    /// SPANN: most postings a vector is written to.
    #[arg(long, default_value_t = SpannParams::default().replicas)]
    pub replicas: usize,
    /// SPANN: ε₁, replicas only within (1+ε₁) of the nearest head.
    #[arg(long, default_value_t = SpannParams::default().eps1)]
    pub eps1: f32,
    /// SPANN: RNG rule slack; a replica head is skipped when
    /// rng_factor·d(head, chosen head) ≤ d(vector, head). Larger keeps more.
    #[arg(long, default_value_t = SpannParams::default().rng_factor)]
    pub rng_factor: f32,
    /// Vector encoding, f32 | f16 | sq8: of the postings (spann) or of the
    /// graph's vectors (hnsw) [default: f16 for spann, a collection's; f32
    /// for hnsw].
    #[arg(long)]
    pub encoding: Option<Encoding>,
    /// SPANN: encoding of the head vectors in the in-memory head graph,
    /// f32 | f16 | sq8 [default: sq8, a collection's].
    #[arg(long)]
    pub head_encoding: Option<VectorEncoding>,
    /// SPANN: posting length limit in 4 KiB pages.
    #[arg(long, default_value_t = SpannParams::default().max_posting_pages)]
    pub max_posting_pages: u32,
}

impl SpannBuildArgs {
    /// `--encoding` as the storage of an HNSW graph's vectors.
    pub fn graph_encoding(&self) -> VectorEncoding {
        match self.encoding.unwrap_or(Encoding::F32) {
            Encoding::F32 => VectorEncoding::F32,
            Encoding::F16 => VectorEncoding::F16,
            Encoding::Sq8 => VectorEncoding::Sq8,
        }
    }

    /// The SPANN parameters: a collection's defaults
    /// ([`SpannParams::recommended`]) with the flags given.
    pub fn params(&self, m: usize, ef_construction: usize) -> SpannParams {
        let d = SpannParams::recommended();
        SpannParams {
            head_ratio: self.head_ratio,
            replicas: self.replicas,
            replica_candidates: d.replica_candidates.max(self.replicas),
            eps1: self.eps1,
            rng_factor: self.rng_factor,
            encoding: self.encoding.unwrap_or(d.encoding),
            head_encoding: self.head_encoding.unwrap_or(d.head_encoding),
            max_posting_pages: self.max_posting_pages,
            hnsw: HnswParams {
                m,
                ef_construction,
                ..d.hnsw
            },
            ..d
        }
    }
}

#[derive(Args)]
pub struct IndexArgs {
    /// Base vectors (.fvecs, .bvecs, .fbin, .u8bin, .i8bin, .hdf5).
    #[arg(long)]
    pub base: PathBuf,
    /// Output: a directory for spann, a file for hnsw.
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    pub out: Option<PathBuf>,
    /// Build a collection of this server data directory instead of a bare
    /// index (with --collection); `quiver serve --data DATA` opens it.
    #[arg(long, requires = "collection")]
    pub data: Option<PathBuf>,
    /// Name of the collection to build in --data (refused if it exists).
    #[arg(long, requires = "data")]
    pub collection: Option<String>,
    /// l2 | ip | cosine [default: l2; required with --collection].
    #[arg(long)]
    pub metric: Option<Metric>,
    /// hnsw | spann [default: spann; collections are always hnsw].
    #[arg(long, value_enum)]
    pub index: Option<IndexKind>,
    /// HNSW M (of the head graph for spann) [default: 16, the server's default].
    #[arg(long)]
    pub m: Option<usize>,
    /// HNSW efConstruction [default: 200, the server's default].
    #[arg(long)]
    pub ef_construction: Option<usize>,
    /// Use only the first N base vectors.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Build threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub build_threads: usize,
    #[command(flatten)]
    pub spann: SpannBuildArgs,
    #[command(flatten)]
    pub bulk: BulkArgs,
}

/// Fsync mode of the built collection (as `Create`'s `fsync`).
#[derive(Clone, Copy, ValueEnum)]
pub enum FsyncArg {
    /// Acknowledge writes after fsync (the server's default).
    Always,
    /// Fsync every --fsync-interval-ms.
    Interval,
    /// Fsync on WAL rotation and checkpoints only.
    Never,
}

/// Flags that apply only to `--data/--collection` builds.
#[derive(Args)]
pub struct BulkArgs {
    /// Collection builds: id of the first vector (row i gets start_id + i, as `quiver import`) [default: 0].
    #[arg(long)]
    pub start_id: Option<u64>,
    /// Collection builds: points per write batch [default: 10000].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Collection builds: the collection's fsync mode, always | interval | never [default: always].
    #[arg(long, value_enum)]
    pub fsync: Option<FsyncArg>,
    /// Collection builds: interval for `--fsync interval`.
    #[arg(long)]
    pub fsync_interval_ms: Option<u64>,
    /// Collection builds: how memory segments store vectors, f32 | f16 | sq8 (the
    /// collection's `hnsw_encoding`) [default: f32].
    #[arg(long)]
    pub hnsw_encoding: Option<VectorEncoding>,
    /// Collection builds: the collection's re-rank factor for f16/sq8 [default: 4].
    #[arg(long)]
    pub rerank: Option<usize>,
    /// Collection builds: where f16/sq8 segments loaded from disk keep their f32
    /// vectors, memory | disk (mapped vector files) [default: memory].
    #[arg(long, value_enum)]
    pub rerank_vectors: Option<RerankVectorsArg>,
}

/// Where lossy segments keep their f32 vectors (`rerank_vectors`).
#[derive(Clone, Copy, ValueEnum)]
pub enum RerankVectorsArg {
    /// Copied into memory when a segment is loaded.
    Memory,
    /// Read from the segment's vector file through the page cache.
    Disk,
}

impl BulkArgs {
    /// Whether any of these flags was given.
    pub fn is_set(&self) -> bool {
        self.start_id.is_some()
            || self.batch.is_some()
            || self.fsync.is_some()
            || self.fsync_interval_ms.is_some()
            || self.hnsw_encoding.is_some()
            || self.rerank.is_some()
            || self.rerank_vectors.is_some()
    }
}
