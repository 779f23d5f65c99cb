//! `quiver serve`: run the gRPC server until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use quiver::server::{serve, shutdown_signal, Limits, ServeOptions};

#[derive(Args)]
pub struct ServeArgs {
    /// Data directory; collections live in `DATA/collections/<name>/`.
    #[arg(long, env = "QUIVER_DATA", default_value = "./quiver-data")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "QUIVER_ADDR", default_value = "127.0.0.1:6334")]
    addr: SocketAddr,
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quiver-serve")
        .build()
        .context("starting the async runtime")?;
    let opts = ServeOptions {
        data: a.data,
        addr: a.addr,
        limits: Limits::default(),
    };
    runtime.block_on(serve(opts, shutdown_signal()))?;
    Ok(())
}
