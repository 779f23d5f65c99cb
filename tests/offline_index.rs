//! The offline bulk path (`quiver index --data --collection`) against the
//! online one (`quiver import` through a running server): the same file
//! gives a collection with the same settings and ids, which after a server
//! restart answers exact searches identically.

use std::process::{Command, Output};

use pb::collections_client::CollectionsClient;
use pb::points_client::PointsClient;
use quiver::distance::Metric;
use quiver::server::pb;
use tonic::transport::Channel;

use crate::common::quiver_bin;
use crate::server::Server;

const N: usize = 5000;
const DIM: usize = 32;
const K: usize = 10;

fn quiver(args: &[&str]) -> Output {
    Command::new(quiver_bin())
        .args(args)
        .args(["--log", "warn"])
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

fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
}

async fn describe(ch: &Channel, name: &str) -> pb::CollectionInfo {
    CollectionsClient::new(ch.clone())
        .describe(pb::DescribeCollectionRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap()
}

/// Exact (ef ≥ points, every SSD posting read) top-K hits of `q` in `collection`.
async fn exact(ch: &Channel, collection: &str, q: &[f32]) -> Vec<(u64, f32)> {
    PointsClient::new(ch.clone())
        .search(pb::SearchRequest {
            collection: collection.into(),
            vector: q.to_vec(),
            k: K as u32,
            ef: Some(N as u32),
            nprobe: Some(N as u32),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits
        .iter()
        .map(|h| (h.id, h.distance))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_build_matches_online_import() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let base = dir.path().join("base.fbin");
    let mut data = quiver::dataset::synthetic::clustered(N + 40, DIM, 21);
    let queries = data.split_off(N);
    quiver::dataset::save_vectors(&base, &data).unwrap();
    let (b, d) = (base.display().to_string(), data_dir.display().to_string());

    // A: online, through the running server.
    let mut server = Server::start(&data_dir);
    let ch = server.connect().await;
    let addr = server.addr.clone();
    ok(&quiver(&[
        "import",
        "--addr",
        &addr,
        "--collection",
        "a",
        "--input",
        &b,
        "--create",
        "--metric",
        "cosine",
        "--batch",
        "700",
    ]));
    // B: offline, into the same data directory while the server runs.
    let offline = |name: &str| {
        quiver(&[
            "index",
            "--base",
            &b,
            "--data",
            &d,
            "--collection",
            name,
            "--metric",
            "cosine",
            "--batch",
            "1500",
        ])
    };
    ok(&offline("b"));
    // The memory-tier encoding, both ways.
    ok(&quiver(&[
        "import",
        "--addr",
        &addr,
        "--collection",
        "s",
        "--input",
        &b,
        "--create",
        "--metric",
        "cosine",
        "--hnsw-encoding",
        "sq8",
    ]));
    ok(&quiver(&[
        "index",
        "--base",
        &b,
        "--data",
        &d,
        "--collection",
        "t",
        "--metric",
        "cosine",
        "--hnsw-encoding",
        "sq8",
    ]));
    refused(&offline("a"), "already exists");
    refused(&offline("b"), "already exists");
    refused(
        &quiver(&["index", "--base", &b, "--data", &d, "--collection", "c"]),
        "--metric",
    );
    refused(
        &quiver(&[
            "index",
            "--base",
            &b,
            "--data",
            &d,
            "--collection",
            "c/d",
            "--metric",
            "l2",
        ]),
        "--collection",
    );
    let mut entries: Vec<String> = std::fs::read_dir(data_dir.join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["a", "b", "s", "t"],
        "no staging directory is left behind"
    );

    // The server picks B up at its next start.
    drop(ch);
    assert_eq!(server.stop().code(), Some(0));
    let mut server = Server::start(&data_dir);
    let ch = server.connect().await;
    let names = CollectionsClient::new(ch.clone())
        .list(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, ["a", "b", "s", "t"]);
    let (s8, t8) = (describe(&ch, "s").await, describe(&ch, "t").await);
    assert_eq!(
        s8.settings, t8.settings,
        "offline --hnsw-encoding as Create's"
    );
    let settings = s8.settings.unwrap();
    assert_eq!(settings.hnsw_encoding, "sq8");
    assert_eq!(settings.rerank, 4);
    assert_eq!(s8.stats.unwrap().points, N as u64);
    assert_eq!(t8.stats.unwrap().points, N as u64);
    let (a, bb) = (describe(&ch, "a").await, describe(&ch, "b").await);
    assert_eq!(
        a.settings, bb.settings,
        "offline build uses Create's defaults"
    );
    assert_eq!(a.stats.unwrap().points, N as u64);
    let stats = bb.stats.unwrap();
    assert_eq!(stats.points, N as u64);
    assert_eq!(stats.active_points, 0, "B is fully checkpointed");
    assert_eq!(
        stats.ssd_points, N as u64,
        "B's points were merged into the SSD tier"
    );

    let truth = quiver::dataset::ground_truth(&data, &queries, K, Metric::Cosine).unwrap();
    for i in 0..queries.len() {
        let q = queries.row(i);
        let (ha, hb) = (exact(&ch, "a", q).await, exact(&ch, "b", q).await);
        let ids = |h: &[(u64, f32)]| h.iter().map(|&(id, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(&ha), ids(&hb), "query {i}");
        for (x, y) in ha.iter().zip(&hb) {
            assert!((x.1 - y.1).abs() <= 1e-5, "query {i}: {ha:?} vs {hb:?}");
        }
        // Exact indeed: the ids are the brute-force ground truth (row numbers).
        let want: Vec<u64> = truth.row(i).iter().map(|&id| u64::from(id)).collect();
        assert_eq!(ids(&ha), want, "query {i}");
    }
    drop(ch);
    assert_eq!(server.stop().code(), Some(0));
}
