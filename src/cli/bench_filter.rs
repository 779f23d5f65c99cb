//! `quiver bench --attributes FILE --filters FILE`: filtered search on a
//! built (or loaded) HNSW graph. Payload indexes are built from the
//! attributes (one JSON object per base point), the exact filtered ground
//! truth is computed by brute force over each filter's matching points, and
//! every query runs what a collection's memory segment runs: select the
//! matching slots from the indexes, plan (exact scan or filtered graph),
//! search. Reports recall@k, QPS, latency and the plan mix per filter and `ef`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde::Serialize;

use quiver::collection::{Payload, PointId, Value};
use quiver::dataset::VectorSet;
use quiver::distance::Metric;
use quiver::filter::plan::{self, PlanChoice, PlanKind};
use quiver::filter::{json, FieldType, Filter, PayloadIndex, SelectionCache, SlotSpace};
use quiver::hnsw::{FilterStats, Hnsw, NodeId};
use quiver::score;

use super::bench::percentile;

/// One filter's sweep.
#[derive(Serialize)]
pub struct FilterReport {
    name: String,
    filter: serde_json::Value,
    matching: u64,
    selectivity: f64,
    runs: Vec<FilterRun>,
}

#[derive(Serialize)]
struct FilterRun {
    ef: usize,
    recall: f64,
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    /// Queries per plan.
    plans: BTreeMap<&'static str, usize>,
    mean_distances: f64,
}

/// Reads one JSON payload per line (line i = point i).
fn read_attributes(path: &Path, n: usize) -> anyhow::Result<Vec<Option<Arc<Payload>>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --attributes {}", path.display()))?;
    let mut out = Vec::with_capacity(n);
    for (i, line) in text.lines().take(n).enumerate() {
        let p: Payload = serde_json::from_str(line)
            .with_context(|| format!("--attributes {} line {}", path.display(), i + 1))?;
        out.push(Some(Arc::new(p)));
    }
    if out.len() < n {
        bail!(
            "--attributes {} has {} lines for {n} base points",
            path.display(),
            out.len()
        );
    }
    Ok(out)
}

/// Indexes every field, typed by its first non-null scalar value.
fn index_all(payloads: &[Option<Arc<Payload>>]) -> PayloadIndex {
    let mut kinds: BTreeMap<String, FieldType> = BTreeMap::new();
    for p in payloads.iter().flatten() {
        for (k, v) in p.iter() {
            let kind = match v {
                Value::String(_) => FieldType::Keyword,
                Value::Int(_) => FieldType::Integer,
                Value::Float(_) => FieldType::Float,
                Value::Bool(_) => FieldType::Bool,
                _ => continue,
            };
            kinds.entry(k.clone()).or_insert(kind);
        }
    }
    let mut index = PayloadIndex::default();
    for (k, kind) in &kinds {
        index.create(
            k,
            *kind,
            payloads
                .iter()
                .enumerate()
                .map(|(s, p)| (s as u32, p.as_deref())),
        );
    }
    tracing::info!(fields = ?kinds, "payload indexes built");
    index
}

/// Runs every filter of `filters_path` at every `ef`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    index: &Hnsw,
    query: &VectorSet,
    metric: Metric,
    attributes: &Path,
    filters_path: &Path,
    efs: &[usize],
    k: usize,
    runs: usize,
    choice: PlanChoice,
) -> anyhow::Result<Vec<FilterReport>> {
    let n = index.len();
    let payloads = read_attributes(attributes, n)?;
    let pindex = index_all(&payloads);
    let text = std::fs::read_to_string(filters_path)
        .with_context(|| format!("reading --filters {}", filters_path.display()))?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--filters {}: a JSON array of {{name, filter}}",
            filters_path.display()
        )
    })?;
    let id_slots = |ids: &[PointId]| -> roaring::RoaringBitmap {
        ids.iter()
            .filter(|&&id| id < n as u64)
            .map(|&id| id as u32)
            .collect()
    };
    let space = SlotSpace {
        index: &pindex,
        payloads: &payloads,
        id_slots: &id_slots,
    };
    let prepared: Vec<Vec<f32>> = query
        .rows()
        .map(|q| {
            let mut buf = Vec::new();
            score::prepare(q, query.dim, metric, &mut buf).map(|p| p.as_slice().to_vec())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("query: {e:?}"))?;
    let mut reports = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let name = item
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("filter")
            .to_string();
        let fjson = item
            .get("filter")
            .with_context(|| format!("--filters entry {i} has no \"filter\""))?;
        let mut filter: Filter = json::from_json(fjson, &format!("filters[{i}].filter"))?;
        filter.validate(&format!("filters[{i}].filter"))?;
        let matching = space.select(&filter).slots;
        let gt = exact_gt(index, &prepared, &matching, metric, k);
        out!(
            "filter {name}: {} matching ({:.2} %)",
            matching.len(),
            100.0 * matching.len() as f64 / n as f64
        );
        out!(
            "{:>6} {:>8} {:>10} {:>9} {:>9}  plans",
            "ef",
            "recall",
            "QPS",
            "p50 us",
            "p99 us"
        );
        let mut fruns = Vec::new();
        for &ef in efs {
            let mut passes = Vec::new();
            for _ in 0..runs.max(1) {
                passes.push(pass(index, &space, &filter, &prepared, k, ef, choice)?);
            }
            passes.sort_by(|a, b| a.secs.total_cmp(&b.secs));
            let mut p = passes.swap_remove(passes.len() / 2);
            p.lat.sort_by(f64::total_cmp);
            let recall = recall(&p.results, &gt, k);
            let run = FilterRun {
                ef,
                recall,
                qps: prepared.len() as f64 / p.secs,
                p50_us: percentile(&p.lat, 0.5),
                p99_us: percentile(&p.lat, 0.99),
                plans: p.plans,
                mean_distances: p.distances as f64 / prepared.len() as f64,
            };
            out!(
                "{:>6} {:>8.4} {:>10.0} {:>9.1} {:>9.1}  {:?}",
                ef,
                run.recall,
                run.qps,
                run.p50_us,
                run.p99_us,
                run.plans
            );
            fruns.push(run);
        }
        reports.push(FilterReport {
            name,
            filter: fjson.clone(),
            matching: matching.len(),
            selectivity: matching.len() as f64 / n as f64,
            runs: fruns,
        });
    }
    Ok(reports)
}

