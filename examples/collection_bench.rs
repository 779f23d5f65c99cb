//! Collection benchmarks: ingest rate per fsync policy, search while
//! ingesting (frozen memory segments merge into the SSD tier meanwhile),
//! recall and QPS against the SSD tier's nprobe, and time to reopen (after
//! a crash, after a graceful flush, fully merged). Prints markdown for
//! docs/BENCHMARKS.md.
//!
//!     cargo run --release --example collection_bench -- [N] [DIM] [DIR]
//!
//! Defaults: N = 1,000,000 points of synthetic clustered data, DIM = 128,
//! DIR = a temporary directory (use one on the disk you want to measure).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use quiver::collection::{Collection, CollectionConfig, FsyncPolicy, Point, SearchRequest};
use quiver::dataset::{self, VectorSet};
use quiver::distance::Metric;

fn points(data: &VectorSet, range: std::ops::Range<usize>) -> Vec<Point> {
    range
        .map(|i| Point {
            id: i as u64,
            vector: data.row(i).to_vec(),
            payload: None,
        })
        .collect()
}

fn ingest(
    col: &Collection,
    data: &VectorSet,
    range: std::ops::Range<usize>,
    batch: usize,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut start = range.start;
    while start < range.end {
        let end = (start + batch).min(range.end);
        col.upsert(points(data, start..end))?;
        start = end;
    }
    Ok((range.end - range.start) as f64 / t.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let dim: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let tmp = tempfile::tempdir_in(args.get(3).map_or(std::env::temp_dir(), Into::into))?;
    let nq = 500;
    let mut data = dataset::synthetic::clustered(n + nq, dim, 7);
    let queries = data.split_off(n);
    let cfg = |fsync| CollectionConfig {
        fsync,
        memory_tier_points: 250_000,
        ..CollectionConfig::new(dim, Metric::L2)
    };

    println!("### Ingest rate (synthetic {dim}-d, upsert batches, one client thread)\n");
    println!("| fsync | batch | points | points/s |");
    println!("|---|---:|---:|---:|");
    let small = n.min(50_000);
    for (name, policy, batch) in [
        ("always", FsyncPolicy::Always, 100),
        ("always", FsyncPolicy::Always, 1000),
        ("interval_ms=10", FsyncPolicy::IntervalMs(10), 1000),
        ("never", FsyncPolicy::Never, 1000),
    ] {
        let dir = tmp.path().join(format!("ingest-{name}-{batch}"));
        let col = Collection::create(&dir, cfg(policy))?;
        let rate = ingest(&col, &data, 0..small, batch)?;
        col.close()?;
        println!("| {name} | {batch} | {small} | {rate:.0} |");
    }

    println!("\n### Search while ingesting ({n} points, ef=64, k=10, one search thread)\n");
    let dir = tmp.path().join("big");
    let col = Collection::create(&dir, cfg(FsyncPolicy::IntervalMs(10)))?;
    let half = n / 2;
    let rate_first = ingest(&col, &data, 0..half, 1000)?;
    let done = AtomicBool::new(false);
    let (rate_second, (qps_busy, searched)) = std::thread::scope(|s| -> anyhow::Result<_> {
        let writer = s.spawn(|| {
            let r = ingest(&col, &data, half..n, 1000);
            done.store(true, Ordering::Release);
            r
        });
        let t = Instant::now();
        let mut count = 0usize;
        while !done.load(Ordering::Acquire) {
            let q = queries.row(count % nq).to_vec();
            col.search(&SearchRequest {
                vector: q,
                k: 10,
                ef: Some(64),
                nprobe: None,
                with_payload: false,
                with_vector: false,
                ..Default::default()
            })?;
            count += 1;
        }
        let qps = count as f64 / t.elapsed().as_secs_f64();
        Ok((
            writer
                .join()
                .map_err(|_| anyhow::anyhow!("writer panicked"))??,
            (qps, count),
        ))
    })?;
    let gt = dataset::ground_truth(&data, &queries, 10, Metric::L2)?;
    let run = |nprobe: Option<usize>| -> anyhow::Result<(f64, f64)> {
        let t = Instant::now();
        let results: Vec<Vec<u32>> = queries
            .rows()
            .map(|q| {
                col.search(&SearchRequest {
                    vector: q.to_vec(),
                    k: 10,
                    ef: Some(64),
                    nprobe,
                    with_payload: false,
                    with_vector: false,
                    ..Default::default()
                })
                .map(|r| r.iter().map(|p| p.id as u32).collect())
            })
            .collect::<Result<_, _>>()?;
        let qps = nq as f64 / t.elapsed().as_secs_f64();
        Ok((qps, dataset::recall_at_k(&results, &gt, 10)))
    };
    // Let the last background merge finish, so the idle figures see the final tiers.
    col.close()?;
    let (qps_idle, recall) = run(None)?;
    let stats = col.stats();
    println!("| phase | value |\n|---|---:|");
    println!("| ingest, first half (no searches) | {rate_first:.0} points/s |");
    println!("| ingest, second half (while searching) | {rate_second:.0} points/s |");
    println!("| search QPS while ingesting ({searched} queries) | {qps_busy:.0} |");
    println!("| search QPS idle | {qps_idle:.0} |");
    println!(
        "| recall@10 after ingest ({} points on SSD, {} in memory) | {recall:.4} |",
        stats.ssd_points,
        stats.points - stats.ssd_points
    );
    println!(
        "| merges into the SSD tier (last one) | {} ({:.1} s) |",
        stats.merges, stats.last_merge_seconds
    );
    println!(
        "| index memory (HNSW segments + SSD heads) | {:.0} MiB |",
        stats.index_memory_bytes as f64 / (1 << 20) as f64
    );

    println!("\n### Search effort after ingest (ef=64 in memory, k=10, one thread)\n");
    println!("| nprobe (SSD tier) | recall@10 | QPS |\n|---:|---:|---:|");
    for nprobe in [8, 16, 32, 64] {
        let (qps, recall) = run(Some(nprobe))?;
        println!("| {nprobe} | {recall:.4} | {qps:.0} |");
    }

    println!("\n### Reopen ({n} points)\n");
    println!("| state on disk | seconds |\n|---|---:|");
    drop(col);
    let t = Instant::now();
    let col = Collection::open(&dir)?;
    println!(
        "| open: SSD tier + WAL tail, as after a crash ({} points replayed) | {:.2} |",
        col.stats().active_points,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    col.flush()?;
    println!(
        "| flush: write the memory tier to a segment file (graceful shutdown) | {:.2} |",
        t.elapsed().as_secs_f64()
    );
    drop(col);
    let t = Instant::now();
    let col = Collection::open(&dir)?;
    println!(
        "| open after flush: SSD tier + segment file, nothing replayed | {:.2} |",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    col.close()?;
    println!(
        "| background merge of that segment into the SSD tier, after the open | {:.2} |",
        t.elapsed().as_secs_f64()
    );
    col.checkpoint_all()?;
    drop(col);
    let t = Instant::now();
    let col = Collection::open(&dir)?;
    println!(
        "| open: everything in the SSD tier | {:.2} |",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(col.count(), n);
    Ok(())
}
