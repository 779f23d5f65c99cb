//! `quiver health` through the real binary: SERVING against `quiver serve`
//! (also through its wildcard listen address), failures against a closed
//! port, a silent listener and an unknown service, NOT_SERVING and the
//! bearer key against an in-process `grpc.health.v1` server.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tonic::{Request, Status};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::common::quiver_bin;
use crate::server::Server;

/// Runs `quiver health ARGS` (off the async runtime) with `QUIVER_ADDR` and
/// `QUIVER_API_KEY` cleared unless `env` sets them.
async fn health(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(quiver_bin());
    cmd.arg("health")
        .args(args)
        .env_remove("QUIVER_ADDR")
        .env_remove("QUIVER_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run quiver health"))
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_fails_with(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure: {}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(needle),
        "stderr should mention {needle:?}: {}",
        text(o)
    );
}

/// A port nothing listens on (bound, noted, released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_against_the_real_server_then_a_closed_port() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    server.connect().await;
    let addr = server.addr.clone();
    let port = addr.rsplit(':').next().unwrap().to_string();

    let o = health(&["--addr", &addr], &[]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("SERVING"));

    // The server's own wildcard listen address, from the environment.
    let wildcard = format!("0.0.0.0:{port}");
    let o = health(&[], &[("QUIVER_ADDR", &wildcard)]).await;
    assert!(o.status.success(), "{}", text(&o));

    let o = health(&["--addr", &addr, "--service", "quiver.v1.Points"], &[]).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = health(&["--addr", &addr, "--service", "no.such.Service"], &[]).await;
    assert_fails_with(&o, "does not know service \"no.such.Service\"");

    assert!(server.stop().success());
    let o = health(&["--addr", &addr, "--timeout-ms", "2000"], &[]).await;
    assert_fails_with(&o, "cannot connect");

    let elsewhere = format!("127.0.0.1:{}", closed_port());
    let o = health(&["--addr", &elsewhere], &[]).await;
    assert_fails_with(&o, "cannot connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_times_out_on_a_silent_listener() {
    // Accepts TCP (the kernel completes the handshake) but never speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let o = health(&["--addr", &addr, "--timeout-ms", "300"], &[]).await;
    assert_fails_with(&o, "no answer");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    drop(silent);
}

/// An in-process health server on a random port whose every call must carry
/// `authorization: Bearer k1`. Returns its address and status reporter.
async fn keyed_health_server() -> (SocketAddr, HealthReporter) {
    let (reporter, _) = tonic_health::server::health_reporter();
    let service = HealthService::from_health_reporter(reporter.clone());
    let check_key = |req: Request<()>| match req.metadata().get("authorization") {
        Some(v) if v == "Bearer k1" => Ok(req),
        _ => Err(Status::unauthenticated("missing or invalid API key")),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthServer::with_interceptor(service, check_key))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (addr, reporter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_sends_the_key_and_reports_not_serving() {
    let (addr, reporter) = keyed_health_server().await;
    let addr = addr.to_string();

    let o = health(&["--addr", &addr, "--api-key", "k1"], &[]).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = health(&["--addr", &addr], &[("QUIVER_API_KEY", "k1")]).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = health(&["--addr", &addr], &[]).await;
    assert_fails_with(&o, "API key was refused");
    let o = health(&["--addr", &addr, "--api-key", "wrong"], &[]).await;
    assert_fails_with(&o, "API key was refused");

    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let o = health(&["--addr", &addr, "--api-key", "k1"], &[]).await;
    assert_fails_with(&o, "NOT_SERVING");
}
