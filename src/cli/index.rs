//! `quiver index`: build an index over a dataset and write it to disk
//! (`--index spann`: a directory; `--index hnsw`: one file). With `--data
//! DIR --collection NAME` it builds a server collection instead (`bulk.rs`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;

use quiver::dataset;
use quiver::distance::Metric;
use quiver::hnsw::{Hnsw, HnswParams, VectorEncoding};
use quiver::spann::{Encoding, OpenParams, Spann, SpannParams};

use super::bench::IndexKind;

/// SPANN build settings shared by `quiver index` and `quiver bench`.
#[derive(Args, Clone)]
pub struct SpannBuildArgs {
    /// SPANN: share of the vectors that become heads.
    #[arg(long, default_value_t = SpannParams::default().head_ratio)]
    pub head_ratio: f64,
    /// SPANN: most postings a vector is written to.
    #[arg(long, default_value_t = SpannParams::default().replicas)]
    pub replicas: usize,
    /// SPANN: ε₁, replicas only within (1+ε₁) of the nearest head.
    #[arg(long, default_value_t = SpannParams::default().eps1)]
    pub eps1: f32,
    /// Vector encoding, f32 | f16 | sq8: of the postings (spann) or of the
    /// graph's vectors (hnsw).
    #[arg(long, default_value = "f32")]
    pub encoding: Encoding,
    /// SPANN: encoding of the head vectors in the in-memory head graph,
    /// f32 | f16 | sq8.
    #[arg(long, default_value = "f32")]
    pub head_encoding: VectorEncoding,
    /// SPANN: posting length limit in 4 KiB pages.
    #[arg(long, default_value_t = SpannParams::default().max_posting_pages)]
    pub max_posting_pages: u32,
}

impl SpannBuildArgs {
    /// `--encoding` as the storage of an HNSW graph's vectors.
    pub fn graph_encoding(&self) -> VectorEncoding {
        match self.encoding {
            Encoding::F32 => VectorEncoding::F32,
            Encoding::F16 => VectorEncoding::F16,
            Encoding::Sq8 => VectorEncoding::Sq8,
        }
    }

    pub fn params(&self, m: usize, ef_construction: usize) -> SpannParams {
        let d = SpannParams::default();
        SpannParams {
            head_ratio: self.head_ratio,
            replicas: self.replicas,
            replica_candidates: d.replica_candidates.max(self.replicas),
            eps1: self.eps1,
            encoding: self.encoding,
            head_encoding: self.head_encoding,
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
    pub(super) base: PathBuf,
    /// Output: a directory for spann, a file for hnsw.
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    pub(super) out: Option<PathBuf>,
    /// Build a collection of this server data directory instead of a bare
    /// index (with --collection); `quiver serve --data DATA` opens it.
    #[arg(long, requires = "collection")]
    pub(super) data: Option<PathBuf>,
    /// Name of the collection to build in --data (refused if it exists).
    #[arg(long, requires = "data")]
    pub(super) collection: Option<String>,
    /// l2 | ip | cosine [default: l2; required with --collection].
    #[arg(long)]
    pub(super) metric: Option<Metric>,
    /// hnsw | spann [default: spann; collections are always hnsw].
    #[arg(long, value_enum)]
    pub(super) index: Option<IndexKind>,
    /// HNSW M (of the head graph for spann) [default: 16, the server's default].
    #[arg(long)]
    pub(super) m: Option<usize>,
    /// HNSW efConstruction [default: 200, the server's default].
    #[arg(long)]
    pub(super) ef_construction: Option<usize>,
    /// Use only the first N base vectors.
    #[arg(long)]
    pub(super) limit: Option<usize>,
    /// Build threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub(super) build_threads: usize,
    #[command(flatten)]
    pub(super) spann: SpannBuildArgs,
    #[command(flatten)]
    pub(super) bulk: super::bulk::BulkArgs,
}

pub fn run(a: IndexArgs) -> anyhow::Result<()> {
    let Some(out) = a.out.clone() else {
        return super::bulk::run(a);
    };
    if a.bulk.is_set() {
        bail!("--start-id, --batch and --fsync apply only to --data/--collection builds");
    }
    let metric = a.metric.unwrap_or(Metric::L2);
    let defaults = HnswParams::default();
    let (m, ef_construction) = (
        a.m.unwrap_or(defaults.m),
        a.ef_construction.unwrap_or(defaults.ef_construction),
    );
    let base = dataset::load_vectors(&a.base, a.limit)
        .with_context(|| format!("reading --base {}", a.base.display()))?;
    if base.is_empty() {
        bail!("--base {} holds no vectors", a.base.display());
    }
    let (n, dim) = (base.len(), base.dim);
    let pool = super::pool(a.build_threads)?;
    let started = Instant::now();
    match a.index.unwrap_or(IndexKind::Spann) {
        IndexKind::Spann => {
            let params = a.spann.params(m, ef_construction);
            let index = pool
                .install(|| Spann::build(&out, base, metric, params, OpenParams::default(), true))
                .with_context(|| format!("building SPANN index in {}", out.display()))?;
            let lens = index.posting_lengths();
            out!(
                "spann: {n} x {dim} in {:.1} s; {} heads ({:.1}%), {} entries ({:.2} per vector), \
                 longest posting {}; memory {:.1} MiB ({:.1}% of raw), postings {:.1} MiB -> {}",
                started.elapsed().as_secs_f64(),
                index.heads(),
                100.0 * index.heads() as f64 / n as f64,
                lens.iter().map(|&l| l as u64).sum::<u64>(),
                lens.iter().map(|&l| l as f64).sum::<f64>() / n as f64,
                lens.iter().max().unwrap_or(&0),
                index.memory_bytes() as f64 / (1 << 20) as f64,
                100.0 * index.memory_bytes() as f64 / (n * dim * 4) as f64,
                index.disk_bytes() as f64 / (1 << 20) as f64,
                out.display()
            );
        }
        IndexKind::Hnsw => {
            let params = HnswParams {
                m,
                ef_construction,
                ..defaults
            };
            let encoding = a.spann.graph_encoding();
            let index = pool.install(|| {
                Hnsw::build_owned_encoded(base.data, dim, metric, params, encoding, true)
            })?;
            index
                .save(&out)
                .with_context(|| format!("saving {}", out.display()))?;
            out!(
                "hnsw: {n} x {dim} in {:.1} s; {encoding} vectors; memory {:.1} MiB -> {}",
                started.elapsed().as_secs_f64(),
                index.memory_bytes() as f64 / (1 << 20) as f64,
                out.display()
            );
        }
    }
    Ok(())
}
