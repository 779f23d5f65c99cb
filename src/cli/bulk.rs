//! `quiver index --data DATA --collection NAME`: the offline bulk path. It
//! builds a server collection from a dataset file without a server: the
//! collection gets the settings a server `Create` with the same flags would
//! give it, and row `i` gets id `start_id + i` as with `quiver import`.
//! Points go in through the collection's own write path in large batches,
//! then everything is checkpointed into segment files and the directory is
//! published under its name (`quiver::server::OfflineBuild`) for `quiver
//! serve --data DATA` to open at its next start.

use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use quiver::collection::{CollectionConfig, CollectionError, FsyncPolicy, Point, RerankVectors};
use quiver::dataset;
use quiver::server::OfflineBuild;

use super::build_args::{FsyncArg, IndexArgs, IndexKind, RerankVectorsArg};

/// The collection settings for these flags: the defaults a server `Create`
/// gives (`CollectionConfig::builder`) with the flags' values over them.
fn collection_config(a: &IndexArgs, dim: usize) -> anyhow::Result<CollectionConfig> {
    let Some(metric) = a.metric else {
        bail!("--metric is required with --collection");
    };
    let mut b = CollectionConfig::builder(dim, metric);
    if let Some(m) = a.m {
        b = b.hnsw_m(m);
    }
    if let Some(ef) = a.ef_construction {
        b = b.hnsw_ef_construction(ef);
    }
    if let Some(e) = a.bulk.hnsw_encoding {
        b = b.hnsw_encoding(e);
    }
    if let Some(r) = a.bulk.rerank {
        b = b.rerank(r);
    }
    if let Some(at) = a.bulk.rerank_vectors {
        b = b.rerank_vectors(match at {
            RerankVectorsArg::Memory => RerankVectors::Memory,
            RerankVectorsArg::Disk => RerankVectors::Disk,
        });
    }
    let fsync = match (a.bulk.fsync, a.bulk.fsync_interval_ms) {
        (None | Some(FsyncArg::Always), _) => FsyncPolicy::Always,
        (Some(FsyncArg::Never), _) => FsyncPolicy::Never,
        (Some(FsyncArg::Interval), Some(ms)) if ms > 0 => FsyncPolicy::IntervalMs(ms),
        (Some(FsyncArg::Interval), _) => {
            bail!("--fsync-interval-ms: a positive interval is required with --fsync interval")
        }
    };
    b.fsync(fsync).build().map_err(|e| match e {
        // Name the flag, not the settings field.
        CollectionError::InvalidArgument { field, message } => {
            let flag = match field.as_str() {
                "dim" => "dimension of --base",
                "hnsw.m" => "--m",
                "hnsw.ef_construction" => "--ef-construction",
                "rerank" => "--rerank",
                other => other,
            };
            anyhow::anyhow!("{flag}: {message}")
        }
        other => anyhow::anyhow!("{other}"),
    })
}

pub fn run(a: IndexArgs) -> anyhow::Result<()> {
    let (Some(data), Some(name)) = (a.data.clone(), a.collection.clone()) else {
        bail!("--data and --collection go together");
    };
    if matches!(a.index, Some(IndexKind::Spann)) {
        bail!("--index spann: collections index with HNSW (their memory tier); drop --index");
    }
    let batch = a.bulk.batch.unwrap_or(10_000);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let start_id = a.bulk.start_id.unwrap_or(0);
    let base = dataset::load_vectors(&a.base, a.limit)
        .with_context(|| format!("reading --base {}", a.base.display()))?;
    if base.is_empty() {
        bail!("--base {} holds no vectors", a.base.display());
    }
    let (n, dim) = (base.len(), base.dim);
    if start_id.checked_add(n as u64 - 1).is_none() {
        bail!("--start-id {start_id}: ids of {n} vectors overflow u64");
    }
    let config = collection_config(&a, dim)?;
    let build = OfflineBuild::create(&data, "--collection", &name, config)
        .with_context(|| format!("building collection {name:?} in {}", data.display()))?;

    let pool = super::pool(a.build_threads)?;
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "indexing {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    pool.install(|| -> anyhow::Result<()> {
        for first in (0..n).step_by(batch) {
            let end = (first + batch).min(n);
            let points = (first..end)
                .map(|i| Point {
                    id: start_id + i as u64,
                    vector: base.row(i).to_vec(),
                    payload: None,
                })
                .collect();
            build
                .collection()
                .upsert(points)
                .with_context(|| format!("writing rows {first}..{end} of --base"))?;
            bar.set_position(end as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let inserted = started.elapsed().as_secs_f64();
    let dir = pool
        .install(|| build.publish())
        .with_context(|| format!("publishing collection {name:?} in {}", data.display()))?;
    let secs = started.elapsed().as_secs_f64();
    out!(
        "collection {name:?}: {n} x {dim} indexed in {inserted:.1} s ({:.0} points/s), \
         checkpointed and published in {:.1} s -> {}",
        n as f64 / inserted,
        secs - inserted,
        dir.display()
    );
    Ok(())
}
