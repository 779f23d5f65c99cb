//! `quiver bench`: build an index over a dataset, then sweep the search
//! setting and report recall@k, QPS and latency percentiles per setting.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;

use quiver::dataset::{self, Neighbors, VectorSet};
use quiver::distance::{self, Metric};
use quiver::filter::plan::PlanChoice;
use quiver::hnsw::{ExactSource, Hnsw, HnswParams, Neighbor, VectorEncoding};
use quiver::score;
use quiver::spann::{IoMode, OpenParams, SearchParams, SearchStats, Spann, SpannParams};

use super::build_args::{IndexKind, SpannBuildArgs};

#[derive(Args)]
pub struct BenchArgs {
    /// Base vectors (.fvecs, .bvecs, .fbin, .u8bin, .i8bin, .hdf5).
    #[arg(long, required_unless_present = "synthetic")]
    base: Option<PathBuf>,
    /// Query vectors.
    #[arg(long, required_unless_present = "synthetic")]
    query: Option<PathBuf>,
    /// Ground truth (.ibin or .ivecs); computed exactly when absent.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Generate clustered data instead of reading files: `N,D` (1,000 extra queries).
    #[arg(long, conflicts_with_all = ["base", "query", "gt"])]
    synthetic: Option<String>,
    /// l2 | ip | cosine.
    #[arg(long, default_value = "l2")]
    metric: Metric,
    #[arg(long, value_enum, default_value = "hnsw")]
    index: IndexKind,
    /// HNSW M (neighbours per node; 2M on layer 0).
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW efConstruction.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// Search beam widths to sweep, comma-separated.
    #[arg(long, default_value = "10,20,40,80,160,320", value_parser = super::parse_list)]
    ef: std::vec::Vec<usize>,
    /// Neighbours per query (recall@k).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Search threads (1 = one thread, queries in sequence).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Build threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    build_threads: usize,
    /// Use only the first N base vectors.
    #[arg(long)]
    limit: Option<usize>,
    /// Use only the first N queries.
    #[arg(long)]
    query_limit: Option<usize>,
    /// Passes over the queries per setting; the median pass is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Save the built index to this file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Load a saved index instead of building one (it must hold the same base).
    #[arg(long, conflicts_with = "save")]
    load: Option<PathBuf>,
    /// SPANN: postings read per query to sweep, comma-separated.
    #[arg(long, default_value = "4,8,16,32,64", value_parser = super::parse_list)]
    nprobe: std::vec::Vec<usize>,
    /// SPANN: read postings with O_DIRECT, bypassing the page cache.
    #[arg(long)]
    direct_io: bool,
    /// SPANN: 1+ε₂, read only heads within this ratio of the nearest head's distance.
    #[arg(long)]
    max_dist_ratio: Option<f32>,
    /// SPANN: candidates re-ranked at full precision (compressed postings);
    /// 0 skips the re-rank round [default: 64 for SQ8 postings, 0 for f16].
    #[arg(long)]
    rerank: Option<usize>,
    /// HNSW on f16/SQ8 codes: re-rank factors to sweep (the best
    /// max(k, r*k) candidates re-scored with f32 vectors; 0 = none), comma-separated.
    #[arg(long, default_value = "0", value_parser = super::parse_list)]
    hnsw_rerank: std::vec::Vec<usize>,
    /// HNSW re-rank: keep the f32 vectors in memory, or in a vector file
    /// written beside --save (or --load) and read through the page cache.
    #[arg(long, default_value = "memory")]
    rerank_vectors: RerankAt,
    /// SPANN: threads issuing posting reads per query.
    #[arg(long, default_value_t = 32)]
    io_threads: usize,
    /// Filtered search: one JSON payload per base point (line i = point i),
    /// every field indexed. Needs --filters.
    #[arg(long, requires = "filters")]
    attributes: Option<PathBuf>,
    /// Filtered search: a JSON array of {"name", "filter"} (the filter
    /// language of the README); sweeps --ef for each, with exact filtered
    /// ground truth. Needs --attributes (HNSW only).
    #[arg(long, requires = "attributes")]
    filters: Option<PathBuf>,
    /// Filtered search: the planner's choice (auto), or every query by
    /// exact scan (exact) or filtered graph traversal (approximate).
    #[arg(long, value_enum, default_value = "auto")]
    plan: PlanArg,
    #[command(flatten)]
    spann: SpannBuildArgs,
}

