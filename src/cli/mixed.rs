//! `quiver mixed`: searches while an import runs, measured per phase. One
//! stream imports a dataset file at full speed (`UpsertStream`, as `quiver
//! import`) while `--clients` search clients (each one request in flight)
//! query it. Each search is counted in the phase it started in:
//!
//! - `import`: the import is streaming;
//! - `catch-up`: every point is acknowledged, the graph is still being built
//!   (the collection's `unindexed_points` is above 0);
//! - `idle`: the graph has caught up; runs `--idle-secs` more, the baseline.
//!
//! The report gives, per phase, searches, QPS, client p50/p99 and the
//! server's own `time_us` p50/p99, the import's acknowledged points/s and
//! the time the graph took to catch up, and the import/idle p99 ratio.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use quiver::dataset;
use quiver::server::pb;

use super::bench::percentile;
use super::client::{connect, runtime, status, unindexed_points, upsert_stream, ConnectArgs};

/// Phases, in order.
const PHASES: [&str; 3] = ["import", "catch-up", "idle"];

#[derive(Args)]
pub struct MixedArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Collection to create (cosine, no SSD tier) and import into; it must not exist.
    #[arg(long)]
    collection: String,
    /// Vectors to import (row i gets id i).
    #[arg(long)]
    input: PathBuf,
    /// Search vectors (used round-robin).
    #[arg(long)]
    queries: PathBuf,
    /// Import only the first N vectors.
    #[arg(long)]
    limit: Option<usize>,
    /// Concurrent search clients.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Points per streamed upsert batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Neighbours per search.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Search beam width (the collection's default when absent).
    #[arg(long)]
    ef: Option<u32>,
    /// The collection's `index_buffer_points` (0: writes wait for the graph).
    #[arg(long)]
    index_buffer_points: Option<u64>,
    /// The collection's fsync interval in ms (`FSYNC_MODE_INTERVAL`).
    #[arg(long, default_value_t = 100)]
    fsync_interval_ms: u64,
    /// Seconds of the idle phase (searches only, the graph caught up).
    #[arg(long, default_value_t = 5.0)]
    idle_secs: f64,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One search: its phase, client latency and server `time_us`, in µs.
struct Sample {
    phase: u8,
    client_us: f64,
    server_us: f64,
}

pub fn run(a: MixedArgs) -> anyhow::Result<()> {
    if a.clients == 0 || a.batch == 0 || a.k == 0 {
        bail!("--clients, --batch and --k must be at least 1");
    }
    let data = dataset::load_vectors(&a.input, a.limit)
        .with_context(|| format!("reading --input {}", a.input.display()))?;
    let queries = Arc::new(
        dataset::load_vectors(&a.queries, None)
            .with_context(|| format!("reading --queries {}", a.queries.display()))?,
    );
    if data.is_empty() || queries.is_empty() || queries.dim != data.dim {
        bail!("--input and --queries must be non-empty and of one dimension");
    }
    let idle = Duration::try_from_secs_f64(a.idle_secs)
        .ok()
        .context("--idle-secs must be a non-negative number")?;
    runtime()?.block_on(async move {
        let conn = connect(&a.conn).await?;
        let req = pb::CreateCollectionRequest {
            name: a.collection.clone(),
            dimension: data.dim as u32,
            metric: pb::Metric::Cosine as i32,
            ssd_tier: Some(false),
            index_buffer_points: a.index_buffer_points,
            fsync: pb::FsyncMode::Interval as i32,
            fsync_interval_ms: Some(a.fsync_interval_ms),
            ..Default::default()
        };
        conn.collections().create(req).await.map_err(status)?;
        // Searches on a connection of their own: on the import's, they
        // would queue behind its megabyte batches (HTTP/2 flow control).
        let search_conn = connect(&a.conn).await?;

        let phase = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let mut searchers = Vec::new();
        for _ in 0..a.clients {
            let (mut points, phase, stop, next, queries) = (
                search_conn.points(),
                phase.clone(),
                stop.clone(),
                next.clone(),
                queries.clone(),
            );
            let (collection, k, ef) = (a.collection.clone(), a.k, a.ef);
            searchers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) % queries.len();
                    let p = phase.load(Ordering::Relaxed);
                    let started = Instant::now();
                    let r = points
                        .search(pb::SearchRequest {
                            collection: collection.clone(),
                            vector: queries.row(i).to_vec(),
                            k,
                            ef,
                            ..Default::default()
                        })
                        .await
                        .map_err(status)?
                        .into_inner();
                    mine.push(Sample {
                        phase: p,
                        client_us: started.elapsed().as_secs_f64() * 1e6,
                        server_us: r.time_us as f64,
                    });
                }
                anyhow::Ok(mine)
            }));
        }

        let started = Instant::now();
        let (collection, dim, batch, rows) = (a.collection.clone(), data.dim, a.batch, data.len());
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::UpsertRequest>(4);
        let producer = tokio::spawn(async move {
            for first in (0..rows).step_by(batch) {
                let points = (first..(first + batch).min(rows))
                    .map(|i| pb::Point {
                        id: i as u64,
                        vector: data.data[i * dim..(i + 1) * dim].to_vec(),
                        payload: Default::default(),
                    })
                    .collect();
                let req = pb::UpsertRequest {
                    collection: collection.clone(),
                    points,
                    ..Default::default()
                };
                if tx.send(req).await.is_err() {
                    break;
                }
            }
        });
        let done = upsert_stream(&conn, rx, |_| {}).await?;
        producer.await?;
        let import_secs = started.elapsed().as_secs_f64();
        if done as usize != rows {
            bail!("server acknowledged {done} of {rows} points");
        }
        phase.store(1, Ordering::Relaxed);
        while unindexed_points(&conn, &a.collection).await? > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let caught_up_secs = started.elapsed().as_secs_f64();
        phase.store(2, Ordering::Relaxed);
        let idle_started = Instant::now();
        tokio::time::sleep(idle).await;
        stop.store(true, Ordering::Relaxed);
        let idle_secs = idle_started.elapsed().as_secs_f64();
        let mut samples = Vec::new();
        for s in searchers {
            samples.extend(s.await??);
        }
        let durations = [import_secs, caught_up_secs - import_secs, idle_secs];
        report(&a, rows, import_secs, caught_up_secs, &durations, &samples)
    })
}

