//! `quiver serve` through the real binary: the gRPC API end to end, error
//! codes naming the field, and a SIGTERM restart that keeps the data. The
//! [`Server`] helper here is shared with `server_ops.rs`.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pb::collections_client::CollectionsClient;
use pb::points_client::PointsClient;
use quiver::server::pb;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

const DIM: usize = 4;
const N: u64 = 50;

/// A free local port: bind :0, note it, release it for the server.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `quiver serve` child process, killed if the test fails (also used by
/// the `health`, `python_client`, `load` and `offline_index` modules). Its
/// stderr (the log) is collected, and printed if the test panics.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) addr: String,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `data` on a free port, without the metrics endpoint.
    pub(crate) fn start(data: &Path) -> Server {
        Server::start_with(data, &["--metrics-addr", "off"], &[])
    }

    /// Serves `data` on a free port with extra `serve` flags and environment.
    pub(crate) fn start_with(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        // An --addr in `args` replaces the free port; clients reach it on loopback.
        let given = args
            .iter()
            .position(|a| *a == "--addr")
            .map(|i| args[i + 1].replace("0.0.0.0", "127.0.0.1"));
        let addr = given
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        let mut cmd = Command::new(super::common::quiver_bin());
        cmd.args(["serve", "--data"]).arg(data);
        if given.is_none() {
            cmd.args(["--addr", &addr]);
        }
        let mut child = cmd
            .args(args)
            .env("QUIVER_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start quiver serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Server {
            child: Some(child),
            addr,
            log,
            reader: Some(reader),
        }
    }

    /// Everything the server wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Connects over plaintext once health says SERVING (within 20 s).
    pub(crate) async fn connect(&mut self) -> Channel {
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr)).unwrap();
        self.connect_to(endpoint).await
    }

    /// Connects through `endpoint` once health says SERVING (within 20 s).
    pub(crate) async fn connect_to(&mut self, endpoint: Endpoint) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited early: {status}\n{}", self.log());
            }
            if let Ok(ch) = endpoint.connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
                let req = tonic_health::pb::HealthCheckRequest {
                    service: "quiver.v1.Points".into(),
                };
                if let Ok(r) = health.check(req).await {
                    if r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                    {
                        return ch;
                    }
                }
            }
            assert!(Instant::now() < deadline, "server not serving after 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM (the server then drains and exits).
    pub(crate) fn terminate(&self) {
        let child = self.child.as_ref().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// The exit status, if the server has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    /// Waits for the exit status (within 20 s).
    pub(crate) fn wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("server did not exit within 20 s\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status (within 20 s).
    pub(crate) fn stop(self) -> ExitStatus {
        self.terminate();
        self.wait()
    }

    /// SIGTERM, then the exit status and the whole log.
    pub(crate) fn stop_with_log(self) -> (ExitStatus, String) {
        self.terminate();
        self.wait_with_log()
    }

    /// The exit status (within 20 s) and the whole log.
    pub(crate) fn wait_with_log(mut self) -> (ExitStatus, String) {
        let reader = self.reader.take();
        let log = self.log.clone();
        let status = self.wait();
        if let Some(r) = reader {
            let _ = r.join();
        }
        let log = log.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.log());
        }
    }
}

pub(crate) fn vector(i: u64) -> Vec<f32> {
    vec![i as f32, (i % 7) as f32, ((i * 3) % 11) as f32, 1.0]
}

fn payload(i: u64) -> BTreeMap<String, pb::Value> {
    use pb::value::Kind;
    BTreeMap::from([
        (
            "i".to_string(),
            pb::Value {
                kind: Some(Kind::IntValue(i as i64)),
            },
        ),
        (
            "tag".to_string(),
            pb::Value {
                kind: Some(Kind::StringValue(format!("p{i}"))),
            },
        ),
    ])
}

pub(crate) fn point(i: u64) -> pb::Point {
    pb::Point {
        id: i,
        vector: vector(i),
        payload: payload(i),
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn search(vector: Vec<f32>, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: "docs".into(),
        vector,
        k,
        ef: Some(500),
        nprobe: None,
        with_payload: true,
        with_vector: false,
        ..Default::default()
    }
}

/// Exact top-5 distances of a query over the points still alive.
fn brute_force(q: &[f32], alive: impl Iterator<Item = u64>) -> Vec<f32> {
    let mut d: Vec<f32> = alive.map(|i| l2(q, &vector(i))).collect();
    d.sort_by(f32::total_cmp);
    d.truncate(5);
    d
}

pub(crate) fn assert_code<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: Code,
    field: &str,
) {
    let e = r.expect_err("expected an error status");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(field),
        "message should name {field:?}: {e:?}"
    );
}

