//! SPANN with f16 / SQ8 head vectors (`SpannParams::head_encoding`): recall
//! against f32 heads, memory, reopen, splits into a quantised head graph,
//! old settings, a mismatched head file and the CLI flag.

use quiver::dataset;
use quiver::distance::Metric;
use quiver::hnsw::{Hnsw, VectorEncoding};
use quiver::spann::{OpenParams, SearchParams, Spann, SpannError, SpannParams};

use crate::common::{build_spann as build, quiver_bin, run_ok, spann_recall as recall};

fn params(head_encoding: VectorEncoding) -> SpannParams {
    SpannParams {
        head_ratio: 0.05,
        max_posting_pages: 8,
        head_encoding,
        ..SpannParams::default()
    }
}

#[test]
fn quantised_heads_keep_recall_and_cut_memory() {
    let mut base = dataset::synthetic::clustered(6000 + 100, 32, 5);
    let queries = base.split_off(6000);
    for metric in [Metric::L2, Metric::Cosine] {
        let gt = dataset::gt::ground_truth(&base, &queries, 10, metric).unwrap();
        let mut r = Vec::new();
        let mut mem = Vec::new();
        for enc in [
            VectorEncoding::F32,
            VectorEncoding::F16,
            VectorEncoding::Sq8,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let index = build(dir.path(), &base, metric, params(enc));
            assert_eq!(index.head_index().encoding(), enc);
            let got = recall(&index, &queries, &gt, 8);
            mem.push(index.memory_bytes());
            // Reopening finds the encoding in the head file and agrees with meta.
            drop(index);
            let index = Spann::open(dir.path(), OpenParams::default()).unwrap();
            assert_eq!(index.params().head_encoding, enc);
            assert_eq!(index.head_index().encoding(), enc);
            assert_eq!(recall(&index, &queries, &gt, 8), got, "{metric} {enc}");
            r.push(got);
        }
        // Measured at nprobe 8: 0.996 for all three, l2 and cosine.
        assert!(r[0] >= 0.95, "{metric}: {r:?}");
        assert!(r[1] >= r[0] - 0.01, "{metric} f16 heads: {r:?}");
        assert!(r[2] >= r[0] - 0.02, "{metric} sq8 heads: {r:?}");
        assert!(mem[1] < mem[0] && mem[2] < mem[1], "{metric}: {mem:?}");
    }
}

#[test]
fn splits_insert_heads_into_an_sq8_head_graph() {
    let mut all = dataset::synthetic::clustered(4000 + 10, 16, 21);
    let queries = all.split_off(4000);
    let mut first = all.clone();
    let second = first.split_off(2000);
    let dir = tempfile::tempdir().unwrap();
    let p = SpannParams {
        max_posting_pages: 2,
        ..params(VectorEncoding::Sq8)
    };
    let index = build(dir.path(), &first, Metric::L2, p);
    let heads_before = index.heads();
    for chunk in second.data.chunks(500 * 16) {
        index.insert_batch(chunk).unwrap();
    }
    assert!(index.update_stats().splits > 0);
    assert!(index.heads() > heads_before);
    assert_eq!(index.head_index().encoding(), VectorEncoding::Sq8);
    // Every posting read and re-ranked: exact whatever the head encoding.
    let all_heads = index.head_index().len();
    let sp = SearchParams {
        nprobe: all_heads,
        max_dist_ratio: None,
        head_ef: all_heads,
        rerank: index.len(),
    };
    let gt = dataset::gt::ground_truth(&all, &queries, 10, Metric::L2).unwrap();
    for (i, q) in queries.rows().enumerate() {
        let hits = index.search(q, 10, &sp).unwrap().0;
        let want = gt.distance_row(i).unwrap();
        for (h, w) in hits.iter().zip(want) {
            assert!((h.distance - w).abs() <= 1e-4 * w.abs().max(1.0));
        }
    }
    index.flush().unwrap();
    let probe = index.search(all.row(3999), 1, &sp).unwrap().0;
    drop(index);
    let index = Spann::open(dir.path(), OpenParams::default()).unwrap();
    assert_eq!(index.head_index().encoding(), VectorEncoding::Sq8);
    assert_eq!(index.search(all.row(3999), 1, &sp).unwrap().0, probe);
    assert_eq!(probe[0].id, 3999);
}

#[test]
fn settings_without_head_encoding_mean_f32() {
    let mut v = serde_json::to_value(SpannParams::default()).unwrap();
    assert_eq!(v["head_encoding"], "f32");
    v.as_object_mut().unwrap().remove("head_encoding");
    let p: SpannParams = serde_json::from_value(v).unwrap();
    assert_eq!(p.head_encoding, VectorEncoding::F32);
}

#[test]
fn a_head_file_of_another_encoding_is_corrupt() {
    let base = dataset::synthetic::clustered(1500, 8, 7);
    let dir = tempfile::tempdir().unwrap();
    drop(build(
        dir.path(),
        &base,
        Metric::L2,
        params(VectorEncoding::Sq8),
    ));
    let heads = quiver::spann::generation::heads_path(dir.path(), 1);
    Hnsw::load(&heads, 0)
        .unwrap()
        .reencode(VectorEncoding::F16)
        .unwrap()
        .save(&heads)
        .unwrap();
    let err = Spann::open(dir.path(), OpenParams::default())
        .err()
        .expect("mismatched head encoding must fail");
    assert!(matches!(err, SpannError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("f16"), "{err}");
}

#[test]
fn cli_head_encoding_flag() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.fbin");
    let query = dir.path().join("query.fbin");
    let mut all = dataset::synthetic::clustered(2100, 16, 9);
    let q = all.split_off(2000);
    dataset::save_vectors(&base, &all).unwrap();
    dataset::save_vectors(&query, &q).unwrap();
    let idx = dir.path().join("idx");
    run_ok(
        std::process::Command::new(quiver_bin())
            .args([
                "index",
                "--index",
                "spann",
                "--metric",
                "cosine",
                "--head-ratio",
                "0.05",
                "--head-encoding",
                "sq8",
                "--log",
                "warn",
                "--base",
            ])
            .arg(&base)
            .arg("--out")
            .arg(&idx),
    );
    let json = dir.path().join("r.json");
    run_ok(
        std::process::Command::new(quiver_bin())
            .args([
                "bench", "--index", "spann", "--metric", "cosine", "--nprobe", "64", "--runs", "1",
                "--log", "warn", "--base",
            ])
            .arg(&base)
            .arg("--query")
            .arg(&query)
            .arg("--load")
            .arg(&idx)
            .arg("--json")
            .arg(&json),
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["spann"]["params"]["head_encoding"], "sq8");
    assert!(r["runs"][0]["recall"].as_f64().unwrap() >= 0.99);

    // A bad value is a clean error naming the flag.
    let out = std::process::Command::new(quiver_bin())
        .args(["index", "--index", "spann", "--head-encoding", "int4"])
        .args(["--base", "x.fbin", "--out", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--head-encoding"));
}
