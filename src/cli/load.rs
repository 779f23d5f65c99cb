//! `quiver load`: a bounded mixed workload against a running server. Many
//! clients, each on its own connection with one request in flight, issue
//! searches and upserts (a set share of them) until a request count or a
//! duration runs out, whichever comes first; the run reports throughput and
//! latency percentiles overall and per request kind, and fails if any
//! request failed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use pb::points_client::PointsClient;
use quiver::dataset::{self, VectorSet};
use quiver::distance::Metric;
use quiver::server::pb;

use super::bench::percentile;
use super::client::{connect, runtime, status, Authed, ConnectArgs, Connection};

#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Target collection.
    #[arg(long)]
    collection: String,
    /// Concurrent clients, each on its own connection with one request in flight.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Stop after this many requests in all (or at --duration-secs, whichever comes first).
    #[arg(long, required_unless_present = "duration_secs")]
    requests: Option<u64>,
    /// Stop issuing requests after this many seconds (or at --requests).
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Share of requests that are upserts; the rest are searches.
    #[arg(long, default_value_t = 0.2)]
    upsert_ratio: f64,
    /// Points per upsert.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Neighbours per search.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Search beam width (the collection's default when absent).
    #[arg(long)]
    ef: Option<u32>,
    /// SSD-tier postings read per search (the collection's default when absent).
    #[arg(long)]
    nprobe: Option<u32>,
    /// Draw vectors from this dataset file (any format the engine reads):
    /// searches use random rows, upserts cycle through the rows. Without it,
    /// vectors are uniformly random in [-1, 1]^dim.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Id of the first upserted point; later upserts take the following ids
    /// [default: the collection's point count, i.e. after ids 0..count as
    /// `quiver import` assigns them].
    #[arg(long)]
    start_id: Option<u64>,
    /// Seed of the request mix and of random vectors.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Create the collection first (an existing one is reused).
    #[arg(long, requires = "metric")]
    create: bool,
    /// Metric for --create: l2 | ip | cosine.
    #[arg(long)]
    metric: Option<Metric>,
    /// Dimension for --create [default: that of --vectors].
    #[arg(long)]
    dim: Option<u32>,
    /// Write the report (requests, errors, seconds, qps, counts, latency percentiles) here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Where request vectors come from.
enum Source {
    Random(usize),
    File(VectorSet),
}

impl Source {
    fn random(rng: &mut SmallRng, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        if v.iter().all(|&x| x == 0.0) {
            // Cosine collections refuse zero vectors.
            v[0] = 1.0;
        }
        v
    }

    /// A search vector.
    fn query(&self, rng: &mut SmallRng) -> Vec<f32> {
        match self {
            Source::Random(dim) => Self::random(rng, *dim),
            Source::File(set) => set.row(rng.gen_range(0..set.len())).to_vec(),
        }
    }

    /// The vector of the `nth` upserted point.
    fn point(&self, rng: &mut SmallRng, nth: u64) -> Vec<f32> {
        match self {
            Source::Random(dim) => Self::random(rng, *dim),
            Source::File(set) => set.row((nth % set.len() as u64) as usize).to_vec(),
        }
    }
}

/// One finished request.
struct Sample {
    upsert: bool,
    ok: bool,
    us: f64,
    /// Points the server acknowledged (upserts).
    points: u64,
}

/// State the clients share.
struct Shared {
    source: Source,
    collection: String,
    /// Requests handed out so far.
    tickets: AtomicU64,
    max_requests: u64,
    deadline: Option<Instant>,
    /// Next unused point id.
    next_id: AtomicU64,
    start_id: u64,
    batch: usize,
    upsert_ratio: f64,
    k: u32,
    ef: Option<u32>,
    nprobe: Option<u32>,
    seed: u64,
    first_error: Mutex<Option<String>>,
}

