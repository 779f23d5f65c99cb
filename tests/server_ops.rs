//! `quiver serve` operations through the real binary: the layered config
//! (file, environment, flags) and its errors, API keys, TLS, Prometheus
//! metrics, JSON logs, load shedding and a graceful drain on SIGTERM.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::{Duration, Instant};

use pb::collections_client::CollectionsClient;
use pb::points_client::PointsClient;
use quiver::server::pb;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use super::server::{assert_code, free_port, point, reflected_services, vector, Server};

/// Sends `authorization: Bearer <key>` when there is a key.
#[derive(Clone)]
struct Key(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for Key {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

fn key(k: Option<&str>) -> Key {
    Key(k.map(|k| format!("Bearer {k}").parse().unwrap()))
}

type Keyed = InterceptedService<Channel, Key>;

fn points(ch: &Channel, k: Option<&str>) -> PointsClient<Keyed> {
    PointsClient::with_interceptor(ch.clone(), key(k))
}

fn collections(ch: &Channel, k: Option<&str>) -> CollectionsClient<Keyed> {
    CollectionsClient::with_interceptor(ch.clone(), key(k))
}

fn create(name: &str) -> pb::CreateCollectionRequest {
    pb::CreateCollectionRequest {
        name: name.into(),
        dimension: 4,
        metric: pb::Metric::L2.into(),
        ..Default::default()
    }
}

fn upsert(range: std::ops::Range<u64>) -> pb::UpsertRequest {
    pb::UpsertRequest {
        collection: "docs".into(),
        points: range.map(point).collect(),
        ..Default::default()
    }
}

fn count() -> pb::CountRequest {
    pb::CountRequest {
        collection: "docs".into(),
        ..Default::default()
    }
}

fn search() -> pb::SearchRequest {
    pb::SearchRequest {
        collection: "docs".into(),
        vector: vector(3),
        k: 3,
        ..Default::default()
    }
}

/// `GET path` on the metrics port: (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of the metric line `series` (name and labels exactly).
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Runs `quiver serve` expecting it to refuse to start: its stderr.
fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(super::common::quiver_bin())
        .arg("serve")
        .args(args)
        .env("QUIVER_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn bad_configuration_is_refused_naming_field_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let cfg = dir.path().join("quiver.toml");
    std::fs::write(&cfg, "addr = \"127.0.0.1:1\"\n[limits]\nmax_batchs = 3\n").unwrap();
    let c = cfg.display().to_string();
    let e = serve_fails(&["--data", &data, "--config", &c], &[]);
    assert!(e.contains("max_batchs") && e.contains(&c), "{e}");
    // The file can also come from QUIVER_CONFIG.
    let e = serve_fails(&["--data", &data], &[("QUIVER_CONFIG", &c)]);
    assert!(e.contains("max_batchs"), "{e}");
    let e = serve_fails(&["--data", &data], &[("QUIVER_MAX_BATCH", "lots")]);
    assert!(
        e.contains("QUIVER_MAX_BATCH: expected a whole number"),
        "{e}"
    );
    let e = serve_fails(&["--data", &data, "--log-format", "xml"], &[]);
    assert!(e.contains("--log-format"), "{e}");
    // A non-loopback address without keys is refused unless anonymous is allowed.
    let wide = format!("0.0.0.0:{}", free_port());
    let e = serve_fails(
        &["--data", &data, "--addr", &wide, "--metrics-addr", "off"],
        &[],
    );
    assert!(
        e.contains("allow_anonymous") && e.contains("QUIVER_API_KEYS"),
        "{e}"
    );
    // An explicitly configured metrics address that cannot be bound is fatal.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let e = serve_fails(
        &[
            "--data",
            &data,
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
        ],
        &[("QUIVER_METRICS_ADDR", &taken)],
    );
    assert!(e.contains("metrics") && e.contains(&taken), "{e}");
    // Unreadable TLS files are named.
    let e = serve_fails(
        &[
            "--data",
            &data,
            "--metrics-addr",
            "off",
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
        ],
        &[
            ("QUIVER_TLS_CERT", "/no/cert.pem"),
            ("QUIVER_TLS_KEY", "/no/key.pem"),
        ],
    );
    assert!(e.contains("/no/cert.pem"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_serves_anonymously_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let wide = format!("0.0.0.0:{port}");
    let mut server = Server::start_with(
        dir.path(),
        &["--metrics-addr", "off", "--addr", &wide],
        &[("QUIVER_ALLOW_ANONYMOUS", "true")],
    );
    assert_eq!(server.addr, format!("127.0.0.1:{port}"));
    let ch = server.connect().await;
    collections(&ch, None).create(create("docs")).await.unwrap();
    drop(ch);
    assert_eq!(server.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_method_but_health() {
    const FULL: &str = "full-key-7f3a9c";
    const READ: &str = "read-key-52be10";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("quiver.toml");
    // Keys from the file (read-only) and the environment (full): both layers.
    std::fs::write(
        &cfg,
        format!("metrics_addr = \"off\"\n[auth]\nread_only_keys = [\"{READ}\"]\n"),
    )
    .unwrap();
    let c = cfg.display().to_string();
    let mut server = Server::start_with(
        &dir.path().join("data"),
        &["--config", &c, "--log", "debug"],
        &[("QUIVER_API_KEYS", FULL)],
    );
    // Health answers without a key (connect() checks it).
    let ch = server.connect().await;

    for bad in [None, Some("wrong-key"), Some("full-key-7f3a9")] {
        let e = collections(&ch, bad)
            .list(pb::ListCollectionsRequest {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{bad:?}: {e:?}");
        let e = points(&ch, bad).count(count()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{bad:?}: {e:?}");
    }
    let e = reflected_services(ch.clone(), None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // The full key does everything.
    let mut cols = collections(&ch, Some(FULL));
    let mut pts = points(&ch, Some(FULL));
    cols.create(create("docs")).await.unwrap();
    cols.create(create("tmp")).await.unwrap();
    pts.upsert(upsert(0..20)).await.unwrap();
    pts.delete(pb::DeleteRequest {
        collection: "docs".into(),
        ids: vec![19],
        ..Default::default()
    })
    .await
    .unwrap();

    // The read-only key reads ...
    let mut cols = collections(&ch, Some(READ));
    let mut pts = points(&ch, Some(READ));
    assert_eq!(
        cols.list(pb::ListCollectionsRequest {})
            .await
            .unwrap()
            .into_inner()
            .names,
        ["docs", "tmp"]
    );
    cols.describe(pb::DescribeCollectionRequest {
        name: "docs".into(),
    })
    .await
    .unwrap();
    assert_eq!(pts.count(count()).await.unwrap().into_inner().count, 19);
    assert_eq!(
        pts.search(search()).await.unwrap().into_inner().hits[0].id,
        3
    );
    pts.search_batch(pb::SearchBatchRequest {
        collection: "docs".into(),
        queries: vec![pb::SearchQuery {
            vector: vector(1),
            k: 1,
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let got = pts
        .get(pb::GetRequest {
            collection: "docs".into(),
            ids: vec![4],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().points.len(), 1);
    pts.scroll(pb::ScrollRequest {
        collection: "docs".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let services = reflected_services(ch.clone(), Some(READ)).await.unwrap();
    assert!(
        services.iter().any(|s| s == "quiver.v1.Points"),
        "{services:?}"
    );

    // ... and every write is denied.
    let denied = |r: Result<(), tonic::Status>, what: &str| {
        assert_eq!(r.unwrap_err().code(), Code::PermissionDenied, "{what}");
    };
    denied(pts.upsert(upsert(30..31)).await.map(drop), "upsert");
    denied(
        pts.delete(pb::DeleteRequest {
            collection: "docs".into(),
            ids: vec![1],
            ..Default::default()
        })
        .await
        .map(drop),
        "delete",
    );
    denied(
        pts.upsert_stream(tokio_stream::iter(vec![upsert(30..31)]))
            .await
            .map(drop),
        "upsert stream",
    );
    denied(cols.create(create("x")).await.map(drop), "create");
    denied(
        cols.drop(pb::DropCollectionRequest { name: "tmp".into() })
            .await
            .map(drop),
        "drop",
    );
    assert_eq!(pts.count(count()).await.unwrap().into_inner().count, 19);

    // The client CLIs send --api-key / QUIVER_API_KEY.
    let base = dir.path().join("base.fvecs");
    let data = quiver::dataset::synthetic::clustered(300, 4, 3);
    quiver::dataset::save_vectors(&base, &data).unwrap();
    let b = base.display().to_string();
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(super::common::quiver_bin())
            .args(args)
            .args(["--addr", &server.addr, "--log", "warn"])
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let import = [
        "import",
        "--collection",
        "cli",
        "--input",
        b.as_str(),
        "--create",
        "--metric",
        "l2",
    ];
    let out = cli(&import, &[("QUIVER_API_KEY", READ)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"));
    let mut with_key = import.to_vec();
    with_key.extend(["--api-key", FULL]);
    let out = cli(&with_key, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let query = [
        "query",
        "--collection",
        "cli",
        "--queries",
        b.as_str(),
        "--limit",
        "20",
    ];
    let out = cli(&query, &[("QUIVER_API_KEY", READ)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&query, &[]);
    assert!(!out.status.success());

    // Keys never reach the log, even at debug level.
    drop((cols, pts, ch));
    let (status, log) = server.stop_with_log();
    assert_eq!(status.code(), Some(0));
    assert!(log.contains("DEBUG"), "{log}");
    assert!(
        !log.contains(FULL) && !log.contains(READ),
        "a key is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_round_trip_and_plaintext_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let (c, k) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let mut server = Server::start_with(
        &dir.path().join("data"),
        &["--metrics-addr", "off", "--tls-cert", &c],
        &[("QUIVER_TLS_KEY", &k)],
    );
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let endpoint = Endpoint::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let ch = server.connect_to(endpoint).await;
    collections(&ch, None).create(create("docs")).await.unwrap();
    let mut pts = points(&ch, None);
    pts.upsert(upsert(0..10)).await.unwrap();
    assert_eq!(
        pts.search(search()).await.unwrap().into_inner().hits[0].id,
        3
    );

    // A plaintext client gets nothing.
    let plain = async {
        let ch = Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        points(&ch, None)
            .count(count())
            .await
            .map_err(|e| e.to_string())
    };
    assert!(
        plain.await.is_err(),
        "plaintext request succeeded against TLS"
    );

    // The query CLI verifies the server with --tls-ca (the address's IP is in the cert).
    let queries = dir.path().join("q.fvecs");
    let q = quiver::dataset::synthetic::clustered(5, 4, 1);
    quiver::dataset::save_vectors(&queries, &q).unwrap();
    let run = |extra: &[&str]| {
        Command::new(super::common::quiver_bin())
            .args(["query", "--collection", "docs", "--queries"])
            .arg(&queries)
            .args(["--log", "warn"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--addr", &server.addr, "--tls-ca", &c]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "--addr",
        &format!("https://{}", server.addr),
        "--tls-ca",
        &c,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plaintext from the CLI fails.
    let out = run(&["--addr", &server.addr]);
    assert!(!out.status.success());
    drop((pts, ch));
    assert_eq!(server.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_describe_collections() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start_with(dir.path(), &["--metrics-addr", &metrics_addr], &[]);
    let ch = server.connect().await;
    let (status, body) = http_get(&metrics_addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(metric(&body, "quiver_collections"), Some(0.0), "{body}");

    // A small memory tier: 200 points rotate it and checkpoint in the background.
    let mut cols = collections(&ch, None);
    let mut pts = points(&ch, None);
    cols.create(pb::CreateCollectionRequest {
        memory_tier_points: Some(64),
        ..create("docs")
    })
    .await
    .unwrap();
    for first in (0..200).step_by(50) {
        pts.upsert(upsert(first..first + 50)).await.unwrap();
    }
    for _ in 0..5 {
        pts.search(search()).await.unwrap();
    }
    assert_code(
        pts.count(pb::CountRequest {
            collection: "nope".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "nope",
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (_, body) = http_get(&metrics_addr, "/metrics");
        let ckpt = "quiver_collection_checkpoints_total{collection=\"docs\"}";
        if metric(&body, ckpt).unwrap_or(0.0) >= 1.0 {
            break body;
        }
        assert!(Instant::now() < deadline, "no checkpoint counted:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let m =
        |series: &str| metric(&body, series).unwrap_or_else(|| panic!("{series} missing:\n{body}"));
    let search_ok = "quiver_grpc_requests_total{method=\"quiver.v1.Points/Search\",code=\"OK\"}";
    assert_eq!(m(search_ok), 5.0);
    assert_eq!(
        m("quiver_grpc_requests_total{method=\"quiver.v1.Points/Upsert\",code=\"OK\"}"),
        4.0
    );
    assert_eq!(
        m("quiver_grpc_requests_total{method=\"quiver.v1.Points/Count\",code=\"NOT_FOUND\"}"),
        1.0
    );
    assert_eq!(
        m("quiver_grpc_request_duration_seconds_count{method=\"quiver.v1.Points/Search\"}"),
        5.0
    );
    assert_eq!(
        m("quiver_grpc_request_duration_seconds_bucket{method=\"quiver.v1.Points/Search\",le=\"+Inf\"}"),
        5.0
    );
    assert!(
        m("quiver_grpc_request_duration_seconds_sum{method=\"quiver.v1.Points/Search\"}") > 0.0
    );
    // Each search's own time_us, in its histogram.
    assert_eq!(
        m("quiver_search_time_seconds_count{method=\"quiver.v1.Points/Search\"}"),
        5.0
    );
    assert!(m("quiver_search_time_seconds_sum{method=\"quiver.v1.Points/Search\"}") > 0.0);
    assert_eq!(m("quiver_collections"), 1.0);
    assert_eq!(m("quiver_collection_points{collection=\"docs\"}"), 200.0);
    // Frozen segments merge into the SSD tier at checkpoints.
    assert!(m("quiver_collection_segments{collection=\"docs\"}") >= 1.0);
    assert!(m("quiver_collection_merges_total{collection=\"docs\"}") >= 1.0);
    assert!(m("quiver_collection_ssd_points{collection=\"docs\"}") >= 64.0);
    assert!(m("quiver_collection_ssd_bytes{collection=\"docs\"}") > 0.0);
    assert!(m("quiver_collection_memory_tier_points{collection=\"docs\"}") <= 64.0);
    assert!(m("quiver_collection_index_memory_bytes{collection=\"docs\"}") > 200.0 * 16.0);
    assert!(m("quiver_collection_wal_bytes{collection=\"docs\"}") > 0.0);
    assert_eq!(m("quiver_collection_last_lsn{collection=\"docs\"}"), 4.0);
    assert!(m("quiver_collection_checkpoint_seconds_total{collection=\"docs\"}") > 0.0);

    // Counters move with more requests.
    pts.search(search()).await.unwrap();
    let (_, later) = http_get(&metrics_addr, "/metrics");
    assert_eq!(metric(&later, search_ok), Some(6.0));
    let (status, _) = http_get(&metrics_addr, "/other");
    assert!(status.contains("404"), "{status}");
    drop((cols, pts, ch));
    assert_eq!(server.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        dir.path(),
        &["--metrics-addr", "off"],
        &[("QUIVER_LOG_FORMAT", "json"), ("QUIVER_LOG", "info")],
    );
    let ch = server.connect().await;
    collections(&ch, None).create(create("docs")).await.unwrap();
    drop(ch);
    let addr = server.addr.clone();
    let (status, log) = server.stop_with_log();
    assert_eq!(status.code(), Some(0));
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        assert!(l["level"].is_string() && l["timestamp"].is_string(), "{l}");
    }
    let message = |m: &str| lines.iter().find(|l| l["fields"]["message"] == m);
    let serving = message("serving").unwrap_or_else(|| panic!("{log}"));
    assert_eq!(serving["fields"]["addr"], addr.as_str(), "{serving}");
    assert!(message("created collection").is_some(), "{log}");
    assert!(message("all collections closed").is_some(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_limit_are_shed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start_with(
        dir.path(),
        &["--metrics-addr", &metrics_addr],
        &[("QUIVER_MAX_CONCURRENT_REQUESTS", "2")],
    );
    let ch = server.connect().await;
    collections(&ch, None).create(create("docs")).await.unwrap();

    // Two open upsert streams hold both slots.
    let mut streams = Vec::new();
    for s in 0..2u64 {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(upsert(s * 10..s * 10 + 10)).await.unwrap();
        let mut acks = points(&ch, None)
            .upsert_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acks.message().await.unwrap().unwrap().upserted, 10);
        streams.push((tx, acks));
    }
    let started = Instant::now();
    let e = points(&ch, None).count(count()).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("max_concurrent_requests"), "{e:?}");
    assert!(waited < Duration::from_secs(2), "shed after {waited:?}");
    // Health checks are never shed.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();

    // Closing one stream frees its slot.
    let (tx, mut acks) = streams.pop().unwrap();
    drop(tx);
    assert!(acks.message().await.unwrap().is_none());
    let deadline = Instant::now() + Duration::from_secs(10);
    let n = loop {
        match points(&ch, None).count(count()).await {
            Ok(r) => break r.into_inner().count,
            Err(e) if e.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(n, 20);
    let (_, body) = http_get(&metrics_addr, "/metrics");
    let shed =
        "quiver_grpc_requests_total{method=\"quiver.v1.Points/Count\",code=\"RESOURCE_EXHAUSTED\"}";
    assert!(metric(&body, shed).unwrap_or(0.0) >= 1.0, "{body}");
    drop((streams, ch));
    assert_eq!(server.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_open_stream_and_a_restart_finds_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let ch = server.connect().await;
    collections(&ch, None).create(create("docs")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut acks = points(&ch, None)
        .upsert_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(upsert(0..30)).await.unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().upserted, 30);

    server.terminate();
    // Draining: the process stays up for the open stream, but takes no new connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.exited().is_none(), "exited with a stream open");

    // The in-flight request keeps going and completes successfully.
    tx.send(upsert(30..60)).await.unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().upserted, 30);
    drop(tx);
    assert!(acks.message().await.unwrap().is_none(), "stream ends OK");
    drop((acks, ch));
    assert_eq!(server.wait().code(), Some(0));

    assert_restart_counts(dir.path(), 60).await;
}

/// A SIGTERM while the collections are still opening (replaying their WAL)
/// stops the server at once with exit 0, and loses nothing: the next start
/// replays again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_replaying_the_wal_exits_cleanly_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 32u64;
    let n = 40_000u64;
    let mut server = Server::start(dir.path());
    let ch = server.connect().await;
    let mut req = create("docs");
    req.dimension = dim as u32;
    collections(&ch, None).create(req).await.unwrap();
    let mut client = points(&ch, None);
    for start in (0..n).step_by(4000) {
        let pts = (start..start + 4000)
            .map(|i| pb::Point {
                id: i,
                vector: (0..dim).map(|j| ((i * 31 + j * 17) % 101) as f32).collect(),
                ..Default::default()
            })
            .collect();
        client
            .upsert(pb::UpsertRequest {
                collection: "docs".into(),
                points: pts,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    drop((client, ch));
    drop(server); // SIGKILL: the points live only in the WAL

    let server = Server::start_with(
        dir.path(),
        &["--metrics-addr", "off"],
        &[("QUIVER_LOG", "info")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("opening collections") {
        assert!(
            Instant::now() < deadline,
            "no start-up log\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.terminate();
    let (status, log) = server.wait_with_log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("shutdown requested while opening collections"),
        "the signal landed during the replay\n{log}"
    );

    assert_restart_counts(dir.path(), n).await;
}

/// Starts the server on `data` again, checks that "docs" holds `n` points,
/// and stops it cleanly.
async fn assert_restart_counts(data: &std::path::Path, n: u64) {
    let mut server = Server::start(data);
    let ch = server.connect().await;
    let got = points(&ch, None)
        .count(count())
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(got, n, "points after a restart");
    drop(ch);
    assert_eq!(server.stop().code(), Some(0));
}
