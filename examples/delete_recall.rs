//! How HNSW recall behaves as the deleted fraction grows, and what
//! `Hnsw::rebuild` gives back. Prints a markdown table (docs/BENCHMARKS.md).
//!
//!     cargo run --release --example delete_recall -- ../shared/datasets/minilm-npm-384

use std::time::Instant;

use quiver::dataset::{self, VectorSet};
use quiver::distance::Metric;
use quiver::hnsw::{Hnsw, HnswParams, NodeId};
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/datasets/minilm-npm-384".into());
    let base = dataset::load_vectors(format!("{dir}/base.fbin"), None)?;
    let queries = dataset::load_vectors(format!("{dir}/query.fbin"), None)?;
    let index = Hnsw::build(
        &base.data,
        base.dim,
        Metric::Cosine,
        HnswParams::default(),
        false,
    )?;
    let mut order: Vec<u32> = (0..base.len() as u32).collect();
    order.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(7));

    println!("| deleted | recall@10 ef=40 | QPS ef=40 | recall@10 ef=80 | QPS ef=80 | after rebuild: recall ef=40 / ef=80 |");
    println!("|---|---|---|---|---|---|");
    let mut deleted = 0;
    for frac in [0.0, 0.1, 0.2, 0.3, 0.5, 0.7] {
        let target = (frac * base.len() as f64) as usize;
        for &id in &order[deleted..target] {
            index.delete(NodeId(id))?;
        }
        deleted = target;
        let live: Vec<u32> = (0..base.len() as u32)
            .filter(|&i| !index.is_deleted(NodeId(i)))
            .collect();
        let mut live_set = VectorSet {
            dim: base.dim,
            data: Vec::with_capacity(live.len() * base.dim),
        };
        for &i in &live {
            live_set.data.extend_from_slice(base.row(i as usize));
        }
        let mut gt = dataset::ground_truth(&live_set, &queries, 10, Metric::Cosine)?;
        gt.data.iter_mut().for_each(|i| *i = live[*i as usize]);
        let run = |ix: &Hnsw, ef: usize, map: Option<&[NodeId]>| -> anyhow::Result<(f64, f64)> {
            let t = Instant::now();
            let mut res = Vec::with_capacity(queries.len());
            for q in queries.rows() {
                let r = ix.search(q, 10, ef)?;
                res.push(
                    r.iter()
                        .map(|n| map.map_or(n.id.0, |m| m[n.id.0 as usize].0))
                        .collect(),
                );
            }
            let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
            Ok((dataset::recall_at_k(&res, &gt, 10), qps))
        };
        let (r40, q40) = run(&index, 40, None)?;
        let (r80, q80) = run(&index, 80, None)?;
        let after = if frac > 0.0 {
            let (rebuilt, map) = index.rebuild(false)?;
            let (a40, _) = run(&rebuilt, 40, Some(&map))?;
            let (a80, _) = run(&rebuilt, 80, Some(&map))?;
            format!("{a40:.4} / {a80:.4}")
        } else {
            "-".into()
        };
        println!(
            "| {:.0}% | {r40:.4} | {q40:.0} | {r80:.4} | {q80:.0} | {after} |",
            frac * 100.0
        );
    }
    Ok(())
}
