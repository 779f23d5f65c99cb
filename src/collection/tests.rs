//! Model-based tests: random upserts, deletes, searches, checkpoints and
//! reopens against a brute-force model.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::replay::REPLAY_BATCH;
use super::*;
use crate::distance::Metric;
use crate::limits::INLINE_SEARCH_MAX_WORK;

fn config(dim: usize, metric: Metric, tier: usize) -> CollectionConfig {
    CollectionConfig {
        memory_tier_points: tier,
        fsync: FsyncPolicy::Never,
        ..CollectionConfig::new(dim, metric)
    }
}

fn brute(model: &BTreeMap<u64, Vec<f32>>, metric: Metric, q: &[f32], k: usize) -> Vec<u64> {
    let kern = metric.kernel();
    let norm = |v: &[f32]| {
        let mut v = v.to_vec();
        if metric.normalizes() {
            crate::distance::normalize(&mut v);
        }
        v
    };
    let q = norm(q);
    let mut all: Vec<(f32, u64)> = model
        .iter()
        .map(|(&id, v)| (kern.distance(&q, &norm(v)), id))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|x| x.1).collect()
}

fn payload_of(id: u64) -> Payload {
    let mut p = Payload::new();
    p.insert("id".into(), Value::Int(id as i64));
    p.insert("tag".into(), Value::String(format!("t{}", id % 3)));
    p
}

#[test]
fn random_operations_match_brute_force_model() {
    for (seed, metric) in [
        (1u64, Metric::L2),
        (2, Metric::Cosine),
        (3, Metric::InnerProduct),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dim = 6;
        let mut col = Collection::create(dir.path(), config(dim, metric, 40)).unwrap();
        let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        let mut rng = SmallRng::seed_from_u64(seed);
        for step in 0..600 {
            match rng.gen_range(0..100) {
                0..=49 => {
                    let n = rng.gen_range(1..8);
                    let pts: Vec<Point> = (0..n)
                        .map(|_| {
                            let id = rng.gen_range(0..150u64);
                            let vector: Vec<f32> =
                                (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
                            Point {
                                id,
                                vector,
                                payload: Some(payload_of(id)),
                            }
                        })
                        .collect();
                    for p in &pts {
                        model.insert(p.id, p.vector.clone());
                    }
                    col.upsert(pts).unwrap();
                }
                50..=64 => {
                    let ids: Vec<u64> = (0..rng.gen_range(1..5))
                        .map(|_| rng.gen_range(0..150))
                        .collect();
                    let expect = ids
                        .iter()
                        .collect::<std::collections::BTreeSet<_>>()
                        .iter()
                        .filter(|i| model.contains_key(i))
                        .count();
                    for id in &ids {
                        model.remove(id);
                    }
                    let (_, n) = col.delete(&ids).unwrap();
                    assert_eq!(n, expect, "seed={seed} step={step}");
                }
                65..=89 => {
                    let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    let k = rng.gen_range(1..12);
                    let got = col
                        .search(&SearchRequest {
                            vector: q.clone(),
                            k,
                            ef: Some(1000),
                            nprobe: None,
                            with_payload: true,
                            with_vector: false,
                            ..Default::default()
                        })
                        .unwrap();
                    let ids: Vec<u64> = got.iter().map(|r| r.id).collect();
                    assert_eq!(
                        ids,
                        brute(&model, metric, &q, k),
                        "seed={seed} step={step} metric={metric}"
                    );
                    for r in &got {
                        assert_eq!(r.payload.as_ref(), Some(&payload_of(r.id)));
                    }
                }
                90..=94 => {
                    col.close().unwrap();
                    drop(col);
                    col = Collection::open(dir.path()).unwrap();
                }
                _ => col.checkpoint_all().unwrap(),
            }
            if col.count() != model.len() {
                let ids: Vec<u64> = model.keys().copied().collect();
                let missing: Vec<u64> = ids
                    .iter()
                    .zip(col.get(&ids, false, false).unwrap())
                    .filter(|(_, r)| r.is_none())
                    .map(|(i, _)| *i)
                    .collect();
                eprintln!("missing {missing:?}; stats {:?}", col.stats());
            }
            assert_eq!(col.count(), model.len(), "seed={seed} step={step}");
        }
        // Everything reads back after a final reopen.
        col.close().unwrap();
        drop(col);
        let col = Collection::open(dir.path()).unwrap();
        let ids: Vec<u64> = model.keys().copied().collect();
        for (id, rec) in ids.iter().zip(col.get(&ids, true, true).unwrap()) {
            let rec = rec.unwrap_or_else(|| panic!("seed={seed}: point {id} lost"));
            assert_eq!(rec.payload, Some(payload_of(*id)));
            assert_eq!(rec.vector.unwrap().len(), dim);
        }
        let (page, next) = col.scroll(None, 10, false, false).unwrap();
        assert_eq!(
            page.iter().map(|r| r.id).collect::<Vec<_>>(),
            ids.iter().take(10).copied().collect::<Vec<_>>()
        );
        assert_eq!(next.is_some(), ids.len() > 10);
    }
}

#[test]
fn invalid_requests_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let col = Collection::create(dir.path(), config(3, Metric::Cosine, 10)).unwrap();
    let bad = |p: Vec<Point>| col.upsert(p).unwrap_err().to_string();
    assert!(bad(vec![Point {
        id: 1,
        vector: vec![1.0; 2],
        payload: None
    }])
    .contains("points[0].vector"));
    assert!(bad(vec![
        Point {
            id: 1,
            vector: vec![1.0; 3],
            payload: None
        },
        Point {
            id: 2,
            vector: vec![f32::NAN, 0.0, 1.0],
            payload: None
        }
    ])
    .contains("points[1].vector"));
    assert!(bad(vec![Point {
        id: 1,
        vector: vec![0.0; 3],
        payload: None
    }])
    .contains("zero vector"));
    assert_eq!(col.count(), 0, "a rejected batch writes nothing");
    let req = |k, ef| SearchRequest {
        vector: vec![1.0, 0.0, 0.0],
        k,
        ef,
        nprobe: None,
        with_payload: false,
        with_vector: false,
        ..Default::default()
    };
    assert!(col
        .search(&req(0, None))
        .unwrap_err()
        .to_string()
        .starts_with("k:"));
    assert!(col
        .search(&req(MAX_K + 1, None))
        .unwrap_err()
        .to_string()
        .starts_with("k:"));
    assert!(col
        .search(&req(3, Some(0)))
        .unwrap_err()
        .to_string()
        .starts_with("ef:"));
    assert!(Collection::create(dir.path(), config(3, Metric::Cosine, 10)).is_err());
    assert!(matches!(
        Collection::open(dir.path().join("nope")),
        Err(CollectionError::NotFound(_))
    ));
    assert!(
        Collection::create(dir.path().join("x"), config(0, Metric::L2, 10))
            .unwrap_err()
            .to_string()
            .starts_with("dim:")
    );
}

