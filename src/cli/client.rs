//! `quiver import` and `quiver query`: gRPC clients of a running server for
//! bulk loads (streamed, idempotent by id) and query runs (recall, QPS,
//! latency percentiles). [`ConnectArgs`] and [`connect`] are the one way
//! client commands reach a server (address, TLS, API key).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver::filter::FieldType;
use std::collections::BTreeMap;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use pb::collections_client::CollectionsClient;
use pb::points_client::PointsClient;
use quiver::dataset;
use quiver::distance::Metric;
use quiver::server::pb;

/// How a client command reaches the server (`Debug` hides the key).
#[derive(Args, Clone)]
pub struct ConnectArgs {
    /// Server address: HOST:PORT, http://HOST:PORT or https://HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:6334", env = "QUIVER_ADDR")]
    pub addr: String,
    /// API key, sent as `authorization: Bearer <key>`.
    #[arg(long, env = "QUIVER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// CA certificate (PEM) that signed the server's TLS certificate; implies
    /// https. Without it, https:// addresses are checked against the system's roots.
    #[arg(long, env = "QUIVER_TLS_CA", value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectArgs")
            .field("addr", &self.addr)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

/// Adds the API key (when there is one) to every request.
#[derive(Clone)]
pub struct BearerAuth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel whose requests carry the API key.
pub type Authed = InterceptedService<Channel, BearerAuth>;

/// A connected server.
#[derive(Clone)]
pub struct Connection {
    pub channel: Channel,
    auth: BearerAuth,
}

impl Connection {
    /// The `quiver.v1.Points` client, with the API key and 64 MiB messages.
    pub fn points(&self) -> PointsClient<Authed> {
        PointsClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_encoding_message_size(quiver::limits::DEFAULT_MAX_MESSAGE_BYTES)
            .max_decoding_message_size(quiver::limits::DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// The `quiver.v1.Collections` client, with the API key.
    pub fn collections(&self) -> CollectionsClient<Authed> {
        CollectionsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
}

/// Connects to `c.addr`: TLS for https:// or with `--tls-ca`, plaintext
/// otherwise; the API key goes with every request of [`Connection`]'s clients.
pub async fn connect(c: &ConnectArgs) -> anyhow::Result<Connection> {
    let addr = c.addr.trim();
    let uri = match (addr.split_once("://"), &c.tls_ca) {
        (Some(("http", rest)), Some(_)) => format!("https://{rest}"),
        (Some(_), _) => addr.to_string(),
        (None, Some(_)) => format!("https://{addr}"),
        (None, None) => format!("http://{addr}"),
    };
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("--addr {addr:?} is not a valid address"))?;
    if uri.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        tls = match &c.tls_ca {
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("reading --tls-ca {}", ca.display()))?;
                tls.ca_certificate(Certificate::from_pem(pem))
            }
            None => tls.with_native_roots(),
        };
        endpoint = endpoint
            .tls_config(tls)
            .with_context(|| format!("TLS settings for {uri}"))?;
    }
    let auth = match &c.api_key {
        Some(k) => {
            let value = format!("Bearer {}", k.trim())
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| anyhow::anyhow!("--api-key must be printable ASCII"))?;
            BearerAuth(Some(value))
        }
        None => BearerAuth(None),
    };
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {uri}"))?;
    Ok(Connection { channel, auth })
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Target collection.
    #[arg(long)]
    collection: String,
    /// Dataset file (.fvecs, .bvecs, .fbin, .u8bin, .i8bin, .hdf5).
    #[arg(long)]
    input: PathBuf,
    /// Create the collection first (with the file's dimension); an existing one is reused.
    #[arg(long, requires = "metric")]
    create: bool,
    /// Metric for `--create`: l2 | ip | cosine.
    #[arg(long)]
    metric: Option<Metric>,
    /// For `--create`: keep every point in memory (no SSD tier; `ssd_tier: false`).
    #[arg(long, requires = "create")]
    no_ssd_tier: bool,
    /// For `--create`: points the memory tier holds before it is frozen
    /// (and merged into the SSD tier); the server's default when absent.
    #[arg(long, requires = "create")]
    memory_tier_points: Option<u64>,
    /// For `--create`: how memory segments store vectors, f32 | f16 | sq8 (`hnsw_encoding`).
    #[arg(long, requires = "create")]
    hnsw_encoding: Option<String>,
    /// For `--create`: the collection's re-rank factor for f16/sq8 (`rerank`).
    #[arg(long, requires = "create")]
    rerank: Option<u32>,
    /// For `--create` on a cluster: shards the points are spread over (`shards`).
    #[arg(long, requires = "create")]
    shards: Option<u32>,
    /// For `--create` on a cluster: copies of each shard (`replication_factor`).
    #[arg(long, requires = "create")]
    replication_factor: Option<u32>,
    /// For `--create`: most acknowledged points waiting for the graph
    /// before writes wait (`index_buffer_points`; 0: writes wait for their
    /// graph insert); the server's default when absent.
    #[arg(long, requires = "create")]
    index_buffer_points: Option<u64>,
    /// For `--create`: acknowledge writes before fsync and fsync every this
    /// many milliseconds (`FSYNC_MODE_INTERVAL`); fsync before every
    /// acknowledgement when absent.
    #[arg(long, requires = "create")]
    fsync_interval_ms: Option<u64>,
    /// After the import, wait until the server has linked every point into
    /// the graph (`unindexed_points` 0) and report how long that took.
    #[arg(long)]
    wait_indexed: bool,
    /// Points per streamed batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Import only the first N vectors.
    #[arg(long)]
    limit: Option<usize>,
    /// Id of the first vector (row i gets id start_id + i, so re-running is idempotent).
    #[arg(long, default_value_t = 0)]
    start_id: u64,
    /// Payloads: one JSON object per line, line i for row i (e.g. the
    /// dataset's attributes.jsonl).
    #[arg(long)]
    payloads: Option<PathBuf>,
    /// Index a payload field, `KEY:TYPE` (keyword, integer, float, bool);
    /// repeatable. At `--create` or on an existing collection.
    #[arg(long = "index", value_name = "KEY:TYPE")]
    indexes: Vec<String>,
}

