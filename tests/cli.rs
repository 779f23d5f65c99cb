//! The `quiver` binary end to end: bench, gt, and errors on bad input.

use std::process::Command;

use crate::common::{minilm, quiver_bin, run_ok};

#[test]
fn bench_synthetic_writes_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    run_ok(
        Command::new(quiver_bin())
            .args([
                "bench",
                "--synthetic",
                "3000,16",
                "--ef",
                "10,80",
                "--runs",
                "1",
                "--log",
                "warn",
                "--json",
            ])
            .arg(&json),
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["index"], "hnsw");
    assert!(report["build_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["index_bytes"].as_u64().unwrap() > 3000 * 16 * 4);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["ef"], 10);
    for r in runs {
        for f in ["recall", "qps", "p50_us", "p99_us"] {
            assert!(r[f].as_f64().unwrap() > 0.0, "{f} in {r}");
        }
    }
    assert!(runs[1]["recall"].as_f64().unwrap() >= 0.95, "{report}");
}

#[test]
fn gt_then_bench_with_gt_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.fvecs");
    let query = dir.path().join("query.fbin");
    let gt = dir.path().join("gt.ivecs");
    let mut data = quiver::dataset::synthetic::clustered(2100, 8, 3);
    let q = data.split_off(2000);
    quiver::dataset::save_vectors(&base, &data).unwrap();
    quiver::dataset::save_vectors(&query, &q).unwrap();
    run_ok(
        Command::new(quiver_bin())
            .args(["gt", "--k", "10", "--metric", "l2", "--base"])
            .arg(&base)
            .arg("--query")
            .arg(&query)
            .arg("--out")
            .arg(&gt),
    );
    let truth = quiver::dataset::load_neighbors(&gt).unwrap();
    assert_eq!((truth.len(), truth.k), (100, 10));
    let out = run_ok(
        Command::new(quiver_bin())
            .args([
                "bench", "--metric", "l2", "--ef", "200", "--runs", "1", "--log", "warn", "--base",
            ])
            .arg(&base)
            .arg("--query")
            .arg(&query)
            .arg("--gt")
            .arg(&gt),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let recall: f64 = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(recall >= 0.99, "{stdout}");
}

#[test]
fn bad_input_exits_nonzero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.fbin");
    std::fs::write(&bad, [1u8, 2, 3]).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "bench".into(),
                "--base".into(),
                bad.display().to_string(),
                "--query".into(),
                bad.display().to_string(),
            ],
            "bad.fbin",
        ),
        (
            vec!["bench".into(), "--synthetic".into(), "10".into()],
            "--synthetic",
        ),
        (
            vec![
                "bench".into(),
                "--synthetic".into(),
                "100,4".into(),
                "--k".into(),
                "0".into(),
            ],
            "--k",
        ),
        (
            vec![
                "bench".into(),
                "--synthetic".into(),
                "100,4".into(),
                "--metric".into(),
                "hamming".into(),
            ],
            "hamming",
        ),
        (
            vec![
                "bench".into(),
                "--synthetic".into(),
                "100,4".into(),
                "--load".into(),
                bad.display().to_string(),
            ],
            "bad.fbin",
        ),
        (
            vec![
                "gt".into(),
                "--base".into(),
                "missing.fvecs".into(),
                "--query".into(),
                "q.fvecs".into(),
                "--metric".into(),
                "l2".into(),
                "--out".into(),
                "o.ibin".into(),
            ],
            "missing.fvecs",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(quiver_bin()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[test]
fn bench_on_real_data_subset() {
    let Some(d) = minilm() else { return };
    let out = run_ok(
        Command::new(quiver_bin())
            .args([
                "bench",
                "--metric",
                "cosine",
                "--limit",
                "5000",
                "--query-limit",
                "100",
                "--ef",
                "64",
                "--runs",
                "1",
                "--log",
                "warn",
                "--base",
            ])
            .arg(d.join("base.fbin"))
            .arg("--query")
            .arg(d.join("query.fbin")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let recall: f64 = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(recall >= 0.95, "{stdout}");
}