#[test]
fn checkpoint_stats_and_wal_bytes_follow_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let col = Collection::create(dir.path(), config(3, Metric::L2, 1000)).unwrap();
    assert_eq!(col.checkpoint_stats(), CheckpointStats::default());
    let empty_wal = col.wal_bytes();
    let points = (0..50)
        .map(|i| Point {
            id: i,
            vector: vec![i as f32, 1.0, 2.0],
            payload: None,
        })
        .collect();
    col.upsert(points).unwrap();
    let written = col.wal_bytes();
    assert!(written > empty_wal + 50 * 12, "{empty_wal} -> {written}");
    col.checkpoint_all().unwrap();
    let s = col.checkpoint_stats();
    assert_eq!(s.count, 1);
    assert!(
        s.total_seconds > 0.0 && s.last_seconds == s.total_seconds,
        "{s:?}"
    );
    col.checkpoint_all().unwrap();
    assert_eq!(col.checkpoint_stats().count, 2);
    col.close().unwrap();
}

/// Replay coalesces runs of upsert records into parallel batches; the
/// result must equal applying record by record: single-point upserts that
/// repeat ids, deletes between them, more records than one replay batch
/// holds, and rotations inside a coalesced batch (the reopen uses a smaller
/// memory tier than the writes did).
#[test]
fn replay_in_batches_equals_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 4;
    let col = Collection::create(dir.path(), config(dim, Metric::L2, 20_000)).unwrap();
    let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut records = 0;
    while records < REPLAY_BATCH + 2500 {
        if rng.gen_range(0..50) == 0 {
            let ids: Vec<u64> = (0..rng.gen_range(1..20))
                .map(|_| rng.gen_range(0..3000))
                .collect();
            for id in &ids {
                model.remove(id);
            }
            col.delete(&ids).unwrap();
        } else {
            let id = rng.gen_range(0..3000);
            let vector: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            model.insert(id, vector.clone());
            col.upsert(vec![Point {
                id,
                vector,
                payload: Some(payload_of(id)),
            }])
            .unwrap();
        }
        records += 1;
    }
    col.close().unwrap();
    let before = col.stats();
    assert_eq!(before.checkpoint_lsn, 0, "nothing checkpointed: {before:?}");
    drop(col);
    let mut cfg = CollectionConfig::load(&quiver_storage::FsBackend, dir.path()).unwrap();
    cfg.memory_tier_points = 1500;
    cfg.store(&quiver_storage::FsBackend, dir.path()).unwrap();
    let col = Collection::open(dir.path()).unwrap();
    col.close().unwrap(); // waits for the checkpoints the replay's rotations started
    let after = col.stats();
    assert!(after.merges >= 3, "replay rotated: {after:?}");
    assert_eq!(after.last_lsn, before.last_lsn);
    assert_eq!(col.count(), model.len());
    let ids: Vec<u64> = model.keys().copied().collect();
    for (id, got) in ids.iter().zip(col.get(&ids, true, true).unwrap()) {
        let got = got.unwrap_or_else(|| panic!("id {id} lost by replay"));
        assert_eq!(got.vector.as_ref(), Some(&model[id]), "id {id}");
        assert_eq!(got.payload, Some(payload_of(*id)));
    }
    for _ in 0..20 {
        let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let got: Vec<u64> = col
            .search(&SearchRequest {
                vector: q.clone(),
                k: 10,
                ef: Some(5000),
                nprobe: Some(100_000),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, brute(&model, Metric::L2, &q, 10));
    }
    col.close().unwrap();
}