#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    #[arg(long)]
    collection: String,
    /// Query vectors.
    #[arg(long)]
    queries: PathBuf,
    /// Ground truth (.ibin/.ivecs, ids = imported row numbers) for recall.
    #[arg(long)]
    gt: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Search beam width (the collection's default when absent).
    #[arg(long)]
    ef: Option<u32>,
    /// Re-rank factor for f16/sq8 memory segments [default: the collection's `rerank`].
    #[arg(long)]
    rerank: Option<u32>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Use only the first N queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Write `{"recall", "qps", "p50_us", "p99_us", "server_p50_us", "server_p99_us", "errors"}`
    /// here (`server_*`: percentiles of the responses' own `time_us`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only points matching this filter (JSON, README "Filtered search");
    /// --gt must then be the filtered ground truth.
    #[arg(long)]
    filter: Option<String>,
    /// Exact search (every tier scans every matching point).
    #[arg(long)]
    exact: bool,
    /// Print the plan of the first query (the server's explain) as JSON.
    #[arg(long)]
    explain: bool,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Streams the upserts `rx` yields over one `UpsertStream` call; returns
/// how many points the server acknowledged, telling `progress` the running
/// count after each acknowledgement.
pub(crate) async fn upsert_stream(
    conn: &Connection,
    rx: tokio::sync::mpsc::Receiver<pb::UpsertRequest>,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<u64> {
    let mut acks = conn
        .points()
        .upsert_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status)?
        .into_inner();
    let mut done = 0u64;
    while let Some(ack) = acks.message().await.map_err(status)? {
        done += ack.upserted;
        progress(done);
    }
    Ok(done)
}

pub(crate) fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("server: {:?}: {}", e.code(), e.message())
}

