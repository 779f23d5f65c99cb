//! Behaviour tests of the HNSW index on synthetic data.

use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::distance::Metric;

pub(super) fn random_data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

pub(super) fn brute_force(
    data: &[f32],
    dim: usize,
    metric: Metric,
    q: &[f32],
    k: usize,
    skip: &dyn Fn(u32) -> bool,
) -> Vec<u32> {
    let mut q = q.to_vec();
    if metric.normalizes() {
        crate::distance::normalize(&mut q);
    }
    let kern = metric.kernel();
    let mut all: Vec<(f32, u32)> = data
        .chunks(dim)
        .enumerate()
        .filter(|(i, _)| !skip(*i as u32))
        .map(|(i, row)| {
            let mut r = row.to_vec();
            if metric.normalizes() {
                crate::distance::normalize(&mut r);
            }
            (kern.distance(&q, &r), i as u32)
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all.into_iter().map(|x| x.1).collect()
}

pub(super) fn recall(
    index: &Hnsw,
    data: &[f32],
    queries: &[f32],
    k: usize,
    ef: usize,
    skip: &dyn Fn(u32) -> bool,
) -> f64 {
    let dim = index.dim();
    let mut hits = 0;
    let mut total = 0;
    for q in queries.chunks(dim) {
        let truth = brute_force(data, dim, index.metric(), q, k, skip);
        let got: Vec<u32> = index
            .search(q, k, ef)
            .unwrap()
            .iter()
            .map(|n| n.id.0)
            .collect();
        hits += got.iter().filter(|g| truth.contains(g)).count();
        total += truth.len();
    }
    hits as f64 / total as f64
}

#[test]
fn high_recall_for_every_metric() {
    let (n, dim, seed) = (3000, 24, 7);
    let data = random_data(n, dim, seed);
    let queries = random_data(50, dim, seed + 1);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let index = Hnsw::build(&data, dim, metric, HnswParams::default(), false).unwrap();
        let r = recall(&index, &data, &queries, 10, 200, &|_| false);
        assert!(r >= 0.98, "seed={seed} metric={metric} recall={r}");
    }
}

#[test]
fn incremental_inserts_match_bulk_quality() {
    let (n, dim, seed) = (2000, 16, 11);
    let data = random_data(n, dim, seed);
    let index = Hnsw::new(dim, Metric::L2, HnswParams::default(), n).unwrap();
    for row in data.chunks(dim) {
        index.insert(row).unwrap();
    }
    assert_eq!(index.len(), n);
    assert!(matches!(
        index.insert(&data[..dim]),
        Err(HnswError::Full { .. })
    ));
    let r = recall(
        &index,
        &data,
        &random_data(40, dim, seed + 1),
        10,
        100,
        &|_| false,
    );
    assert!(r >= 0.97, "seed={seed} recall={r}");
}

#[test]
fn concurrent_inserts_and_searches() {
    let (n, dim, seed) = (4000, 16, 3);
    let data = random_data(n, dim, seed);
    let index = Hnsw::new(dim, Metric::L2, HnswParams::default(), n).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (index, data) = (&index, &data);
            s.spawn(move || {
                for row in data.chunks(dim).skip(t).step_by(4) {
                    index.insert(row).unwrap();
                    let res = index.search(row, 5, 20).unwrap();
                    assert!(!res.is_empty());
                }
            });
        }
    });
    assert_eq!(index.len(), n);
    // Node ids were assigned in arrival order; compare by vectors.
    let mut hits = 0;
    for row in data.chunks(dim).take(200) {
        let best = index.search(row, 1, 50).unwrap()[0];
        hits += (best.distance == 0.0) as usize;
    }
    assert!(hits >= 198, "seed={seed} exact self-hits={hits}/200");
}

#[test]
fn deleted_nodes_are_never_returned() {
    let (n, dim, seed) = (2000, 16, 5);
    let data = random_data(n, dim, seed);
    let index = Hnsw::build(&data, dim, Metric::L2, HnswParams::default(), false).unwrap();
    for i in (0..n as u32).filter(|i| i % 3 == 0) {
        assert!(index.delete(NodeId(i)).unwrap());
    }
    assert!(!index.delete(NodeId(0)).unwrap());
    assert!(index.delete(NodeId(n as u32)).is_err());
    assert_eq!(index.live_len(), n - n.div_ceil(3));
    let queries = random_data(30, dim, seed + 1);
    for q in queries.chunks(dim) {
        for r in index.search(q, 10, 64).unwrap() {
            assert!(r.id.0 % 3 != 0, "deleted node {} returned", r.id.0);
        }
    }
    let r = recall(&index, &data, &queries, 10, 100, &|i| i % 3 == 0);
    assert!(r >= 0.95, "seed={seed} recall with deletions={r}");

    let (rebuilt, map) = index.rebuild(false).unwrap();
    assert_eq!(rebuilt.len(), index.live_len());
    for q in queries.chunks(dim).take(5) {
        let a: Vec<u32> = index
            .search(q, 5, 200)
            .unwrap()
            .iter()
            .map(|n| n.id.0)
            .collect();
        let b: Vec<u32> = rebuilt
            .search(q, 5, 200)
            .unwrap()
            .iter()
            .map(|n| map[n.id.0 as usize].0)
            .collect();
        assert_eq!(a, b);
    }
}

