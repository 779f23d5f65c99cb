//! `quiver load` against the real server: 32 clients with a fixed request
//! count add up and grow the collection by what they upserted; a duration
//! bound stops a run early; a run whose requests fail exits non-zero and
//! names the first error.

use std::path::Path;
use std::process::{Command, Output};

use pb::points_client::PointsClient;
use quiver::server::pb;
use tonic::transport::Channel;

use crate::common::quiver_bin;
use crate::server::Server;

fn quiver(addr: &str, args: &[&str]) -> Output {
    Command::new(quiver_bin())
        .args(args)
        .args(["--addr", addr, "--log", "warn"])
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn u(r: &serde_json::Value, key: &str) -> u64 {
    r[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {r}"))
}

fn f(r: &serde_json::Value, key: &str) -> f64 {
    r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {r}"))
}

async fn count(ch: &Channel, collection: &str) -> u64 {
    PointsClient::new(ch.clone())
        .count(pb::CountRequest {
            collection: collection.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_runs_bounded_mixed_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.fbin");
    let data = quiver::dataset::synthetic::clustered(2000, 16, 5);
    quiver::dataset::save_vectors(&base, &data).unwrap();
    let b = base.display().to_string();
    let mut server = Server::start(&dir.path().join("data"));
    let ch = server.connect().await;
    let addr = server.addr.clone();
    ok(&quiver(
        &addr,
        &[
            "import",
            "--collection",
            "c",
            "--input",
            &b,
            "--create",
            "--metric",
            "l2",
        ],
    ));
    assert_eq!(count(&ch, "c").await, 2000);

    // 32 clients, a fixed request count, vectors drawn from the file.
    let json = dir.path().join("load.json");
    let j = json.display().to_string();
    let out = quiver(
        &addr,
        &[
            "load",
            "--collection",
            "c",
            "--clients",
            "32",
            "--requests",
            "10000",
            "--upsert-ratio",
            "0.2",
            "--batch",
            "5",
            "--k",
            "10",
            "--ef",
            "32",
            "--nprobe",
            "16",
            "--vectors",
            &b,
            "--json",
            &j,
        ],
    );
    ok(&out);
    let r = report(&json);
    assert_eq!(u(&r, "errors"), 0, "{r}");
    assert_eq!(u(&r, "requests"), 10_000, "{r}");
    assert_eq!(u(&r, "upserts") + u(&r, "searches"), 10_000, "{r}");
    assert!((1_700..=2_300).contains(&u(&r, "upserts")), "{r}");
    assert_eq!(u(&r, "upserted_points"), 5 * u(&r, "upserts"), "{r}");
    assert_eq!(u(&r, "first_id"), 2000, "{r}");
    assert_eq!(count(&ch, "c").await, 2000 + u(&r, "upserted_points"));
    assert!(f(&r, "qps") > 0.0 && f(&r, "seconds") > 0.0, "{r}");
    for kind in ["", "search_", "upsert_"] {
        let (p50, p99) = (
            f(&r, &format!("{kind}p50_us")),
            f(&r, &format!("{kind}p99_us")),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{kind}: {r}");
    }
    let grown = count(&ch, "c").await;

    // A duration bound stops a run long before its request count; searches
    // only (random vectors) leave the collection as it was.
    let out = quiver(
        &addr,
        &[
            "load",
            "--collection",
            "c",
            "--clients",
            "4",
            "--requests",
            "100000000",
            "--duration-secs",
            "1",
            "--upsert-ratio",
            "0",
            "--json",
            &j,
        ],
    );
    ok(&out);
    let r = report(&json);
    assert!(f(&r, "seconds") < 5.0, "{r}");
    assert!(
        u(&r, "requests") > 0 && u(&r, "requests") < 100_000_000,
        "{r}"
    );
    assert_eq!((u(&r, "upserts"), u(&r, "errors")), (0, 0), "{r}");
    assert_eq!(count(&ch, "c").await, grown);

    // --create with random vectors of --dim, upserts only.
    let out = quiver(
        &addr,
        &[
            "load",
            "--collection",
            "fresh",
            "--create",
            "--metric",
            "cosine",
            "--dim",
            "8",
            "--requests",
            "200",
            "--upsert-ratio",
            "1",
            "--batch",
            "3",
            "--json",
            &j,
        ],
    );
    ok(&out);
    let r = report(&json);
    assert_eq!((u(&r, "upserts"), u(&r, "first_id")), (200, 0), "{r}");
    assert_eq!(count(&ch, "fresh").await, 600);

    // Failing requests: reported, counted, and the exit code is non-zero.
    let out = quiver(
        &addr,
        &[
            "load",
            "--collection",
            "c",
            "--clients",
            "4",
            "--requests",
            "40",
            "--upsert-ratio",
            "0",
            "--k",
            "20000",
            "--json",
            &j,
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("40 of 40 requests failed") && stderr.contains("InvalidArgument: k"),
        "{stderr}"
    );
    assert_eq!(u(&report(&json), "errors"), 40);
    // An unknown collection fails before any load and names it.
    let out = quiver(&addr, &["load", "--collection", "nope", "--requests", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    drop(ch);
    assert_eq!(server.stop().code(), Some(0));
}