pub fn import(a: ImportArgs) -> anyhow::Result<()> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let data = dataset::load_vectors(&a.input, a.limit)
        .with_context(|| format!("reading --input {}", a.input.display()))?;
    let payloads: Arc<Vec<BTreeMap<String, pb::Value>>> = Arc::new(match &a.payloads {
        Some(p) => read_payloads(p, data.len())?,
        None => Vec::new(),
    });
    let indexes: Vec<pb::FieldIndex> = a
        .indexes
        .iter()
        .map(|spec| {
            let (key, kind) = spec
                .split_once(':')
                .with_context(|| format!("--index {spec:?}: expected KEY:TYPE"))?;
            let kind: FieldType = kind
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--index {spec:?}: {e}"))?;
            if key.is_empty() {
                bail!("--index {spec:?}: the key is empty");
            }
            Ok(pb::FieldIndex {
                key: key.to_string(),
                r#type: pb::FieldType::from(kind) as i32,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    runtime()?.block_on(async move {
        let conn = connect(&a.conn).await?;
        if a.create {
            let metric = match a.metric {
                Some(Metric::L2) => pb::Metric::L2,
                Some(Metric::InnerProduct) => pb::Metric::InnerProduct,
                Some(Metric::Cosine) | None => pb::Metric::Cosine,
            };
            let req = pb::CreateCollectionRequest {
                name: a.collection.clone(),
                dimension: data.dim as u32,
                metric: metric as i32,
                ssd_tier: a.no_ssd_tier.then_some(false),
                field_indexes: indexes.clone(),
                memory_tier_points: a.memory_tier_points,
                hnsw_encoding: a.hnsw_encoding.clone(),
                rerank: a.rerank,
                shards: a.shards,
                replication_factor: a.replication_factor,
                index_buffer_points: a.index_buffer_points,
                fsync: if a.fsync_interval_ms.is_some() {
                    pb::FsyncMode::Interval as i32
                } else {
                    pb::FsyncMode::Unspecified as i32
                },
                fsync_interval_ms: a.fsync_interval_ms,
                ..Default::default()
            };
            match conn.collections().create(req).await {
                Ok(_) => tracing::info!(collection = %a.collection, dim = data.dim, "created"),
                Err(e) if e.code() == tonic::Code::AlreadyExists => {
                    tracing::info!(collection = %a.collection, "exists; importing into it")
                }
                Err(e) => return Err(status(e)),
            }
        }
        for field in &indexes {
            conn.collections()
                .create_field_index(pb::CreateFieldIndexRequest {
                    collection: a.collection.clone(),
                    field: Some(field.clone()),
                })
                .await
                .map_err(status)?;
        }
        let bar = ProgressBar::new(data.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "importing {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        let (collection, dim, batch, start_id) =
            (a.collection.clone(), data.dim, a.batch, a.start_id);
        let rows = data.len();
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::UpsertRequest>(4);
        let producer = tokio::spawn(async move {
            for first in (0..rows).step_by(batch) {
                let points = (first..(first + batch).min(rows))
                    .map(|i| pb::Point {
                        id: start_id + i as u64,
                        vector: data.data[i * dim..(i + 1) * dim].to_vec(),
                        payload: payloads.get(i).cloned().unwrap_or_default(),
                    })
                    .collect();
                if tx
                    .send(pb::UpsertRequest {
                        collection: collection.clone(),
                        points,
                        ..Default::default()
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let done = upsert_stream(&conn, rx, |done| bar.set_position(done)).await?;
        producer.await?;
        bar.finish_and_clear();
        if done as usize != rows {
            bail!("server acknowledged {done} of {rows} points");
        }
        let secs = started.elapsed().as_secs_f64();
        out!(
            "imported {done} points into {:?} in {secs:.1} s ({:.0} points/s acknowledged)",
            a.collection,
            done as f64 / secs
        );
        if a.wait_indexed {
            let waited = Instant::now();
            while unindexed_points(&conn, &a.collection).await? > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            out!(
                "graph caught up {:.1} s after the last acknowledgement ({:.1} s after the start)",
                waited.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })
}

/// The collection's `unindexed_points` (acknowledged, not yet in the graph).
pub(crate) async fn unindexed_points(conn: &Connection, name: &str) -> anyhow::Result<u64> {
    let info = conn
        .collections()
        .describe(pb::DescribeCollectionRequest {
            name: name.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(info
        .collection
        .and_then(|c| c.stats)
        .map_or(0, |s| s.unindexed_points))
}

/// One JSON payload per line (line i for row i), at least `rows` of them.
fn read_payloads(
    path: &std::path::Path,
    rows: usize,
) -> anyhow::Result<Vec<BTreeMap<String, pb::Value>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --payloads {}", path.display()))?;
    let mut out = Vec::with_capacity(rows);
    for (i, line) in text.lines().take(rows).enumerate() {
        let p: quiver::collection::Payload = serde_json::from_str(line)
            .with_context(|| format!("--payloads {} line {}", path.display(), i + 1))?;
        out.push(
            p.into_iter()
                .map(|(k, v)| (k, pb::Value::from(v)))
                .collect(),
        );
    }
    if out.len() < rows {
        bail!(
            "--payloads {} has {} lines for {rows} vectors",
            path.display(),
            out.len()
        );
    }
    Ok(out)
}

pub fn query(a: QueryArgs) -> anyhow::Result<()> {
    if a.k == 0 || a.concurrency == 0 {
        bail!("--k and --concurrency must be at least 1");
    }
    let queries = Arc::new(
        dataset::load_vectors(&a.queries, a.limit)
            .with_context(|| format!("reading --queries {}", a.queries.display()))?,
    );
    let gt = match &a.gt {
        Some(g) => Some(
            dataset::load_neighbors(g).with_context(|| format!("reading --gt {}", g.display()))?,
        ),
        None => None,
    };
    if let Some(gt) = &gt {
        if gt.len() < queries.len() {
            bail!("--gt has {} rows for {} queries", gt.len(), queries.len());
        }
    }
    let filter = match &a.filter {
        Some(text) => Some(
            quiver::filter::json::parse(text, "--filter").map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    let filter = filter.as_ref().map(quiver::server::filter_to_pb);
    let (exact, explain) = (a.exact, a.explain);
    let n = queries.len();
    let (results, lat, errors, secs) = runtime()?.block_on(async {
        let conn = connect(&a.conn).await?;
        let next = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..a.concurrency {
            let (mut client, next, errors, queries) = (conn.points(), next.clone(), errors.clone(), queries.clone());
            let (collection, k, ef, filter, rerank) = (a.collection.clone(), a.k as u32, a.ef, filter.clone(), a.rerank);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= queries.len() {
                        break mine;
                    }
                    let req = pb::SearchRequest {
                        collection: collection.clone(),
                        vector: queries.row(i).to_vec(),
                        k,
                        ef,
                        filter: filter.clone(),
                        rerank,
                        exact,
                        explain: explain && i == 0,
                        ..Default::default()
                    };
                    let t = Instant::now();
                    match client.search(req).await {
                        Ok(r) => {
                            let us = t.elapsed().as_secs_f64() * 1e6;
                            let r = r.into_inner();
                            if let Some(e) = &r.explain {
                                out!("explain of query 0: {e:#?}");
                            }
                            let ids = r.hits.iter().map(|h| h.id as u32).collect::<Vec<u32>>();
                            mine.push((i, ids, us, r.time_us as f64));
                        }
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                                tracing::warn!(code = ?e.code(), message = e.message(), "search failed");
                            }
                        }
                    }
                }
            }));
        }
        let mut results = vec![Vec::new(); n];
        let (mut lat, mut server) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for t in tasks {
            for (i, ids, us, server_us) in t.await? {
                results[i] = ids;
                lat.push(us);
                server.push(server_us);
            }
        }
        anyhow::Ok((results, (lat, server), errors.load(Ordering::Relaxed), started.elapsed().as_secs_f64()))
    })?;
    let (mut lat, mut server) = lat;
    lat.sort_by(f64::total_cmp);
    server.sort_by(f64::total_cmp);
    let pct = |sorted: &[f64], p: f64| {
        if sorted.is_empty() {
            0.0
        } else {
            sorted[((sorted.len() - 1) as f64 * p).round() as usize]
        }
    };
    let recall = gt.as_ref().map(|g| dataset::recall_at_k(&results, g, a.k));
    let report = serde_json::json!({
        "recall": recall,
        "qps": lat.len() as f64 / secs,
        "p50_us": pct(&lat, 0.5),
        "p99_us": pct(&lat, 0.99),
        "server_p50_us": pct(&server, 0.5),
        "server_p99_us": pct(&server, 0.99),
        "errors": errors,
    });
    out!(
        "{} queries, concurrency {}: recall@{} {}, {:.0} QPS, p50 {:.0} us, p99 {:.0} us \
         (server time_us p50 {:.0}, p99 {:.0}), {} errors",
        n,
        a.concurrency,
        a.k,
        recall.map_or("n/a".to_string(), |r| format!("{r:.4}")),
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&server, 0.5),
        pct(&server, 0.99),
        errors
    );
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing --json {}", p.display()))?;
    }
    if errors > 0 {
        bail!("{errors} of {n} queries failed");
    }
    Ok(())
}
