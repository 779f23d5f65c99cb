//! `quiver serve`: resolve the layered configuration (flags > environment >
//! TOML file > defaults), start logging in the configured format, run the
//! gRPC server until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use quiver::cluster::ClusterOptions;
use quiver::server::config::Flags;
use quiver::server::{serve, shutdown_signal, LogFormat, ServerConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config file (see deploy/quiver.toml); flags and environment override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory; collections live in `DATA/collections/<name>/` [env: QUIVER_DATA] [default: ./quiver-data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// gRPC address to listen on [env: QUIVER_ADDR] [default: 127.0.0.1:6334]
    #[arg(long)]
    addr: Option<String>,
    /// Prometheus endpoint address, or `off` [env: QUIVER_METRICS_ADDR] [default: 127.0.0.1:6335]
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Log line format: text | json [env: QUIVER_LOG_FORMAT] [default: text]
    #[arg(long)]
    log_format: Option<String>,
    /// TLS certificate chain (PEM) [env: QUIVER_TLS_CERT]
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) [env: QUIVER_TLS_KEY]
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Serve a non-loopback address without API keys [env: QUIVER_ALLOW_ANONYMOUS]
    #[arg(long)]
    allow_anonymous: bool,
    /// Join a cluster coordinated by these etcd members: etcd://HOST:PORT[,HOST:PORT…]
    /// (docs/CLUSTER.md); without it the server is a single node
    #[arg(long, env = "QUIVER_CLUSTER", value_name = "URL")]
    cluster: Option<String>,
    /// This node's id in the cluster (1-64 of [A-Za-z0-9_-]); required with --cluster
    #[arg(long, env = "QUIVER_NODE_ID", requires = "cluster")]
    node_id: Option<String>,
    /// Address other nodes reach this one at (HOST:PORT) [default: the listen address]
    #[arg(long, env = "QUIVER_ADVERTISE", requires = "cluster")]
    advertise: Option<String>,
    /// Cluster name: several clusters may share one etcd
    #[arg(long, env = "QUIVER_CLUSTER_NAME", default_value = "quiver")]
    cluster_name: String,
}

pub fn run(a: ServeArgs, log_filter: &str) -> anyhow::Result<()> {
    let flags = Flags {
        // QUIVER_CONFIG is read by the resolver, like every other variable.
        config: a.config,
        data: a.data,
        addr: a.addr,
        metrics_addr: a.metrics_addr,
        log_format: a.log_format,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
        allow_anonymous: a.allow_anonymous,
    };
    let mut config = ServerConfig::resolve(&flags, &|name| std::env::var(name).ok())
        .context("invalid server configuration")?;
    if let Some(url) = &a.cluster {
        let node_id = a
            .node_id
            .as_deref()
            .context("--cluster needs --node-id (or QUIVER_NODE_ID)")?;
        let advertise = a
            .advertise
            .clone()
            .unwrap_or_else(|| config.options.addr.to_string());
        if a.advertise.is_none() && config.options.addr.ip().is_unspecified() {
            anyhow::bail!(
                "--advertise is required when listening on {} (other nodes need a reachable address)",
                config.options.addr
            );
        }
        config.options.cluster = Some(
            ClusterOptions::new(url, node_id, &advertise, &a.cluster_name)
                .map_err(anyhow::Error::msg)?,
        );
    }
    super::init_logging(log_filter, config.log_format == LogFormat::Json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quiver-serve")
        .build()
        .context("starting the async runtime")?;
    let stop = {
        let _context = runtime.enter();
        shutdown_signal()
    };
    let served = runtime.block_on(serve(config.options, stop));
    // Don't wait for blocking tasks: a shutdown during start-up leaves the
    // collections' open (WAL replay) running, and it is safe to abandon.
    runtime.shutdown_background();
    served?;
    Ok(())
}
