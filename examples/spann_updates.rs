//! Concurrent SPANN updates on real data: insert throughput with 1 and 2
//! inserting threads (each into a fresh index bulk-built from the first
//! half), search QPS alone and while inserts run, and the recall after.
//!
//!     cargo run --release --example spann_updates -- ../shared/datasets/minilm-npm-384 [N]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use quiver::dataset::{self, VectorSet};
use quiver::distance::Metric;
use quiver::spann::{OpenParams, SearchParams, Spann, SpannParams};

const BATCH: usize = 500;

fn recall(index: &Spann, queries: &VectorSet, gt: &dataset::Neighbors, sp: &SearchParams) -> f64 {
    let res: Vec<Vec<u32>> = queries
        .rows()
        .map(|q| {
            index
                .search(q, 10, sp)
                .map(|r| r.0.iter().map(|h| h.id).collect())
                .unwrap_or_default()
        })
        .collect();
    dataset::recall_at_k(&res, gt, 10)
}

/// Searches one query after another until `stop`; returns queries run.
fn search_loop(index: &Spann, queries: &VectorSet, sp: &SearchParams, stop: &AtomicBool) -> usize {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let q = queries.row(n % queries.len());
        if index.search(q, 10, sp).is_err() {
            break;
        }
        n += 1;
    }
    n
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/datasets/minilm-npm-384".into());
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let base = dataset::load_vectors(format!("{dir}/base.fbin"), Some(n))?;
    let queries = dataset::load_vectors(format!("{dir}/query.fbin"), Some(200))?;
    let gt = dataset::ground_truth(&base, &queries, 10, Metric::Cosine)?;
    let dim = base.dim;
    let mut first = base.clone();
    let rest = first.split_off(n / 2);
    let params = SpannParams::default();
    let sp = SearchParams {
        nprobe: 16,
        ..SearchParams::default()
    };
    let opts = OpenParams {
        io_threads: 2,
        ..OpenParams::default()
    };
    println!(
        "minilm {n} x {dim}: bulk build of {}, then {} inserts in batches of {BATCH}",
        first.len(),
        rest.len()
    );
    for threads in [1usize, 2] {
        let tmp = tempfile::tempdir()?;
        let index = Spann::build(
            tmp.path(),
            first.clone(),
            Metric::Cosine,
            params,
            opts.clone(),
            false,
        )?;
        let next = AtomicUsize::new(0);
        let batches: Vec<&[f32]> = rest.data.chunks(BATCH * dim).collect();
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = batches.get(b) else { break };
                    index.insert_batch(chunk).expect("insert");
                });
            }
        });
        let secs = started.elapsed().as_secs_f64();
        let copies = index.replica_counts()?;
        println!(
            "{threads} inserting thread(s): {:.0} inserts/s ({secs:.1} s); recall@10 nprobe 16 after: {:.4}; \
             {} heads, {:.2} copies/vector, {} without a copy; {:?}",
            rest.len() as f64 / secs,
            recall(&index, &queries, &gt, &sp),
            index.heads(),
            copies.iter().map(|&c| f64::from(c)).sum::<f64>() / copies.len() as f64,
            copies.iter().filter(|&&c| c == 0).count(),
            index.update_stats()
        );
    }

    // Search QPS alone, then with one thread inserting.
    let tmp = tempfile::tempdir()?;
    let index = Spann::build(
        tmp.path(),
        first.clone(),
        Metric::Cosine,
        params,
        opts,
        false,
    )?;
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let idle = std::thread::scope(|s| {
        let h = s.spawn(|| search_loop(&index, &queries, &sp, &stop));
        std::thread::sleep(std::time::Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or(0)
    });
    let idle_qps = idle as f64 / started.elapsed().as_secs_f64();
    stop.store(false, Ordering::Relaxed);
    let started = Instant::now();
    let (busy, inserted) = std::thread::scope(|s| {
        let h = s.spawn(|| search_loop(&index, &queries, &sp, &stop));
        let mut inserted = 0;
        for chunk in rest.data.chunks(BATCH * dim) {
            index.insert_batch(chunk).expect("insert");
            inserted += chunk.len() / dim;
        }
        stop.store(true, Ordering::Relaxed);
        (h.join().unwrap_or(0), inserted)
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "search QPS (1 thread, nprobe 16): {idle_qps:.0} idle, {:.0} while 1 thread inserts \
         ({:.0} inserts/s meanwhile)",
        busy as f64 / secs,
        inserted as f64 / secs
    );
    Ok(())
}