/// Service names listed by gRPC server reflection, asking with `api_key` if given.
pub(crate) async fn reflected_services(
    ch: Channel,
    api_key: Option<&str>,
) -> Result<Vec<String>, tonic::Status> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let auth = api_key.map(|k| {
        format!("Bearer {k}")
            .parse::<tonic::metadata::AsciiMetadataValue>()
            .unwrap()
    });
    let mut replies =
        ServerReflectionClient::with_interceptor(ch, move |mut r: tonic::Request<()>| {
            if let Some(v) = &auth {
                r.metadata_mut().insert("authorization", v.clone());
            }
            Ok(r)
        })
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let reply = replies.message().await?.expect("a reflection reply");
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            Ok(l.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("unexpected reflection reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_crud_search_errors_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let ch = server.connect().await;
    let mut cols = CollectionsClient::new(ch.clone());
    let mut pts = PointsClient::new(ch.clone());

    let create = pb::CreateCollectionRequest {
        name: "docs".into(),
        dimension: DIM as u32,
        metric: pb::Metric::L2.into(),
        ef_search: Some(200),
        ..Default::default()
    };
    let info = cols.create(create.clone()).await.unwrap().into_inner();
    assert_eq!(
        info.collection.unwrap().settings.unwrap().dimension,
        DIM as u32
    );
    assert_code(
        cols.create(create.clone()).await,
        Code::AlreadyExists,
        "docs",
    );
    let bad_name = pb::CreateCollectionRequest {
        name: "a/b".into(),
        ..create.clone()
    };
    assert_code(cols.create(bad_name).await, Code::InvalidArgument, "name");
    let bad_dim = pb::CreateCollectionRequest {
        name: "x".into(),
        dimension: 0,
        ..create.clone()
    };
    assert_code(
        cols.create(bad_dim).await,
        Code::InvalidArgument,
        "dimension",
    );

    // Upsert: one unary batch, then two streamed batches (one ack each).
    let ack = pts
        .upsert(pb::UpsertRequest {
            collection: "docs".into(),
            points: (0..20).map(point).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.upserted, 20);
    let batches = vec![
        pb::UpsertRequest {
            collection: "docs".into(),
            points: (20..35).map(point).collect(),
            ..Default::default()
        },
        pb::UpsertRequest {
            collection: "docs".into(),
            points: (35..N).map(point).collect(),
            ..Default::default()
        },
    ];
    let mut acks = pts
        .upsert_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut n_acks = 0;
    while let Some(a) = acks.message().await.unwrap() {
        assert!(a.lsn > ack.lsn);
        n_acks += 1;
    }
    assert_eq!(n_acks, 2);
    let count = |pts: &mut PointsClient<Channel>| {
        let mut pts = pts.clone();
        async move {
            pts.count(pb::CountRequest {
                collection: "docs".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .count
        }
    };
    assert_eq!(count(&mut pts).await, N);

    // Errors name the field.
    let mut bad = (0..3).map(point).collect::<Vec<_>>();
    bad[1].vector.pop();
    let r = pts
        .upsert(pb::UpsertRequest {
            collection: "docs".into(),
            points: bad,
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument, "points[1].vector");
    assert_code(
        pts.search(search(vec![0.0, f32::NAN, 0.0, 0.0], 5)).await,
        Code::InvalidArgument,
        "vector",
    );
    assert_code(
        pts.search(search(vector(1), 0)).await,
        Code::InvalidArgument,
        "k",
    );
    assert_code(
        pts.search(search(vec![1.0; DIM + 1], 5)).await,
        Code::InvalidArgument,
        "vector",
    );
    let unknown = pts
        .count(pb::CountRequest {
            collection: "nope".into(),
            ..Default::default()
        })
        .await;
    assert_code(unknown, Code::NotFound, "nope");
    let unknown = pts
        .search(pb::SearchRequest {
            collection: "nope".into(),
            ..search(vector(1), 5)
        })
        .await;
    assert_code(unknown, Code::NotFound, "nope");

    // Search: exact on small data with a large ef.
    let hits = pts
        .search(search(vector(17), 5))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits[0].id, 17);
    assert_eq!(hits[0].payload["tag"], payload(17)["tag"]);
    let got: Vec<f32> = hits.iter().map(|h| h.distance).collect();
    assert_eq!(got, brute_force(&vector(17), 0..N));
    let batch = pts
        .search_batch(pb::SearchBatchRequest {
            collection: "docs".into(),
            queries: (0..3)
                .map(|i| pb::SearchQuery {
                    vector: vector(i * 10),
                    k: 1,
                    ef: Some(500),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let top: Vec<u64> = batch.results.iter().map(|r| r.hits[0].id).collect();
    assert_eq!(top, [0, 10, 20]);

    // Get (unknown ids left out), scroll through everything.
    let got = pts
        .get(pb::GetRequest {
            collection: "docs".into(),
            ids: vec![3, 999, 4],
            with_payload: true,
            with_vector: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .points;
    assert_eq!(got.iter().map(|p| p.id).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(got[0].vector, vector(3));
    assert_eq!(got[1].payload, payload(4));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = pts
            .scroll(pb::ScrollRequest {
                collection: "docs".into(),
                after,
                limit: 16,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.points.len() <= 16);
        seen.extend(page.points.iter().map(|p| p.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..N).collect::<Vec<_>>());

    // Delete, describe, list, drop.
    let del = pts
        .delete(pb::DeleteRequest {
            collection: "docs".into(),
            ids: vec![0, 1, 2, 999],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(del.deleted, 3);
    assert_eq!(count(&mut pts).await, N - 3);
    let d = cols
        .describe(pb::DescribeCollectionRequest {
            name: "docs".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    let stats = d.stats.unwrap();
    assert_eq!(stats.points, N - 3);
    assert!(
        stats.last_lsn >= del.lsn && stats.index_memory_bytes > 0,
        "{stats:?}"
    );
    assert_eq!(d.settings.unwrap().ef_search, 200);
    cols.create(pb::CreateCollectionRequest {
        name: "tmp".into(),
        ..create.clone()
    })
    .await
    .unwrap();
    let names = cols
        .list(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, ["docs", "tmp"]);
    cols.drop(pb::DropCollectionRequest { name: "tmp".into() })
        .await
        .unwrap();
    assert_code(
        cols.drop(pb::DropCollectionRequest { name: "tmp".into() })
            .await,
        Code::NotFound,
        "tmp",
    );
    let names = cols
        .list(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, ["docs"]);
    assert!(!tmp.path().join("collections/tmp").exists());

    // Limits: refused with a status naming the field.
    let too_many = pb::UpsertRequest {
        collection: "docs".into(),
        points: vec![pb::Point::default(); 10_001],
        ..Default::default()
    };
    assert_code(
        pts.upsert(too_many).await,
        Code::ResourceExhausted,
        "points",
    );
    assert_code(
        pts.search(search(vector(1), 10_001)).await,
        Code::InvalidArgument,
        "k",
    );

    // Reflection lists the services.
    let services = reflected_services(ch.clone(), None).await.unwrap();
    for s in [
        "quiver.v1.Collections",
        "quiver.v1.Points",
        "grpc.health.v1.Health",
    ] {
        assert!(services.iter().any(|n| n == s), "{s} not in {services:?}");
    }

    // Restart on the same data directory: everything acknowledged is there.
    drop((cols, pts, ch));
    let status = server.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM should exit cleanly: {status}"
    );
    let mut server = Server::start(tmp.path());
    let ch = server.connect().await;
    let mut cols = CollectionsClient::new(ch.clone());
    let mut pts = PointsClient::new(ch);
    let names = cols
        .list(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, ["docs"]);
    assert_eq!(count(&mut pts).await, N - 3);
    let hits = pts
        .search(search(vector(17), 5))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits[0].id, 17);
    let got: Vec<f32> = hits.iter().map(|h| h.distance).collect();
    assert_eq!(got, brute_force(&vector(17), 3..N));
    let got = pts
        .get(pb::GetRequest {
            collection: "docs".into(),
            ids: vec![1, 5],
            with_payload: true,
            with_vector: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .points;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, payload(5));
    assert_eq!(server.stop().code(), Some(0));
}

/// `quiver import` streams a dataset file into a running server and
/// `quiver query` measures recall against the file's ground truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_query_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.fvecs");
    let queries = dir.path().join("query.fbin");
    let gt = dir.path().join("gt.ibin");
    let mut data = quiver::dataset::synthetic::clustered(3050, 16, 9);
    let q = data.split_off(3000);
    quiver::dataset::save_vectors(&base, &data).unwrap();
    quiver::dataset::save_vectors(&queries, &q).unwrap();
    let truth = quiver::dataset::ground_truth(&data, &q, 10, quiver::distance::Metric::L2).unwrap();
    quiver::dataset::save_neighbors(&gt, &truth).unwrap();

    let mut server = Server::start(&dir.path().join("data"));
    let ch = server.connect().await;
    let addr = server.addr.clone();
    let run = |args: &[&str]| {
        Command::new(super::common::quiver_bin())
            .args(args)
            .args(["--addr", &addr, "--log", "warn"])
            .output()
            .unwrap()
    };
    let b = base.display().to_string();
    // Twice: the second import replaces the same ids (idempotent).
    for _ in 0..2 {
        let out = run(&[
            "import",
            "--collection",
            "c",
            "--input",
            &b,
            "--create",
            "--metric",
            "l2",
            "--batch",
            "700",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json = dir.path().join("q.json");
    let (qs, g, j) = (
        queries.display().to_string(),
        gt.display().to_string(),
        json.display().to_string(),
    );
    let out = run(&[
        "query",
        "--collection",
        "c",
        "--queries",
        &qs,
        "--gt",
        &g,
        "--ef",
        "200",
        "--concurrency",
        "3",
        "--json",
        &j,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report["recall"].as_f64().unwrap() >= 0.99, "{report}");
    assert_eq!(report["errors"], 0);
    assert!(report["qps"].as_f64().unwrap() > 0.0);
    let count = PointsClient::new(ch)
        .count(pb::CountRequest {
            collection: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(count.into_inner().count, 3000);
    // An unknown collection fails with a non-zero exit code and names it.
    let out = run(&["query", "--collection", "nope", "--queries", &qs]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}
