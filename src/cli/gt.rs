//! `quiver gt`: exact ground truth for a base and query file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::ProgressBar;

use quiver::dataset;
use quiver::distance::Metric;

#[derive(Args)]
pub struct GtArgs {
    /// Base vectors (.fvecs, .bvecs, .fbin, .u8bin, .i8bin, .hdf5).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    query: PathBuf,
    /// Neighbours per query.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// l2 | ip | cosine.
    #[arg(long)]
    metric: Metric,
    /// Output file (.ibin or .ivecs).
    #[arg(long)]
    out: PathBuf,
    /// Use only the first N base vectors.
    #[arg(long)]
    limit: Option<usize>,
    /// Threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn run(a: GtArgs) -> anyhow::Result<()> {
    if a.k == 0 {
        anyhow::bail!("--k must be at least 1");
    }
    let base = dataset::load_vectors(&a.base, a.limit)
        .with_context(|| format!("reading --base {}", a.base.display()))?;
    let query = dataset::load_vectors(&a.query, None)
        .with_context(|| format!("reading --query {}", a.query.display()))?;
    let bar = ProgressBar::new(query.len() as u64);
    let started = std::time::Instant::now();
    let gt = super::pool(a.threads)?
        .install(|| {
            dataset::gt::ground_truth_with_progress(&base, &query, a.k, a.metric, Some(&bar))
        })
        .context("computing ground truth")?;
    bar.finish_and_clear();
    dataset::save_neighbors(&a.out, &gt)
        .with_context(|| format!("writing --out {}", a.out.display()))?;
    tracing::info!(
        queries = query.len(),
        base = base.len(),
        k = a.k,
        seconds = started.elapsed().as_secs_f64(),
        out = %a.out.display(),
        "ground truth written"
    );
    Ok(())
}
