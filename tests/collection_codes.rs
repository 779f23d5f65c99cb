//! Collections whose memory tier stores f16 or SQ8 codes: exact re-rank
//! through the collection's search, a quantised collection through a
//! checkpoint, a crash (WAL replay) and reopen with the vector file in
//! memory or on disk, and configs written before `hnsw_encoding` existed.

use std::collections::BTreeMap;

use quiver::collection::{
    Collection, CollectionConfig, FsyncPolicy, Point, RerankVectors, SearchRequest,
};
use quiver::distance::Metric;
use quiver::hnsw::VectorEncoding;

const DIM: usize = 24;

fn data(n: usize, seed: u64) -> Vec<Vec<f32>> {
    quiver::dataset::synthetic::clustered(n, DIM, seed)
        .data
        .chunks(DIM)
        .map(<[f32]>::to_vec)
        .collect()
}

fn config(encoding: VectorEncoding, at: RerankVectors) -> CollectionConfig {
    CollectionConfig {
        hnsw_encoding: encoding,
        rerank_vectors: at,
        memory_tier_points: 1500,
        fsync: FsyncPolicy::Never,
        ssd: None,
        ..CollectionConfig::new(DIM, Metric::L2)
    }
}

fn upsert(col: &Collection, rows: &[Vec<f32>], first: u64) {
    for (b, chunk) in rows.chunks(500).enumerate() {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                id: first + (b * 500 + i) as u64,
                vector: v.clone(),
                payload: None,
            })
            .collect();
        col.upsert(points).unwrap();
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Searches with every query; checks hits are in exact-distance order with
/// exact distances, and returns recall@10 against brute force over `model`.
fn check_search(col: &Collection, model: &BTreeMap<u64, Vec<f32>>, queries: &[Vec<f32>]) -> f64 {
    let (mut hits, mut total) = (0, 0);
    for q in queries {
        let res = col
            .search(&SearchRequest {
                vector: q.clone(),
                k: 10,
                ef: Some(64),
                with_vector: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(res.len(), 10);
        for w in res.windows(2) {
            assert!(w[0].distance <= w[1].distance, "not in order: {res:?}");
        }
        for r in &res {
            let v = &model[&r.id];
            assert_eq!(r.vector.as_deref(), Some(&v[..]), "point {} vector", r.id);
            let exact = l2(q, v);
            assert!(
                (r.distance - exact).abs() <= 1e-4 * exact.max(1.0),
                "point {}: distance {} but exact {exact}",
                r.id,
                r.distance
            );
        }
        let mut truth: Vec<(f32, u64)> = model.iter().map(|(id, v)| (l2(q, v), *id)).collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let truth: Vec<u64> = truth.iter().take(10).map(|t| t.1).collect();
        hits += res.iter().filter(|r| truth.contains(&r.id)).count();
        total += 10;
    }
    hits as f64 / total as f64
}

#[test]
fn quantised_collection_survives_checkpoint_crash_and_reopen() {
    for encoding in [VectorEncoding::Sq8, VectorEncoding::F16] {
        let mut memory = Vec::new();
        for at in [RerankVectors::Memory, RerankVectors::Disk] {
            let dir = tempfile::tempdir().unwrap();
            let rows = data(4200, 3);
            let queries = data(40, 99);
            let mut model = BTreeMap::new();
            for (i, v) in rows.iter().enumerate() {
                model.insert(i as u64, v.clone());
            }
            {
                let col = Collection::create(dir.path(), config(encoding, at)).unwrap();
                upsert(&col, &rows[..3200], 0);
                col.checkpoint_all().unwrap();
                // Acknowledged after the checkpoint: only in the WAL.
                upsert(&col, &rows[3200..], 3200);
                let r = check_search(&col, &model, &queries);
                assert!(r >= 0.95, "{encoding}/{at:?} before crash: recall {r}");
                col.sync().unwrap();
                // Dropped without close: the WAL tail is replayed at open.
            }
            let col = Collection::open(dir.path()).unwrap();
            assert_eq!(col.count(), rows.len());
            assert_eq!(col.config().hnsw_encoding, encoding);
            let r = check_search(&col, &model, &queries);
            assert!(r >= 0.95, "{encoding}/{at:?} after replay: recall {r}");
            col.flush().unwrap();
            col.close().unwrap();
            drop(col);
            let col = Collection::open(dir.path()).unwrap();
            assert_eq!(col.count(), rows.len());
            let r = check_search(&col, &model, &queries);
            assert!(r >= 0.95, "{encoding}/{at:?} after reopen: recall {r}");
            memory.push(col.stats().index_memory_bytes);
        }
        // Every segment was loaded from disk: with `disk` the f32 vectors
        // stay in their files, so index memory is lower by about raw.
        let raw = 4200 * DIM * 4;
        assert!(
            memory[0] >= memory[1] + raw * 9 / 10,
            "{encoding}: memory {} vs disk {} bytes, raw {raw}",
            memory[0],
            memory[1]
        );
    }
}

#[test]
fn per_query_rerank_overrides_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CollectionConfig {
        rerank: 0,
        ..config(VectorEncoding::Sq8, RerankVectors::Memory)
    };
    let col = Collection::create(dir.path(), cfg).unwrap();
    let rows = data(1000, 5);
    upsert(&col, &rows, 0);
    let model: BTreeMap<u64, Vec<f32>> = rows
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let q = data(1, 77).remove(0);
    let search = |rerank| {
        col.search(&SearchRequest {
            vector: q.clone(),
            k: 5,
            ef: Some(64),
            rerank,
            ..Default::default()
        })
        .unwrap()
    };
    // Re-ranked: exact distances. Not re-ranked (the collection's 0): SQ8's.
    for r in search(Some(3)) {
        assert!((r.distance - l2(&q, &model[&r.id])).abs() <= 1e-4);
    }
    let approx = search(None);
    assert!(approx
        .iter()
        .any(|r| (r.distance - l2(&q, &model[&r.id])).abs() > 1e-6));
    let err = col
        .search(&SearchRequest {
            vector: q.clone(),
            k: 5,
            rerank: Some(101),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("rerank"), "{err}");
}

#[test]
fn configs_without_hnsw_encoding_open_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let col = Collection::create(dir.path(), CollectionConfig::new(DIM, Metric::L2)).unwrap();
    upsert(&col, &data(100, 1), 0);
    col.close().unwrap();
    drop(col);
    let path = dir.path().join(quiver::collection::CONFIG_FILE);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let obj = json.as_object_mut().unwrap();
    for key in ["hnsw_encoding", "rerank", "rerank_vectors"] {
        assert!(obj.remove(key).is_some(), "config.json should hold {key}");
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let col = Collection::open(dir.path()).unwrap();
    assert_eq!(col.config().hnsw_encoding, VectorEncoding::F32);
    assert_eq!(col.config().rerank, CollectionConfig::default().rerank);
    assert_eq!(col.count(), 100);
}