struct Pass {
    results: Vec<Vec<u32>>,
    lat: Vec<f64>,
    secs: f64,
    plans: BTreeMap<&'static str, usize>,
    distances: u64,
}

/// One pass over the queries, in sequence: select, plan, search.
fn pass(
    index: &Hnsw,
    space: &SlotSpace<'_>,
    filter: &Filter,
    prepared: &[Vec<f32>],
    k: usize,
    ef: usize,
    choice: PlanChoice,
) -> anyhow::Result<Pass> {
    let mut p = Pass {
        results: Vec::with_capacity(prepared.len()),
        lat: Vec::with_capacity(prepared.len()),
        secs: 0.0,
        plans: BTreeMap::new(),
        distances: 0,
    };
    let metric = index.metric();
    // What a collection's tier does: repeated filters hit its selection cache.
    let cache = SelectionCache::default();
    let mut buf = Vec::with_capacity(index.dim());
    let started = Instant::now();
    for q in prepared {
        let t = Instant::now();
        let query = score::prepare_checked(q, metric, &mut buf)
            .map_err(|e| anyhow::anyhow!("query: {e:?}"))?;
        let sel = cache.get(filter, 0, || space.select(filter));
        let kind = plan::memory_plan(sel.slots.len(), index.len() as u64, ef, choice);
        let mut st = FilterStats::default();
        let hits = match kind {
            PlanKind::ExactScan => index.scan_allowed(query, k, &sel.slots, &mut st)?,
            PlanKind::FilteredGraph => {
                let dense = sel.dense();
                index.search_allowed(query, k, ef, |id| dense.contains(id), &mut st)?
            }
            _ => Vec::new(),
        };
        p.lat.push(t.elapsed().as_secs_f64() * 1e6);
        p.results.push(hits.iter().map(|h| h.id.0).collect());
        *p.plans.entry(kind.as_str()).or_default() += 1;
        p.distances += st.distances;
    }
    p.secs = started.elapsed().as_secs_f64();
    Ok(p)
}

/// The exact top `k` of each query among `matching`, nearest first.
fn exact_gt(
    index: &Hnsw,
    prepared: &[Vec<f32>],
    matching: &roaring::RoaringBitmap,
    metric: Metric,
    k: usize,
) -> Vec<Vec<u32>> {
    let ids: Vec<u32> = matching.iter().collect();
    let kernel = metric.kernel();
    prepared
        .par_iter()
        .map(|q| {
            let mut d: Vec<(f32, u32)> = ids
                .iter()
                .filter_map(|&id| {
                    index
                        .vector(NodeId(id))
                        .map(|v| (kernel.distance(q, &v), id))
                })
                .collect();
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.truncate(k);
            d.into_iter().map(|(_, id)| id).collect()
        })
        .collect()
}

/// Share of the true top-k found; queries with fewer than `k` matching
/// points count against what exists.
fn recall(found: &[Vec<u32>], gt: &[Vec<u32>], k: usize) -> f64 {
    let (mut hit, mut total) = (0usize, 0usize);
    for (f, g) in found.iter().zip(gt) {
        let g = &g[..g.len().min(k)];
        total += g.len();
        hit += f.iter().take(k).filter(|id| g.contains(id)).count();
    }
    if total == 0 {
        1.0
    } else {
        hit as f64 / total as f64
    }
}
