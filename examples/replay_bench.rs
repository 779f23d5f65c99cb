//! WAL replay speed: writes N single-point upserts (the worst case for
//! replay, one record per point), closes without writing the memory tier,
//! and times the reopen, which re-applies every record.
//!
//!     cargo run --release --example replay_bench -- [N] [DIM] [DIR]
//!
//! Defaults: N = 50,000 points of synthetic clustered data, DIM = 128,
//! DIR = a temporary directory.

use std::time::Instant;

use quiver::collection::{Collection, CollectionConfig, FsyncPolicy, Point};
use quiver::dataset;
use quiver::distance::Metric;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(50_000), |s| s.parse())?;
    let dim: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let tmp = tempfile::tempdir_in(args.get(3).map_or(std::env::temp_dir(), Into::into))?;
    let data = dataset::synthetic::clustered(n, dim, 7);
    let cfg = CollectionConfig {
        fsync: FsyncPolicy::Never,
        memory_tier_points: n + 1,
        ..CollectionConfig::new(dim, Metric::L2)
    };
    let dir = tmp.path().join("replay");
    let col = Collection::create(&dir, cfg)?;
    let t = Instant::now();
    for i in 0..n {
        col.upsert(vec![Point {
            id: i as u64,
            vector: data.row(i).to_vec(),
            payload: None,
        }])?;
    }
    let write = t.elapsed().as_secs_f64();
    col.close()?;
    drop(col);
    let t = Instant::now();
    let col = Collection::open(&dir)?;
    let open = t.elapsed().as_secs_f64();
    assert_eq!(col.count(), n);
    println!("| records (1 point each) | dim | write seconds | reopen (replay) seconds | replayed points/s |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {dim} | {write:.2} | {open:.2} | {:.0} |",
        n as f64 / open
    );
    Ok(())
}