/// A well-mixed seed per request, so the request mix does not depend on
/// which client takes which request.
fn request_seed(seed: u64, ticket: u64) -> u64 {
    let mut z = seed ^ ticket.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One client: takes requests until the count or the time runs out.
async fn client(mut points: PointsClient<Authed>, s: Arc<Shared>) -> Vec<Sample> {
    let mut samples = Vec::new();
    loop {
        if s.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let ticket = s.tickets.fetch_add(1, Ordering::Relaxed);
        if ticket >= s.max_requests {
            break;
        }
        let mut rng = SmallRng::seed_from_u64(request_seed(s.seed, ticket));
        let upsert = rng.gen_bool(s.upsert_ratio);
        let started = Instant::now();
        let result = if upsert {
            let first = s.next_id.fetch_add(s.batch as u64, Ordering::Relaxed);
            let batch = (first..first + s.batch as u64)
                .map(|id| pb::Point {
                    id,
                    vector: s.source.point(&mut rng, id - s.start_id),
                    payload: Default::default(),
                })
                .collect();
            let req = pb::UpsertRequest {
                collection: s.collection.clone(),
                points: batch,
                ..Default::default()
            };
            points.upsert(req).await.map(|r| r.into_inner().upserted)
        } else {
            let req = pb::SearchRequest {
                collection: s.collection.clone(),
                vector: s.source.query(&mut rng),
                k: s.k,
                ef: s.ef,
                nprobe: s.nprobe,
                ..Default::default()
            };
            points.search(req).await.map(|_| 0)
        };
        let us = started.elapsed().as_secs_f64() * 1e6;
        let (ok, points) = match result {
            Ok(n) => (true, n),
            Err(e) => {
                let mut first = s.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| {
                    let kind = if upsert { "upsert" } else { "search" };
                    format!("{kind}: {:?}: {}", e.code(), e.message())
                });
                (false, 0)
            }
        };
        samples.push(Sample {
            upsert,
            ok,
            us,
            points,
        });
    }
    samples
}

/// Creates the collection (reusing an existing one) for `--create`.
async fn create(a: &LoadArgs, ch: &Connection, file_dim: Option<usize>) -> anyhow::Result<()> {
    let Some(metric) = a.metric else {
        bail!("--create needs --metric");
    };
    let dim = match (a.dim, file_dim) {
        (Some(d), Some(f)) if d as usize != f => {
            bail!("--dim {d} does not match --vectors, whose dimension is {f}")
        }
        (Some(d), _) => d,
        (None, Some(f)) => u32::try_from(f).context("--vectors dimension is too large")?,
        (None, None) => bail!("--create needs --dim (or --vectors)"),
    };
    let req = pb::CreateCollectionRequest {
        name: a.collection.clone(),
        dimension: dim,
        metric: pb::Metric::from(metric).into(),
        ..Default::default()
    };
    match ch.collections().create(req).await {
        Ok(_) => tracing::info!(collection = %a.collection, dim, "created"),
        Err(e) if e.code() == tonic::Code::AlreadyExists => {
            tracing::info!(collection = %a.collection, "exists; loading it")
        }
        Err(e) => return Err(status(e)),
    }
    Ok(())
}

/// The collection's dimension and point count.
async fn describe(ch: &Connection, name: &str) -> anyhow::Result<(usize, u64)> {
    let info = ch
        .collections()
        .describe(pb::DescribeCollectionRequest {
            name: name.to_string(),
        })
        .await
        .map_err(status)
        .with_context(|| format!("describing collection {name:?}"))?
        .into_inner()
        .collection
        .context("the server's Describe reply has no collection")?;
    let dim = info.settings.map_or(0, |s| s.dimension as usize);
    let points = info.stats.map_or(0, |s| s.points);
    if dim == 0 {
        bail!("collection {name:?}: the server reports no dimension");
    }
    Ok((dim, points))
}

fn check(a: &LoadArgs) -> anyhow::Result<Option<Duration>> {
    if a.clients == 0 || a.batch == 0 || a.k == 0 {
        bail!("--clients, --batch and --k must be at least 1");
    }
    if a.requests == Some(0) {
        bail!("--requests must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.upsert_ratio) {
        bail!("--upsert-ratio must be in 0..=1, got {}", a.upsert_ratio);
    }
    a.duration_secs
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("--duration-secs must be a positive number, got {s}"))
        })
        .transpose()
}

pub fn run(a: LoadArgs) -> anyhow::Result<()> {
    let duration = check(&a)?;
    let file = match &a.vectors {
        Some(p) => {
            let set = dataset::load_vectors(p, None)
                .with_context(|| format!("reading --vectors {}", p.display()))?;
            if set.is_empty() {
                bail!("--vectors {} holds no vectors", p.display());
            }
            Some(set)
        }
        None => None,
    };
    let (samples, secs, first_error, start_id) = runtime()?.block_on(async {
        let ch = connect(&a.conn).await?;
        if a.create {
            create(&a, &ch, file.as_ref().map(|f| f.dim)).await?;
        }
        let (dim, count) = describe(&ch, &a.collection).await?;
        let source = match file {
            Some(set) if set.dim != dim => bail!(
                "--vectors has dimension {}, collection {:?} has {dim}",
                set.dim,
                a.collection
            ),
            Some(set) => Source::File(set),
            None => Source::Random(dim),
        };
        let start_id = a.start_id.unwrap_or(count);
        let mut channels = Vec::with_capacity(a.clients);
        for _ in 0..a.clients {
            channels.push(connect(&a.conn).await?);
        }
        let started = Instant::now();
        let shared = Arc::new(Shared {
            source,
            collection: a.collection.clone(),
            tickets: AtomicU64::new(0),
            max_requests: a.requests.unwrap_or(u64::MAX),
            deadline: duration.map(|d| started + d),
            next_id: AtomicU64::new(start_id),
            start_id,
            batch: a.batch,
            upsert_ratio: a.upsert_ratio,
            k: a.k,
            ef: a.ef,
            nprobe: a.nprobe,
            seed: a.seed,
            first_error: Mutex::new(None),
        });
        let tasks: Vec<_> = channels
            .into_iter()
            .map(|ch| {
                let points = ch.points();
                tokio::spawn(client(points, shared.clone()))
            })
            .collect();
        let mut samples = Vec::new();
        for t in tasks {
            samples.extend(t.await?);
        }
        let secs = started.elapsed().as_secs_f64();
        let first = shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        anyhow::Ok((samples, secs, first, start_id))
    })?;
    report(&a, &samples, secs, start_id)?;
    if let Some(first) = first_error {
        let errors = samples.iter().filter(|s| !s.ok).count();
        bail!(
            "{errors} of {} requests failed; the first: {first}",
            samples.len()
        );
    }
    Ok(())
}

