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
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use quiver::collection::Point;
use quiver::dataset;
use quiver::server::{pb, NewCollection, OfflineBuild};

use super::bench::IndexKind;
use super::index::IndexArgs;

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
    start_id: Option<u64>,
    /// Collection builds: points per write batch [default: 10000].
    #[arg(long)]
    batch: Option<usize>,
    /// Collection builds: the collection's fsync mode, always | interval | never [default: always].
    #[arg(long, value_enum)]
    fsync: Option<FsyncArg>,
    /// Collection builds: interval for `--fsync interval`.
    #[arg(long)]
    fsync_interval_ms: Option<u64>,
}

impl BulkArgs {
    /// Whether any of these flags was given.
    pub fn is_set(&self) -> bool {
        self.start_id.is_some()
            || self.batch.is_some()
            || self.fsync.is_some()
            || self.fsync_interval_ms.is_some()
    }
}

/// The `Create` request a server would get for these flags, so that the
/// collection's settings (and defaults) are exactly the server's.
fn create_request(
    a: &IndexArgs,
    name: &str,
    dim: usize,
) -> anyhow::Result<pb::CreateCollectionRequest> {
    let Some(metric) = a.metric else {
        bail!("--metric is required with --collection");
    };
    let to_u32 =
        |flag: &str, v: usize| u32::try_from(v).with_context(|| format!("{flag} {v} is too large"));
    Ok(pb::CreateCollectionRequest {
        name: name.to_string(),
        dimension: to_u32("dimension", dim)?,
        metric: pb::Metric::from(metric).into(),
        hnsw_m: a.m.map(|m| to_u32("--m", m)).transpose()?,
        hnsw_ef_construction: a
            .ef_construction
            .map(|e| to_u32("--ef-construction", e))
            .transpose()?,
        fsync: match a.bulk.fsync {
            None => pb::FsyncMode::Unspecified,
            Some(FsyncArg::Always) => pb::FsyncMode::Always,
            Some(FsyncArg::Interval) => pb::FsyncMode::Interval,
            Some(FsyncArg::Never) => pb::FsyncMode::Never,
        }
        .into(),
        fsync_interval_ms: a.bulk.fsync_interval_ms,
        ..Default::default()
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
    let config = NewCollection::try_from(create_request(&a, &name, dim)?)
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .config;
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
