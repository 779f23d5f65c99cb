//! Where a SPANN index loses recall: for every true neighbour a query
//! misses, whether no probed posting holds it (the partition and the head
//! search) or a probed posting does and the scan dropped it (compressed
//! codes, the re-rank budget). Also the exact head rank a true neighbour
//! first becomes reachable at, i.e. the `nprobe` each needs.
//!
//!     cargo run --release --example spann_recall -- DATASET_DIR INDEX_DIR [NPROBES] [RERANK] [HEAD_EF_PER_NPROBE]
//!
//! `DATASET_DIR` holds `base.fbin`, `query.fbin` and `gt.ibin` (cosine);
//! `INDEX_DIR` a SPANN index built over that base (`quiver index --index spann`).

use quiver::dataset;
use quiver::distance::{self, Metric};
use quiver::hnsw::Neighbor;
use quiver::spann::{assign, OpenParams, SearchParams, Spann};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data = args
        .next()
        .unwrap_or_else(|| "../shared/datasets/minilm-npm-384".into());
    let dir = args.next().expect("INDEX_DIR");
    let nprobes: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "16,32,64,128".into())
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let rerank: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    // Head beam width as a multiple of nprobe (at least 64).
    let ef_mul: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let queries = dataset::load_vectors(format!("{data}/query.fbin"), Some(500))?;
    let gt = dataset::load_neighbors(format!("{data}/gt.ibin"))?;
    let index = Spann::open(std::path::Path::new(&dir), OpenParams::default())?;
    let k = 10;

    // id -> heads whose posting holds it
    let nheads = index.head_index().len() as u32;
    let mut where_: Vec<Vec<u32>> = vec![Vec::new(); index.len()];
    for h in 0..nheads {
        for id in index.posting_members(h)? {
            where_[id as usize].push(h);
        }
    }
    let copies: f64 = where_.iter().map(|w| w.len() as f64).sum::<f64>() / where_.len() as f64;
    println!(
        "{nheads} heads, {copies:.2} copies per vector; resident {} B, of which the head graph {} B",
        index.memory_bytes(),
        index.head_index().memory_bytes()
    );

    let dist = Metric::Cosine.kernel();
    // Exact head ranking of each query; rank of each head.
    let mut need = Vec::new(); // per true neighbour: best exact head rank (1-based)
    let mut rank_of = vec![u32::MAX; nheads as usize];
    for (qi, q) in queries.rows().enumerate() {
        let mut qv = q.to_vec();
        distance::normalize(&mut qv);
        let mut all: Vec<Neighbor> = Vec::new();
        assign::scan_heads(
            &index.head_index(),
            &dist,
            &qv,
            nheads as usize,
            None,
            &mut all,
        );
        for (r, n) in all.iter().enumerate() {
            rank_of[n.id.0 as usize] = r as u32 + 1;
        }
        for &t in &gt.row(qi)[..k] {
            let best = where_[t as usize]
                .iter()
                .map(|&h| rank_of[h as usize])
                .min()
                .unwrap_or(u32::MAX);
            need.push(best);
        }
        rank_of.fill(u32::MAX);
    }
    let total = need.len() as f64;
    print!("true neighbours reachable within the exact top-N heads:");
    for n in [8u32, 16, 32, 64, 128, 256, 512, 1024] {
        let f = need.iter().filter(|&&r| r <= n).count() as f64 / total;
        print!(" {n}: {f:.4}");
    }
    println!();

    println!("nprobe recall | in graph-probed postings | in exact top-nprobe | probed but dropped");
    for &nprobe in &nprobes {
        let sp = SearchParams {
            nprobe,
            head_ef: (ef_mul * nprobe).max(64),
            rerank,
            ..SearchParams::default()
        };
        let (mut found, mut probed, mut exact, mut dropped) = (0usize, 0usize, 0usize, 0usize);
        for (qi, q) in queries.rows().enumerate() {
            let (hits, _) = index.search(q, k, &sp)?;
            let mut qv = q.to_vec();
            distance::normalize(&mut qv);
            let heads = index.head_index().search(&qv, nprobe, sp.head_ef)?;
            let mut ex = Vec::new();
            assign::scan_heads(&index.head_index(), &dist, &qv, nprobe, None, &mut ex);
            for &t in &gt.row(qi)[..k] {
                let got = hits.iter().any(|h| h.id == t);
                let inp = heads.iter().any(|h| where_[t as usize].contains(&h.id.0));
                found += usize::from(got);
                probed += usize::from(inp);
                exact += usize::from(ex.iter().any(|h| where_[t as usize].contains(&h.id.0)));
                dropped += usize::from(inp && !got);
            }
        }
        println!(
            "{nprobe:>6} {:.4} | {:.4} | {:.4} | {:.4}",
            found as f64 / total,
            probed as f64 / total,
            exact as f64 / total,
            dropped as f64 / total
        );
    }
    Ok(())
}
