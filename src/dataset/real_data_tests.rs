//! Tests on the real MiniLM dataset (`../shared/datasets/minilm-npm-384`,
//! relative to the crate root): format conversion and exact ground truth
//! against the shipped `gt.ibin`. Skipped, with a message, when it is absent.

use std::collections::HashSet;
use std::path::PathBuf;

use super::*;
use crate::distance::Metric;

fn dataset_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/minilm-npm-384");
    if dir.join("base.fbin").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: real dataset not found at {} (minilm-npm-384)",
            dir.display()
        );
        None
    }
}

#[test]
fn real_fbin_converts_to_fvecs_and_back() {
    let Some(dir) = dataset_dir() else { return };
    let base = load_vectors(dir.join("base.fbin"), Some(5000)).unwrap();
    assert_eq!((base.len(), base.dim), (5000, 384));
    let norm = base.row(4999).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-3,
        "vectors should be unit length, got {norm}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("base.fvecs");
    save_vectors(&out, &base).unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 5000 * (4 + 384 * 4));
    assert_eq!(load_vectors(&out, None).unwrap(), base);
}

#[test]
fn real_ground_truth_matches_shipped_top10() {
    let Some(dir) = dataset_dir() else { return };
    const QUERIES: usize = 50;
    const K: usize = 10;
    let base = load_vectors(dir.join("base.fbin"), None).unwrap();
    let queries = load_vectors(dir.join("query.fbin"), Some(QUERIES)).unwrap();
    let shipped = load_neighbors(dir.join("gt.ibin")).unwrap();
    assert_eq!((base.len(), shipped.len(), shipped.k), (50_000, 1000, 100));

    let ours = ground_truth(&base, &queries, K, Metric::Cosine).unwrap();
    let mut matched = 0;
    for q in 0..QUERIES {
        let a: HashSet<u32> = ours.row(q).iter().copied().collect();
        let b: HashSet<u32> = shipped.row(q)[..K].iter().copied().collect();
        matched += a.intersection(&b).count();
        if a != b {
            eprintln!(
                "query {q}: ours {:?} vs shipped {:?}",
                ours.row(q),
                &shipped.row(q)[..K]
            );
        }
    }
    let total = QUERIES * K;
    assert!(
        matched * 100 >= total * 99,
        "only {matched}/{total} top-{K} ids match gt.ibin"
    );
    let results: Vec<Vec<u32>> = (0..QUERIES).map(|q| ours.row(q).to_vec()).collect();
    assert!(recall_at_k(&results, &shipped, K) >= 0.99);
}
