//! `quiver index`: build an index over a dataset and write it to disk
//! (`--index spann`: a directory; `--index hnsw`: one file). With `--data
//! DIR --collection NAME` it builds a server collection instead (`bulk.rs`).

use std::time::Instant;

use anyhow::{bail, Context};

use quiver::dataset;
use quiver::distance::Metric;
use quiver::hnsw::{Hnsw, HnswParams};
use quiver::spann::{OpenParams, Spann};

use super::build_args::{IndexArgs, IndexKind};

pub fn run(a: IndexArgs) -> anyhow::Result<()> {
    let Some(out) = a.out.clone() else {
        return super::bulk::run(a);
    };
    if a.bulk.is_set() {
        bail!(
            "--start-id, --batch, --fsync, --hnsw-encoding, --rerank and --rerank-vectors apply only to --data/--collection builds"
        );
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