/// Sorted latencies of the successful requests that `keep` selects.
fn latencies(samples: &[Sample], keep: impl Fn(&Sample) -> bool) -> Vec<f64> {
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|s| s.ok && keep(s))
        .map(|s| s.us)
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Prints the summary and writes `--json`.
fn report(a: &LoadArgs, samples: &[Sample], secs: f64, start_id: u64) -> anyhow::Result<()> {
    let requests = samples.len();
    let errors = samples.iter().filter(|s| !s.ok).count();
    let upserts = samples.iter().filter(|s| s.upsert).count();
    let searches = requests - upserts;
    let upserted_points: u64 = samples.iter().map(|s| s.points).sum();
    let all = latencies(samples, |_| true);
    let search = latencies(samples, |s| !s.upsert);
    let upsert = latencies(samples, |s| s.upsert);
    let qps = requests as f64 / secs;
    let report = serde_json::json!({
        "requests": requests,
        "errors": errors,
        "seconds": secs,
        "qps": qps,
        "upserts": upserts,
        "searches": searches,
        "upserted_points": upserted_points,
        "first_id": start_id,
        "clients": a.clients,
        "batch": a.batch,
        "p50_us": percentile(&all, 0.50),
        "p99_us": percentile(&all, 0.99),
        "search_p50_us": percentile(&search, 0.50),
        "search_p99_us": percentile(&search, 0.99),
        "upsert_p50_us": percentile(&upsert, 0.50),
        "upsert_p99_us": percentile(&upsert, 0.99),
    });
    out!(
        "{requests} requests from {} clients in {secs:.1} s: {qps:.0} requests/s, {errors} errors",
        a.clients
    );
    out!(
        "  all      p50 {:>8.0} us  p99 {:>8.0} us",
        percentile(&all, 0.50),
        percentile(&all, 0.99)
    );
    out!(
        "  searches p50 {:>8.0} us  p99 {:>8.0} us  ({searches}, k={})",
        percentile(&search, 0.50),
        percentile(&search, 0.99),
        a.k
    );
    out!(
        "  upserts  p50 {:>8.0} us  p99 {:>8.0} us  ({upserts} of {} points: {upserted_points} points)",
        percentile(&upsert, 0.50),
        percentile(&upsert, 0.99),
        a.batch
    );
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing --json {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_mix_follows_the_ratio_and_the_seed() {
        let upserts = |seed: u64, ratio: f64| {
            (0..10_000u64)
                .filter(|&t| SmallRng::seed_from_u64(request_seed(seed, t)).gen_bool(ratio))
                .count()
        };
        let n = upserts(1, 0.2);
        assert!((1_800..=2_200).contains(&n), "{n}");
        assert_eq!(upserts(1, 0.2), n);
        assert_ne!(upserts(2, 0.2), n);
        assert_eq!(upserts(1, 0.0), 0);
        assert_eq!(upserts(1, 1.0), 10_000);
    }

    #[test]
    fn file_vectors_cycle_and_random_ones_are_nonzero() {
        let set = VectorSet {
            dim: 2,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let src = Source::File(set);
        let mut rng = SmallRng::seed_from_u64(0);
        assert_eq!(src.point(&mut rng, 0), [1.0, 2.0]);
        assert_eq!(src.point(&mut rng, 4), [3.0, 4.0]);
        for _ in 0..20 {
            assert!([1.0, 3.0, 5.0].contains(&src.query(&mut rng)[0]));
        }
        let src = Source::Random(1);
        for _ in 0..1000 {
            let v = src.query(&mut rng);
            assert!(v[0] != 0.0 && (-1.0..1.0).contains(&v[0]));
        }
    }
}