/// Where `bench` keeps the f32 vectors of a re-ranked HNSW graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RerankAt {
    Memory,
    Disk,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanArg {
    Auto,
    Exact,
    Approximate,
}

/// One row of the sweep.
#[derive(Serialize)]
struct Run {
    #[serde(skip_serializing_if = "Option::is_none")]
    ef: Option<usize>,
    /// HNSW: re-rank factor (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    rerank: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nprobe: Option<usize>,
    recall: f64,
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
    /// SPANN: postings read per query (mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_postings: Option<f64>,
    /// SPANN: bytes read per query (mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_bytes_read: Option<f64>,
    /// SPANN: read requests per query (mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_ios: Option<f64>,
    /// SPANN: dependent rounds of reads per query (mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_rounds: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    index: IndexKind,
    dataset: String,
    metric: Metric,
    n: usize,
    dim: usize,
    queries: usize,
    k: usize,
    m: usize,
    ef_construction: usize,
    build_threads: usize,
    search_threads: usize,
    kernels: &'static str,
    build_seconds: f64,
    index_bytes: u64,
    raw_vector_bytes: u64,
    /// HNSW: how the graph stores its vectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<VectorEncoding>,
    /// SPANN: settings of the build, heads, posting file size, I/O mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    spann: Option<SpannInfo>,
    runs: Vec<Run>,
}

#[derive(Serialize)]
struct SpannInfo {
    params: SpannParams,
    heads: usize,
    disk_bytes: u64,
    direct_io: bool,
    max_dist_ratio: Option<f32>,
    rerank: usize,
    io_threads: usize,
}

struct Data {
    name: String,
    base: VectorSet,
    query: VectorSet,
    gt: Option<Neighbors>,
}