/// SSD copies the id map does not name (a merge's copies before it switches
/// the map to them, or replaced ones whose delete is in flight) must not
/// crowd current points out of a top-k: the tier is asked for more until
/// it yields `k` current ones.
#[test]
fn ssd_copies_the_map_does_not_name_never_crowd_out_current_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 4;
    let col = Collection::create(dir.path(), config(dim, Metric::L2, 1000)).unwrap();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    let pts: Vec<Point> = (0..300)
        .map(|id| {
            let vector: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            model.insert(id, vector.clone());
            Point {
                id,
                vector,
                payload: None,
            }
        })
        .collect();
    col.upsert(pts).unwrap();
    col.checkpoint_all().unwrap();
    assert_eq!(col.stats().ssd_points, 300);
    let q: Vec<f32> = vec![0.1, -0.2, 0.3, 0.05];
    // Twenty copies right on the query, under ids the map does not know.
    let tier = col.ssd.read().clone().unwrap();
    let ids: Vec<u64> = (10_000..10_020).collect();
    let vectors: Vec<f32> = ids.iter().flat_map(|_| q.clone()).collect();
    tier.insert(&ids, &vectors, vec![None; ids.len()]).unwrap();
    let got: Vec<u64> = col
        .search(&SearchRequest {
            vector: q.clone(),
            k: 10,
            ef: Some(1000),
            nprobe: Some(100_000),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(got, brute(&model, Metric::L2, &q, 10));
    col.close().unwrap();
}

#[test]
fn only_small_searches_of_memory_are_short() {
    let dir = tempfile::tempdir().unwrap();
    let col = Collection::create(dir.path(), config(2, Metric::L2, 1000)).unwrap();
    col.upsert(
        (0..50)
            .map(|id| Point {
                id,
                vector: vec![id as f32, 1.0],
                payload: None,
            })
            .collect(),
    )
    .unwrap();
    let req = |k, ef| SearchRequest {
        vector: vec![0.5, 1.0],
        k,
        ef,
        ..Default::default()
    };
    // One segment, the default ef 64 or an explicit one up to the bound.
    assert!(col.search_is_short(&req(10, None)));
    assert!(col.search_is_short(&req(10, Some(INLINE_SEARCH_MAX_WORK))));
    assert!(!col.search_is_short(&req(10, Some(INLINE_SEARCH_MAX_WORK + 1))));
    assert!(!col.search_is_short(&req(INLINE_SEARCH_MAX_WORK + 1, Some(10))));
    // Once an SSD tier exists a search may read the disk.
    col.checkpoint_all().unwrap();
    assert_eq!(col.stats().ssd_points, 50);
    assert!(!col.search_is_short(&req(10, None)));
    col.close().unwrap();
}