#[test]
fn allow_filter_restricts_results() {
    let (n, dim) = (1500, 8);
    let data = random_data(n, dim, 9);
    let index = Hnsw::build(&data, dim, Metric::L2, HnswParams::default(), false).unwrap();
    let q = &data[..dim];
    let res = index
        .search_filtered(q, 10, 50, &|id| id.0 % 10 == 7)
        .unwrap();
    assert_eq!(res.len(), 10);
    assert!(res.iter().all(|r| r.id.0 % 10 == 7));
    let truth = brute_force(&data, dim, Metric::L2, q, 10, &|i| i % 10 != 7);
    let got: Vec<u32> = res.iter().map(|r| r.id.0).collect();
    assert_eq!(got, truth);
    // A filter that admits nothing returns nothing (after visiting the graph).
    assert!(index
        .search_filtered(q, 10, 50, &|_| false)
        .unwrap()
        .is_empty());
}

#[test]
fn bad_input_is_an_error() {
    let index = Hnsw::new(4, Metric::Cosine, HnswParams::default(), 4).unwrap();
    assert!(matches!(
        index.insert(&[1.0, 2.0]),
        Err(HnswError::Dimension { .. })
    ));
    assert!(matches!(
        index.insert(&[1.0, f32::NAN, 0.0, 0.0]),
        Err(HnswError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        index.insert(&[0.0; 4]),
        Err(HnswError::ZeroNorm { .. })
    ));
    assert!(index.search(&[1.0; 4], 3, 10).unwrap().is_empty());
    index.insert(&[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(matches!(
        index.search(&[0.0; 4], 1, 10),
        Err(HnswError::ZeroNorm { .. })
    ));
    assert!(matches!(
        index.search(&[1.0; 3], 1, 10),
        Err(HnswError::Dimension { .. })
    ));
    assert!(index.search(&[1.0; 4], 0, 10).unwrap().is_empty());
    assert!(Hnsw::new(0, Metric::L2, HnswParams::default(), 1).is_err());
    assert!(Hnsw::new(
        4,
        Metric::L2,
        HnswParams {
            m: 1,
            ..Default::default()
        },
        1
    )
    .is_err());
}

pub(super) fn saved(index: &Hnsw) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.hnsw");
    index.save(&path).unwrap();
    (dir, path)
}

#[test]
fn save_load_round_trip() {
    let (n, dim) = (1200, 12);
    let data = random_data(n, dim, 21);
    let index = Hnsw::build(
        &data,
        dim,
        Metric::Cosine,
        HnswParams {
            m: 8,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    index.delete(NodeId(17)).unwrap();
    let (_dir, path) = saved(&index);
    let loaded = Hnsw::load(&path, 10).unwrap();
    assert_eq!(loaded.len(), n);
    assert_eq!(loaded.capacity(), n + 10);
    assert!(loaded.is_deleted(NodeId(17)));
    assert_eq!(loaded.params(), index.params());
    for q in random_data(20, dim, 22).chunks(dim) {
        assert_eq!(
            index.search(q, 10, 40).unwrap(),
            loaded.search(q, 10, 40).unwrap()
        );
    }
    loaded.insert(&data[..dim]).unwrap();
}

#[test]
fn corrupt_or_truncated_files_are_errors() {
    let data = random_data(300, 8, 31);
    let index = Hnsw::build(
        &data,
        8,
        Metric::L2,
        HnswParams {
            m: 4,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    let (_dir, path) = saved(&index);
    let bytes = std::fs::read(&path).unwrap();
    let p = Path::new("index.hnsw");
    for cut in (0..bytes.len()).step_by(37).chain([bytes.len() - 1]) {
        let err = Hnsw::from_bytes(&bytes[..cut], p, 0)
            .err()
            .expect("truncated file must fail");
        assert!(err.to_string().contains("index.hnsw"), "{err}");
    }
    let mut rng = SmallRng::seed_from_u64(32);
    for _ in 0..200 {
        let mut b = bytes.clone();
        let i = rng.gen_range(0..b.len());
        b[i] ^= 1 << rng.gen_range(0..8);
        assert!(
            Hnsw::from_bytes(&b, p, 0).is_err(),
            "bit flip at {i} accepted"
        );
    }
}

#[test]
fn structurally_invalid_files_with_valid_checksums_are_errors() {
    let data = random_data(100, 4, 41);
    let index = Hnsw::build(
        &data,
        4,
        Metric::L2,
        HnswParams {
            m: 4,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    let (_dir, path) = saved(&index);
    let bytes = std::fs::read(&path).unwrap();
    let p = Path::new("x.hnsw");
    let mut rng = SmallRng::seed_from_u64(42);
    for _ in 0..2000 {
        let mut b = bytes.clone();
        let body = b.len() - 8;
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..body);
            b[i] = rng.gen();
        }
        let crc = crc32c::crc32c(&b[..body]);
        b[body..body + 4].copy_from_slice(&crc.to_le_bytes());
        // Either a clean error or a consistent index: searching must not panic.
        if let Ok(ix) = Hnsw::from_bytes(&b, p, 0) {
            let _ = ix.search(&[0.5; 4], 5, 10);
        }
    }
}