fn report(
    a: &MixedArgs,
    rows: usize,
    import_secs: f64,
    caught_up_secs: f64,
    durations: &[f64; 3],
    samples: &[Sample],
) -> anyhow::Result<()> {
    let ack_rate = rows as f64 / import_secs;
    out!(
        "import: {rows} points acknowledged in {import_secs:.2} s ({ack_rate:.0} points/s), \
         graph caught up at {caught_up_secs:.2} s"
    );
    out!("phase     searches      QPS  client p50/p99 (µs)  server time_us p50/p99 (µs)");
    let mut phases = Vec::new();
    let mut p99 = [f64::NAN; 3];
    for (i, name) in PHASES.iter().enumerate() {
        let mut client: Vec<f64> = samples
            .iter()
            .filter(|s| s.phase == i as u8)
            .map(|s| s.client_us)
            .collect();
        let mut server: Vec<f64> = samples
            .iter()
            .filter(|s| s.phase == i as u8)
            .map(|s| s.server_us)
            .collect();
        client.sort_by(f64::total_cmp);
        server.sort_by(f64::total_cmp);
        let qps = client.len() as f64 / durations[i].max(1e-9);
        let (c50, c99) = (percentile(&client, 0.50), percentile(&client, 0.99));
        let (s50, s99) = (percentile(&server, 0.50), percentile(&server, 0.99));
        p99[i] = c99;
        out!(
            "{name:<9} {:>8} {qps:>8.0} {c50:>10.0} / {c99:<8.0} {s50:>14.0} / {s99:<8.0}",
            client.len()
        );
        phases.push(serde_json::json!({
            "phase": name, "searches": client.len(), "seconds": durations[i], "qps": qps,
            "client_p50_us": c50, "client_p99_us": c99,
            "server_p50_us": s50, "server_p99_us": s99,
        }));
    }
    let ratio = p99[0] / p99[2];
    out!("search p99 during import / idle: {ratio:.2}x");
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "points": rows, "import_seconds": import_secs, "ack_points_per_second": ack_rate,
            "caught_up_seconds": caught_up_secs, "clients": a.clients,
            "index_buffer_points": a.index_buffer_points, "p99_import_over_idle": ratio,
            "phases": phases,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing --json {}", path.display()))?;
    }
    Ok(())
}
