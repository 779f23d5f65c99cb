//! Prometheus metrics in the text exposition format (version 0.0.4).
//!
//! [`RequestMetrics`] counts requests by method and status code and keeps a
//! latency histogram per method; the gate records into it with a few atomic
//! adds (no locks), and the label set is fixed by the method table. The
//! search handlers add the server's own `time_us` of each `Search` and
//! `SearchBatch` response to a second, finer histogram per method. The
//! collection gauges (points, segments, memory-tier size, WAL bytes,
//! checkpoints) are read from the [`Registry`] at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tonic::Code;

use super::methods::{label, MethodId, METHODS};
use super::registry::Registry;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// gRPC status code names, indexed by code.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Upper bounds of the buckets of the searches' own `time_us`, in seconds
/// (finer below a millisecond, where a memory-tier search lands).
pub const SEARCH_TIME_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.1, 0.5, 2.5,
];

/// A histogram of durations: counts per bucket, sum and count, all atomic.
struct Histogram<const N: usize> {
    /// Observations per bucket (not cumulative); slower ones only in `count`.
    buckets: [AtomicU64; N],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn observe(&self, bounds: &[f64; N], elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(b) = bounds.iter().position(|&le| secs <= le) {
            self.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name` for `method`
    /// (nothing when it has no observations).
    fn render(&self, out: &mut String, name: &str, method: &str, bounds: &[f64; N]) {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return;
        }
        let mut cumulative = 0;
        for (le, n) in bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{method=\"{method}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 * 1e-9;
        let _ = writeln!(
            out,
            "{name}_bucket{{method=\"{method}\",le=\"+Inf\"}} {count}\n\
             {name}_sum{{method=\"{method}\"}} {sum}\n\
             {name}_count{{method=\"{method}\"}} {count}"
        );
    }
}

#[derive(Default)]
struct MethodStats {
    codes: [AtomicU64; CODES.len()],
    duration: Histogram<{ BUCKETS.len() }>,
    /// The handler's own `time_us` (search methods only).
    search_time: Histogram<{ SEARCH_TIME_BUCKETS.len() }>,
}

/// Request counters and latency histograms of every method.
pub struct RequestMetrics {
    /// One per entry of [`METHODS`], then one for other paths.
    methods: Box<[MethodStats]>,
    in_flight: AtomicI64,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            methods: (0..=METHODS.len())
                .map(|_| MethodStats::default())
                .collect(),
            in_flight: AtomicI64::new(0),
        }
    }
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMetrics").finish_non_exhaustive()
    }
}

impl RequestMetrics {
    /// Records a finished request of `method` with its status and latency.
    pub fn observe(&self, method: MethodId, code: Code, elapsed: Duration) {
        let m = &self.methods[method.min(METHODS.len())];
        let code = usize::try_from(code as i32).map_or(2, |c| c.min(CODES.len() - 1));
        m.codes[code].fetch_add(1, Ordering::Relaxed);
        m.duration.observe(&BUCKETS, elapsed);
    }

    /// Records the `time_us` a search handler of `method` put in its response.
    pub fn observe_search_time(&self, method: MethodId, time: Duration) {
        self.methods[method.min(METHODS.len())]
            .search_time
            .observe(&SEARCH_TIME_BUCKETS, time);
    }

    /// A request entered the server (see [`RequestMetrics::finished`]).
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request left the server.
    pub fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Appends the request metrics (methods never called are left out).
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "quiver_grpc_requests_total",
            "counter",
            "gRPC requests finished, by method and status code.",
        );
        for (id, m) in self.methods.iter().enumerate() {
            for (code, n) in m.codes.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "quiver_grpc_requests_total{{method=\"{}\",code=\"{}\"}} {n}",
                        label(id),
                        CODES[code]
                    );
                }
            }
        }
        header(
            out,
            "quiver_grpc_request_duration_seconds",
            "histogram",
            "Time from receiving a request to the end of its response, by method.",
        );
        for (id, m) in self.methods.iter().enumerate() {
            m.duration.render(
                out,
                "quiver_grpc_request_duration_seconds",
                label(id),
                &BUCKETS,
            );
        }
        header(
            out,
            "quiver_search_time_seconds",
            "histogram",
            "The server's own time of a search (the time_us of its response), by method.",
        );
        for (id, m) in self.methods.iter().enumerate() {
            m.search_time.render(
                out,
                "quiver_search_time_seconds",
                label(id),
                &SEARCH_TIME_BUCKETS,
            );
        }
        header(
            out,
            "quiver_grpc_requests_in_flight",
            "gauge",
            "gRPC requests being served now.",
        );
        let _ = writeln!(
            out,
            "quiver_grpc_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One gauge (or counter) with a `collection` label per collection.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    values: Vec<(String, f64)>,
}

/// The whole exposition: build info, request metrics, collection gauges.
/// Reads each collection's stats (brief locks; run it off the async runtime).
pub fn render(requests: &RequestMetrics, registry: &Registry) -> String {
    let mut out = String::with_capacity(8 << 10);
    header(
        &mut out,
        "quiver_build_info",
        "gauge",
        "Always 1; the version label is the server's.",
    );
    let _ = writeln!(
        out,
        "quiver_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    requests.render(&mut out);

    let names = registry.names();
    header(
        &mut out,
        "quiver_collections",
        "gauge",
        "Collections open on this server.",
    );
    let _ = writeln!(out, "quiver_collections {}", names.len());
    let family = |name, kind, help| Family {
        name,
        kind,
        help,
        values: Vec::with_capacity(names.len()),
    };
    let mut points = family("quiver_collection_points", "gauge", "Live points.");
    let mut segments = family(
        "quiver_collection_segments",
        "gauge",
        "Index segments (frozen ones and the active one).",
    );
    let mut active = family(
        "quiver_collection_memory_tier_points",
        "gauge",
        "Points in the active memory-tier segment (not yet frozen).",
    );
    let mut memory = family(
        "quiver_collection_index_memory_bytes",
        "gauge",
        "Bytes of in-memory index: segments' vectors and graphs, SSD-tier heads and maps.",
    );
    let mut wal = family(
        "quiver_collection_wal_bytes",
        "gauge",
        "Bytes in the write-ahead log's files.",
    );
    let mut last_lsn = family(
        "quiver_collection_last_lsn",
        "gauge",
        "Log sequence number of the last write.",
    );
    let mut checkpoint_lsn = family(
        "quiver_collection_checkpoint_lsn",
        "gauge",
        "Log sequence number covered by the last checkpoint.",
    );
    let mut ckpt_count = family(
        "quiver_collection_checkpoints_total",
        "counter",
        "Checkpoints committed since the server opened the collection.",
    );
    let mut ckpt_seconds = family(
        "quiver_collection_checkpoint_seconds_total",
        "counter",
        "Seconds spent in those checkpoints.",
    );
    let mut ckpt_last = family(
        "quiver_collection_last_checkpoint_seconds",
        "gauge",
        "Seconds the most recent checkpoint took.",
    );
    let mut ssd_points = family(
        "quiver_collection_ssd_points",
        "gauge",
        "Points in the SSD tier (SPANN on disk).",
    );
    let mut ssd_bytes = family(
        "quiver_collection_ssd_bytes",
        "gauge",
        "Bytes of the SSD tier's files.",
    );
    let mut merges = family(
        "quiver_collection_merges_total",
        "counter",
        "Frozen memory segments merged into the SSD tier since the collection was opened.",
    );
    let mut merge_last = family(
        "quiver_collection_last_merge_seconds",
        "gauge",
        "Seconds the most recent merge into the SSD tier took.",
    );
    let mut unindexed = family(
        "quiver_collection_unindexed_points",
        "gauge",
        "Points acknowledged and searchable (exact scan) but not yet linked into the graph.",
    );
    for name in names {
        let Ok(c) = registry.get(&name) else {
            continue; // dropped since the names were read
        };
        let s = c.stats();
        let ckpt = c.checkpoint_stats();
        points.values.push((name.clone(), s.points as f64));
        segments.values.push((name.clone(), s.segments as f64));
        active.values.push((name.clone(), s.active_points as f64));
        memory
            .values
            .push((name.clone(), s.index_memory_bytes as f64));
        wal.values.push((name.clone(), c.wal_bytes() as f64));
        last_lsn.values.push((name.clone(), s.last_lsn as f64));
        checkpoint_lsn
            .values
            .push((name.clone(), s.checkpoint_lsn as f64));
        ckpt_count.values.push((name.clone(), ckpt.count as f64));
        ckpt_seconds.values.push((name.clone(), ckpt.total_seconds));
        ckpt_last.values.push((name.clone(), ckpt.last_seconds));
        ssd_points.values.push((name.clone(), s.ssd_points as f64));
        ssd_bytes.values.push((name.clone(), s.ssd_bytes as f64));
        merges.values.push((name.clone(), s.merges as f64));
        unindexed
            .values
            .push((name.clone(), s.unindexed_points as f64));
        merge_last.values.push((name, s.last_merge_seconds));
    }
    for f in [
        unindexed,
        points,
        segments,
        active,
        memory,
        wal,
        last_lsn,
        checkpoint_lsn,
        ckpt_count,
        ckpt_seconds,
        ckpt_last,
        ssd_points,
        ssd_bytes,
        merges,
        merge_last,
    ] {
        header(&mut out, f.name, f.kind, f.help);
        for (collection, v) in f.values {
            // Collection names are [A-Za-z0-9_-]: nothing to escape.
            let _ = writeln!(out, "{}{{collection=\"{collection}\"}} {v}", f.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::methods::classify;

    #[test]
    fn requests_render_as_counters_and_cumulative_histograms() {
        let m = RequestMetrics::default();
        let (search, _) = classify("/quiver.v1.Points/Search");
        m.observe(search, Code::Ok, Duration::from_micros(50));
        m.observe(search, Code::Ok, Duration::from_millis(3));
        m.observe(search, Code::NotFound, Duration::from_secs(20));
        let (other, _) = classify("/x.Y/Z");
        m.observe(other, Code::Unimplemented, Duration::from_micros(1));
        m.started();
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "quiver_grpc_requests_total{method=\"quiver.v1.Points/Search\",code=\"OK\"} 2",
            "quiver_grpc_requests_total{method=\"quiver.v1.Points/Search\",code=\"NOT_FOUND\"} 1",
            "quiver_grpc_requests_total{method=\"other\",code=\"UNIMPLEMENTED\"} 1",
            "quiver_grpc_request_duration_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"0.0001\"} 1",
            "quiver_grpc_request_duration_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"0.005\"} 2",
            "quiver_grpc_request_duration_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"10\"} 2",
            "quiver_grpc_request_duration_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"+Inf\"} 3",
            "quiver_grpc_request_duration_seconds_count{method=\"quiver.v1.Points/Search\"} 3",
            "quiver_grpc_requests_in_flight 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert!(!out.contains("Points/Upsert"), "{out}");
        let sum_line = out
            .lines()
            .find(|l| {
                l.starts_with(
                    "quiver_grpc_request_duration_seconds_sum{method=\"quiver.v1.Points/Search\"}",
                )
            })
            .unwrap();
        let sum: f64 = sum_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - 20.00305).abs() < 1e-9, "{sum_line}");
    }

    #[test]
    fn search_times_render_as_their_own_histogram() {
        let m = RequestMetrics::default();
        let (search, _) = classify("/quiver.v1.Points/Search");
        let (batch, _) = classify("/quiver.v1.Points/SearchBatch");
        m.observe_search_time(search, Duration::from_micros(120));
        m.observe_search_time(search, Duration::from_micros(180));
        m.observe_search_time(search, Duration::from_millis(4));
        m.observe_search_time(batch, Duration::from_secs(3));
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "# TYPE quiver_search_time_seconds histogram",
            "quiver_search_time_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"0.0001\"} 0",
            "quiver_search_time_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"0.00015\"} 1",
            "quiver_search_time_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"0.0002\"} 2",
            "quiver_search_time_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"0.005\"} 3",
            "quiver_search_time_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"+Inf\"} 3",
            "quiver_search_time_seconds_count{method=\"quiver.v1.Points/Search\"} 3",
            "quiver_search_time_seconds_bucket{method=\"quiver.v1.Points/SearchBatch\",le=\"2.5\"} 0",
            "quiver_search_time_seconds_bucket{method=\"quiver.v1.Points/SearchBatch\",le=\"+Inf\"} 1",
            "quiver_search_time_seconds_sum{method=\"quiver.v1.Points/SearchBatch\"} 3",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        // Only the search time was observed: no request counters or durations.
        assert!(
            !out.contains("quiver_grpc_request_duration_seconds_bucket"),
            "{out}"
        );
        let sum_line = out
            .lines()
            .find(|l| {
                l.starts_with("quiver_search_time_seconds_sum{method=\"quiver.v1.Points/Search\"}")
            })
            .unwrap();
        let sum: f64 = sum_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - 0.0043).abs() < 1e-9, "{sum_line}");
    }

    #[test]
    fn collections_render_with_their_stats() {
        use crate::collection::{CollectionConfig, Point};
        use crate::distance::Metric;
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::open(tmp.path()).unwrap();
        let c = reg
            .create("docs", CollectionConfig::new(2, Metric::L2))
            .unwrap();
        c.upsert(
            (0..7)
                .map(|i| Point {
                    id: i,
                    vector: vec![i as f32, 1.0],
                    payload: None,
                })
                .collect(),
        )
        .unwrap();
        let out = render(&RequestMetrics::default(), &reg);
        for line in [
            "quiver_collections 1",
            "quiver_collection_points{collection=\"docs\"} 7",
            "quiver_collection_memory_tier_points{collection=\"docs\"} 7",
            "quiver_collection_last_lsn{collection=\"docs\"} 1",
            "quiver_collection_checkpoints_total{collection=\"docs\"} 0",
            "quiver_collection_ssd_points{collection=\"docs\"} 0",
            "quiver_collection_merges_total{collection=\"docs\"} 0",
            "# TYPE quiver_collection_wal_bytes gauge",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        let wal: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("quiver_collection_wal_bytes{collection=\"docs\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(wal > 7.0 * 8.0, "{wal}");
        reg.close_all().unwrap();
    }
}
