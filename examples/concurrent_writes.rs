//! Many clients writing one point at a time under `fsync = always`: the
//! rate shows whether concurrent writers share fsyncs (group commit).
//!
//!     cargo run --release --example concurrent_writes -- [WRITERS] [WRITES_EACH] [DIR]
//!
//! Defaults: 32 writers × 100 single-point upserts of 128-d vectors, in a
//! temporary directory (pass DIR to measure a particular disk).

use std::sync::Arc;
use std::time::Instant;

use quiver::collection::{Collection, CollectionConfig, FsyncPolicy, Point};
use quiver::distance::Metric;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let writers: usize = args.get(1).map_or(Ok(32), |s| s.parse())?;
    let each: usize = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let tmp = tempfile::tempdir_in(args.get(3).map_or(std::env::temp_dir(), Into::into))?;
    let dim = 128;
    let mut config = CollectionConfig::new(dim, Metric::L2);
    config.fsync = FsyncPolicy::Always;
    let col = Collection::create(tmp.path().join("c"), config)?;
    for threads in [1, writers] {
        let per = each * writers / threads;
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                let col = Arc::clone(&col);
                s.spawn(move || {
                    for i in 0..per {
                        let id = (threads * 1_000_000 + t * per + i) as u64;
                        let vector = (0..dim)
                            .map(|j| ((id as usize * 31 + j) % 97) as f32)
                            .collect();
                        col.upsert(vec![Point {
                            id,
                            vector,
                            payload: None,
                        }])
                        .expect("upsert");
                    }
                });
            }
        });
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {threads} | {} | {:.0} |",
            threads * per,
            (threads * per) as f64 / secs
        );
    }
    col.close()?;
    Ok(())
}