fn load(a: &BenchArgs) -> anyhow::Result<Data> {
    if let Some(spec) = &a.synthetic {
        let (n, d) = spec
            .split_once(',')
            .and_then(|(n, d)| {
                Some((
                    n.trim().parse::<usize>().ok()?,
                    d.trim().parse::<usize>().ok()?,
                ))
            })
            .filter(|&(n, d)| n > 0 && d > 0)
            .with_context(|| {
                format!("--synthetic {spec:?}: expected N,D with N, D > 0 (e.g. 100000,128)")
            })?;
        let nq = a.query_limit.unwrap_or(1000);
        let mut base = dataset::synthetic::clustered(n + nq, d, 42);
        let query = base.split_off(n);
        return Ok(Data {
            name: format!("synthetic-{n}x{d}"),
            base,
            query,
            gt: None,
        });
    }
    let (Some(bp), Some(qp)) = (&a.base, &a.query) else {
        bail!("--base and --query are required without --synthetic");
    };
    let base = dataset::load_vectors(bp, a.limit)
        .with_context(|| format!("reading --base {}", bp.display()))?;
    let query = dataset::load_vectors(qp, a.query_limit)
        .with_context(|| format!("reading --query {}", qp.display()))?;
    let gt = match &a.gt {
        Some(g) if a.limit.is_none() => Some(
            dataset::load_neighbors(g).with_context(|| format!("reading --gt {}", g.display()))?,
        ),
        Some(_) => {
            tracing::warn!("--limit changes the base: ignoring --gt and computing ground truth");
            None
        }
        None => None,
    };
    Ok(Data {
        name: bp.display().to_string(),
        base,
        query,
        gt,
    })
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if a.k == 0 {
        bail!("--k must be at least 1");
    }
    if a.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if a.ef.is_empty() || a.ef.contains(&0) {
        bail!("--ef needs one or more values >= 1");
    }
    if a.nprobe.is_empty() || a.nprobe.contains(&0) {
        bail!("--nprobe needs one or more values >= 1");
    }
    let mut data = load(&a)?;
    if data.base.dim != data.query.dim {
        bail!(
            "base has dimension {}, queries {}",
            data.base.dim,
            data.query.dim
        );
    }
    if data.base.is_empty() || data.query.is_empty() {
        bail!("base and queries must not be empty");
    }
    let gt = match data.gt {
        Some(gt) => {
            if gt.len() < data.query.len() || gt.k < a.k {
                bail!(
                    "--gt has {} rows of {} neighbours; need {} rows of at least {}",
                    gt.len(),
                    gt.k,
                    data.query.len(),
                    a.k
                );
            }
            gt
        }
        None => {
            tracing::info!(
                base = data.base.len(),
                queries = data.query.len(),
                "computing exact ground truth"
            );
            let bar = ProgressBar::new(data.query.len() as u64);
            let gt = super::pool(a.build_threads)?.install(|| {
                dataset::gt::ground_truth_with_progress(
                    &data.base,
                    &data.query,
                    a.k,
                    a.metric,
                    Some(&bar),
                )
            })?;
            bar.finish_and_clear();
            gt
        }
    };

    let (base_len, base_dim) = (data.base.len(), data.base.dim);
    let raw_vector_bytes = (base_len * base_dim * 4) as u64;
    if matches!(a.index, IndexKind::Spann) && a.filters.is_some() {
        bail!("--filters runs on the HNSW index (--index hnsw)");
    }
    if let IndexKind::Spann = a.index {
        let data = Data {
            name: data.name,
            base: data.base,
            query: data.query,
            gt: None,
        };
        return run_spann(&a, data, gt);
    }
    let params = HnswParams {
        m: a.m,
        ef_construction: a.ef_construction,
        ..Default::default()
    };
    let build_pool = super::pool(a.build_threads)?;
    let build_threads = build_pool.current_num_threads();
    tracing::info!(
        n = base_len,
        dim = base_dim,
        m = a.m,
        ef_construction = a.ef_construction,
        threads = build_threads,
        "building"
    );
    let started = Instant::now();
    let index = match &a.load {
        Some(p) => {
            let index =
                Hnsw::load(p, 0).with_context(|| format!("loading --load {}", p.display()))?;
            if index.len() != base_len || index.dim() != base_dim || index.metric() != a.metric {
                bail!(
                    "--load {}: index holds {} x {} ({}), base is {} x {} ({})",
                    p.display(),
                    index.len(),
                    index.dim(),
                    index.metric(),
                    base_len,
                    base_dim,
                    a.metric
                );
            }
            index
        }
        None => {
            // The base is not needed after the ground truth: hand it over so
            // the build holds one copy of the vectors, not two.
            let owned = std::mem::take(&mut data.base.data);
            let encoding = a.spann.graph_encoding();
            if a.hnsw_rerank.iter().any(|&r| r > 0) {
                // Keep the f32 vectors beside the codes for re-ranking.
                build_pool.install(|| {
                    Hnsw::build_owned(owned, base_dim, a.metric, params, true)?
                        .reencode_exact(encoding)
                })?
            } else {
                build_pool.install(|| {
                    Hnsw::build_owned_encoded(owned, base_dim, a.metric, params, encoding, true)
                })?
            }
        }
    };
    let mut index = index;
    let wanted = a.spann.graph_encoding();
    if a.load.is_some() && index.encoding() == VectorEncoding::F32 && wanted != VectorEncoding::F32
    {
        // An f32 graph loaded to run as f16/SQ8: the same graph on codes,
        // with its f32 vectors kept for re-ranking.
        index = index.reencode_exact(wanted)?;
    }
    if a.rerank_vectors == RerankAt::Disk && index.exact_source() == ExactSource::Memory {
        let Some(p) = a.save.as_ref().or(a.load.as_ref()) else {
            bail!("--rerank-vectors disk writes the vector file beside --save or --load: give one");
        };
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        let name = format!(
            "{}.vec.qvf",
            p.file_name().unwrap_or_default().to_string_lossy()
        );
        index
            .spill_exact_vectors(&quiver_storage::backend::FsBackend, &dir, &name)
            .context("writing the re-rank vector file")?;
    }
    if a.hnsw_rerank.iter().any(|&r| r > 0)
        && index.encoding() != VectorEncoding::F32
        && index.exact_source() == ExactSource::None
    {
        bail!("--hnsw-rerank needs the f32 vectors: build the index here rather than --load a lossy one");
    }
    let build_seconds = started.elapsed().as_secs_f64();
    tracing::info!(build_seconds, index_bytes = index.memory_bytes(), "built");
    if let Some(p) = &a.save {
        index
            .save(p)
            .with_context(|| format!("saving --save {}", p.display()))?;
    }

    if let (Some(attrs), Some(filters)) = (&a.attributes, &a.filters) {
        let choice = match a.plan {
            PlanArg::Auto => PlanChoice::Auto,
            PlanArg::Exact => PlanChoice::Exact,
            PlanArg::Approximate => PlanChoice::Approximate,
        };
        let reports = super::bench_filter::run(
            &index,
            &data.query,
            a.metric,
            attrs,
            filters,
            &a.ef,
            a.k,
            a.runs,
            choice,
        )?;
        if let Some(path) = &a.json {
            let report = serde_json::json!({
                "dataset": data.name,
                "n": base_len,
                "queries": data.query.len(),
                "k": a.k,
                "m": a.m,
                "ef_construction": a.ef_construction,
                "kernels": distance::kernels().name,
                "build_seconds": build_seconds,
                "filters": reports,
            });
            std::fs::write(path, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("writing --json {}", path.display()))?;
        }
        return Ok(());
    }

    let search_pool = super::pool(a.threads)?;
    let mut runs = Vec::new();
    out!(
        "{:>6} {:>6} {:>8} {:>10} {:>9} {:>9}",
        "rerank",
        "ef",
        "recall",
        "QPS",
        "p50 us",
        "p99 us"
    );
    for (&rerank, &ef) in a
        .hnsw_rerank
        .iter()
        .flat_map(|r| a.ef.iter().map(move |e| (r, e)))
    {
        let mut passes = Vec::with_capacity(a.runs.max(1));
        let mut results = Vec::new();
        for _ in 0..a.runs.max(1) {
            let (r, lat, secs) = if a.threads == 1 {
                search_sequential(&index, &data.query, a.k, ef, rerank)?
            } else {
                search_pool.install(|| search_parallel(&index, &data.query, a.k, ef, rerank))?
            };
            results = r;
            passes.push((secs, lat));
        }
        passes.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (secs, mut lat) = passes.swap_remove(passes.len() / 2);
        lat.sort_by(f64::total_cmp);
        let run = Run {
            ef: Some(ef),
            rerank: Some(rerank),
            nprobe: None,
            mean_postings: None,
            mean_bytes_read: None,
            mean_ios: None,
            mean_rounds: None,
            recall: dataset::recall_at_k(&results, &gt, a.k),
            qps: data.query.len() as f64 / secs,
            p50_us: percentile(&lat, 0.50),
            p99_us: percentile(&lat, 0.99),
            mean_us: lat.iter().sum::<f64>() / lat.len() as f64,
        };
        out!(
            "{:>6} {:>6} {:>8.4} {:>10.0} {:>9.1} {:>9.1}",
            rerank,
            ef,
            run.recall,
            run.qps,
            run.p50_us,
            run.p99_us
        );
        runs.push(run);
    }
    out!(
        "build {:.2} s on {} threads; index {:.1} MiB ({:.1} MiB raw vectors, {} stored); kernels {}",
        build_seconds,
        build_threads,
        index.memory_bytes() as f64 / (1 << 20) as f64,
        raw_vector_bytes as f64 / (1 << 20) as f64,
        index.encoding(),
        distance::kernels().name
    );
    if let Some(path) = &a.json {
        let report = Report {
            index: a.index,
            dataset: data.name,
            metric: a.metric,
            n: base_len,
            dim: base_dim,
            queries: data.query.len(),
            k: a.k,
            m: a.m,
            ef_construction: a.ef_construction,
            build_threads,
            search_threads: a.threads,
            kernels: distance::kernels().name,
            build_seconds,
            index_bytes: index.memory_bytes() as u64,
            raw_vector_bytes,
            encoding: Some(index.encoding()),
            spann: None,
            runs,
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing --json {}", path.display()))?;
    }
    Ok(())
}

type Pass = (Vec<Vec<u32>>, Vec<f64>, f64);

/// One query: the plain search, or with `rerank > 0` the re-ranked one
/// (query prepared in `buf`).
fn search_one(
    index: &Hnsw,
    q: &[f32],
    k: usize,
    ef: usize,
    rerank: usize,
    buf: &mut Vec<f32>,
    out: &mut Vec<Neighbor>,
) -> anyhow::Result<()> {
    if rerank == 0 {
        index.search_into(q, k, ef, None, out)?;
    } else {
        let p = score::prepare(q, index.dim(), index.metric(), buf)
            .map_err(|e| anyhow::anyhow!("query: {e:?}"))?;
        *out = index.search_rerank(p, k, ef, rerank)?;
    }
    Ok(())
}

fn search_sequential(
    index: &Hnsw,
    queries: &VectorSet,
    k: usize,
    ef: usize,
    rerank: usize,
) -> anyhow::Result<Pass> {
    let mut out: Vec<Neighbor> = Vec::with_capacity(k);
    let mut buf = Vec::with_capacity(index.dim());
    let mut results = Vec::with_capacity(queries.len());
    let mut lat = Vec::with_capacity(queries.len());
    let started = Instant::now();
    for q in queries.rows() {
        let t = Instant::now();
        search_one(index, q, k, ef, rerank, &mut buf, &mut out)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        results.push(out.iter().map(|n| n.id.0).collect());
    }
    Ok((results, lat, started.elapsed().as_secs_f64()))
}

fn search_parallel(
    index: &Hnsw,
    queries: &VectorSet,
    k: usize,
    ef: usize,
    rerank: usize,
) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let per: Vec<(Vec<u32>, f64)> = queries
        .data
        .par_chunks(queries.dim)
        .map(|q| {
            let t = Instant::now();
            let (mut r, mut buf) = (Vec::with_capacity(k), Vec::new());
            search_one(index, q, k, ef, rerank, &mut buf, &mut r)?;
            Ok((
                r.iter().map(|n| n.id.0).collect(),
                t.elapsed().as_secs_f64() * 1e6,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let secs = started.elapsed().as_secs_f64();
    let (results, lat) = per.into_iter().unzip();
    Ok((results, lat, secs))
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The SPANN path of `quiver bench`: build (or `--load` a directory), then
/// sweep `--nprobe`.
fn run_spann(a: &BenchArgs, mut data: Data, gt: Neighbors) -> anyhow::Result<()> {
    let (base_len, base_dim) = (data.base.len(), data.base.dim);
    let raw_vector_bytes = (base_len * base_dim * 4) as u64;
    let opts = OpenParams {
        io: if a.direct_io {
            IoMode::Direct
        } else {
            IoMode::Buffered
        },
        io_threads: a.io_threads.max(1),
        ..OpenParams::default()
    };
    let build_pool = super::pool(a.build_threads)?;
    let build_threads = build_pool.current_num_threads();
    let started = Instant::now();
    let index = match (&a.load, &a.save) {
        (Some(dir), _) => {
            let index = Spann::open(dir, opts.clone())
                .with_context(|| format!("opening --load {}", dir.display()))?;
            if index.len() != base_len || index.dim() != base_dim || index.metric() != a.metric {
                bail!(
                    "--load {}: index holds {} x {} ({}), base is {} x {} ({})",
                    dir.display(),
                    index.len(),
                    index.dim(),
                    index.metric(),
                    base_len,
                    base_dim,
                    a.metric
                );
            }
            index
        }
        (None, save) => {
            let tmp;
            let dir = match save {
                Some(d) => d.clone(),
                None => {
                    tmp = tempdir_in_target()?;
                    tmp.clone()
                }
            };
            let params = a.spann.params(a.m, a.ef_construction);
            let base = std::mem::take(&mut data.base);
            build_pool
                .install(|| Spann::build(&dir, base, a.metric, params, opts.clone(), true))
                .with_context(|| format!("building SPANN index in {}", dir.display()))?
        }
    };
    let build_seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        build_seconds,
        heads = index.heads(),
        index_bytes = index.memory_bytes(),
        "built"
    );

    let search_pool = super::pool(a.threads)?;
    let mut runs = Vec::new();
    out!(
        "{:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11} {:>7} {:>6}",
        "nprobe",
        "recall",
        "QPS",
        "mean us",
        "p50 us",
        "p99 us",
        "postings",
        "bytes",
        "ios",
        "rounds"
    );
    let rerank = a
        .rerank
        .unwrap_or_else(|| SearchParams::rerank_for(index.params().encoding));
    for &nprobe in &a.nprobe {
        let sp = SearchParams {
            nprobe,
            max_dist_ratio: a.max_dist_ratio,
            head_ef: nprobe.max(64),
            rerank,
        };
        let search = |q: &[f32]| -> anyhow::Result<(Vec<u32>, SearchStats)> {
            let (hits, st) = index.search(q, a.k, &sp)?;
            Ok((hits.iter().map(|h| h.id).collect(), st))
        };
        let mut passes = Vec::with_capacity(a.runs.max(1));
        for _ in 0..a.runs.max(1) {
            let started = Instant::now();
            let per: Vec<(Vec<u32>, SearchStats)> = if a.threads == 1 {
                data.query
                    .rows()
                    .map(search)
                    .collect::<anyhow::Result<_>>()?
            } else {
                search_pool.install(|| {
                    data.query
                        .data
                        .par_chunks(data.query.dim)
                        .map(search)
                        .collect::<anyhow::Result<_>>()
                })?
            };
            passes.push((started.elapsed().as_secs_f64(), per));
        }
        passes.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (secs, per) = passes.swap_remove(passes.len() / 2);
        let nq = per.len() as f64;
        let mut lat: Vec<f64> = per.iter().map(|p| p.1.latency_us).collect();
        lat.sort_by(f64::total_cmp);
        let mean = |f: &dyn Fn(&SearchStats) -> f64| per.iter().map(|p| f(&p.1)).sum::<f64>() / nq;
        let results: Vec<Vec<u32>> = per.iter().map(|p| p.0.clone()).collect();
        let run = Run {
            ef: None,
            rerank: None,
            nprobe: Some(nprobe),
            recall: dataset::recall_at_k(&results, &gt, a.k),
            qps: nq / secs,
            p50_us: percentile(&lat, 0.50),
            p99_us: percentile(&lat, 0.99),
            mean_us: lat.iter().sum::<f64>() / nq,
            mean_postings: Some(mean(&|s| s.postings as f64)),
            mean_bytes_read: Some(mean(&|s| s.bytes as f64)),
            mean_ios: Some(mean(&|s| s.ios as f64)),
            mean_rounds: Some(mean(&|s| s.rounds as f64)),
        };
        out!(
            "{:>6} {:>8.4} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11.0} {:>7.1} {:>6.2}",
            nprobe,
            run.recall,
            run.qps,
            run.mean_us,
            run.p50_us,
            run.p99_us,
            run.mean_postings.unwrap_or(0.0),
            run.mean_bytes_read.unwrap_or(0.0),
            run.mean_ios.unwrap_or(0.0),
            run.mean_rounds.unwrap_or(0.0)
        );
        runs.push(run);
    }
    let mem = index.memory_bytes() as u64;
    out!(
        "build {:.2} s on {} threads; {} heads; resident {:.1} MiB ({:.1}% of {:.1} MiB raw vectors); \
         postings.dat {:.1} MiB; io {:?}; kernels {}",
        build_seconds,
        build_threads,
        index.heads(),
        mem as f64 / (1 << 20) as f64,
        100.0 * mem as f64 / raw_vector_bytes as f64,
        raw_vector_bytes as f64 / (1 << 20) as f64,
        index.disk_bytes() as f64 / (1 << 20) as f64,
        opts.io,
        distance::kernels().name
    );
    if let Some(path) = &a.json {
        let report = Report {
            index: a.index,
            dataset: data.name.clone(),
            metric: a.metric,
            n: base_len,
            dim: base_dim,
            queries: data.query.len(),
            k: a.k,
            m: a.m,
            ef_construction: a.ef_construction,
            build_threads,
            search_threads: a.threads,
            kernels: distance::kernels().name,
            build_seconds,
            index_bytes: mem,
            raw_vector_bytes,
            encoding: None,
            spann: Some(SpannInfo {
                params: *index.params(),
                heads: index.heads(),
                disk_bytes: index.disk_bytes(),
                direct_io: a.direct_io,
                max_dist_ratio: a.max_dist_ratio,
                rerank,
                io_threads: opts.io_threads,
            }),
            runs,
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing --json {}", path.display()))?;
    }
    Ok(())
}

/// A fresh directory for an index built without `--save` (under the system
/// temp directory, named by process id).
fn tempdir_in_target() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("quiver-bench-spann-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
