//! WAL benchmarks: append throughput under group commit, and replay speed.
//!
//! `append/always/{1,8,64}w`: N threads each append records of 256 bytes with
//! `Fsync::Always`; throughput is total records (and bytes) per second.
//! `append/interval_10ms/{1,8}w`: the same with `Fsync::Interval(10 ms)`.
//! `replay/64MiB`: replay of a log of 256-byte records.
//!
//! Set `QUIVER_BENCH_DIR` to benchmark on a particular disk (default: the temp dir).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quiver_storage::{Fsync, Lsn, Wal, WalOptions};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const RECORD: usize = 256;

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("QUIVER_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// Runs `writers` threads appending `per_writer` records each; returns the wall time.
fn run_appends(wal: &Arc<Wal>, writers: usize, per_writer: usize) -> Duration {
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let wal = wal.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let payload = vec![w as u8; RECORD];
                barrier.wait();
                for _ in 0..per_writer {
                    wal.append(1, &payload).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    let cases: [(&str, Fsync, &[usize]); 2] = [
        ("always", Fsync::Always, &[1, 8, 64]),
        (
            "interval_10ms",
            Fsync::Interval(Duration::from_millis(10)),
            &[1, 8],
        ),
    ];
    for (name, fsync, writer_counts) in cases {
        for &writers in writer_counts {
            // Records per writer per iteration: enough that thread start-up is noise.
            let per_writer = if fsync == Fsync::Always {
                2048 / writers.min(8) / 8
            } else {
                4096 / writers
            };
            let per_iter = (writers * per_writer) as u64;
            g.throughput(Throughput::Elements(per_iter));
            let dir = tempdir();
            let wal = Arc::new(Wal::open(dir.path(), WalOptions::default().fsync(fsync)).unwrap());
            g.bench_with_input(
                BenchmarkId::new(name, format!("{writers}w")),
                &writers,
                |b, &writers| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| run_appends(&wal, writers, per_writer))
                            .sum()
                    })
                },
            );
            // Bytes per second, for the record.
            let t = run_appends(&wal, writers, per_writer);
            let bytes = per_iter as f64 * (RECORD + 17) as f64;
            eprintln!(
                "append/{name}/{writers}w: {:.0} records/s, {:.2} MB/s (one extra run)",
                per_iter as f64 / t.as_secs_f64(),
                bytes / t.as_secs_f64() / 1e6
            );
        }
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    let dir = tempdir();
    let total: usize = 64 << 20;
    let n = total / (RECORD + 17);
    {
        let wal = Wal::open(dir.path(), WalOptions::default().fsync(Fsync::Never)).unwrap();
        let payload = vec![7u8; RECORD];
        let batch: Vec<(u8, &[u8])> = (0..256).map(|_| (1u8, &payload[..])).collect();
        for _ in 0..n / 256 {
            wal.append_batch(&batch).unwrap();
        }
        wal.close().unwrap();
    }
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let bytes = (n / 256 * 256 * (RECORD + 17)) as u64;
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("64MiB", |b| {
        b.iter(|| {
            let mut count = 0;
            for rec in wal.replay(Lsn(0)).unwrap() {
                count += std::hint::black_box(rec.unwrap().payload.len()) / RECORD;
            }
            assert_eq!(count, n / 256 * 256);
        })
    });
    g.finish();
}

criterion_group!(benches, append, replay);
criterion_main!(benches);
