//! Collections under concurrency and on real data: concurrent writers and
//! searchers against a brute-force model, and recall across tiers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use quiver::collection::{Collection, CollectionConfig, FsyncPolicy, Point, SearchRequest};
use quiver::dataset;
use quiver::distance::Metric;
use quiver::hnsw::{Hnsw, HnswParams};

use crate::common::minilm;

fn req(vector: Vec<f32>, k: usize, ef: usize) -> SearchRequest {
    SearchRequest {
        vector,
        k,
        ef: Some(ef),
        nprobe: None,
        with_payload: false,
        with_vector: false,
        ..Default::default()
    }
}

#[test]
fn concurrent_writers_and_searchers_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let cfg = CollectionConfig {
        memory_tier_points: 300,
        fsync: FsyncPolicy::Never,
        ..CollectionConfig::new(dim, Metric::L2)
    };
    let col = Collection::create(dir.path(), cfg).unwrap();
    let seed: u64 = rand::random();
    let writers = 2u64;
    let per_writer_ids = 400u64;
    let ever: Arc<parking_lot::Mutex<HashSet<u64>>> = Default::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let models: Vec<BTreeMap<u64, Vec<f32>>> = std::thread::scope(|s| {
        let searchers: Vec<_> = (0..2)
            .map(|t| {
                let (col, ever, stop) = (&col, ever.clone(), &stop);
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed ^ (100 + t));
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
                        let res = col.search(&req(q, 10, 200)).unwrap();
                        let ids: HashSet<u64> = res.iter().map(|r| r.id).collect();
                        assert_eq!(
                            ids.len(),
                            res.len(),
                            "seed={seed}: duplicate ids in {res:?}"
                        );
                        assert!(
                            res.windows(2).all(|w| w[0].distance <= w[1].distance),
                            "seed={seed}: unsorted"
                        );
                        let ever = ever.lock();
                        assert!(
                            ids.iter().all(|i| ever.contains(i)),
                            "seed={seed}: unknown id returned"
                        );
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (col, ever) = (&col, ever.clone());
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed ^ w);
                    let mut model = BTreeMap::new();
                    for _ in 0..150 {
                        let base = w * per_writer_ids;
                        if rng.gen_bool(0.75) {
                            let pts: Vec<Point> = (0..rng.gen_range(1..10))
                                .map(|_| Point {
                                    id: base + rng.gen_range(0..per_writer_ids),
                                    vector: (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect(),
                                    payload: None,
                                })
                                .collect();
                            ever.lock().extend(pts.iter().map(|p| p.id));
                            for p in &pts {
                                model.insert(p.id, p.vector.clone());
                            }
                            let last = pts.last().unwrap().clone();
                            col.upsert(pts).unwrap();
                            // Read your writes: the acknowledged vector is found at distance 0.
                            let res = col.search(&req(last.vector.clone(), 1, 400)).unwrap();
                            assert_eq!(res[0].distance, 0.0, "seed={seed}: own write not visible");
                        } else {
                            let ids: Vec<u64> = (0..3)
                                .map(|_| base + rng.gen_range(0..per_writer_ids))
                                .collect();
                            for id in &ids {
                                model.remove(id);
                            }
                            col.delete(&ids).unwrap();
                            for r in col.get(&ids, false, false).unwrap() {
                                assert!(r.is_none(), "seed={seed}: deleted id still readable");
                            }
                        }
                    }
                    model
                })
            })
            .collect();
        let models = handles.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in searchers {
            assert!(s.join().unwrap() > 0);
        }
        models
    });
    let model: BTreeMap<u64, Vec<f32>> = models.into_iter().flatten().collect();
    assert_eq!(col.count(), model.len(), "seed={seed}");
    let kern = Metric::L2.kernel();
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..30 {
        let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut truth: Vec<(f32, u64)> = model
            .iter()
            .map(|(&id, v)| (kern.distance(&q, v), id))
            .collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<u64> = truth.iter().take(10).map(|x| x.1).collect();
        let got: Vec<u64> = col
            .search(&req(q, 10, 1000))
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, want, "seed={seed}");
    }
    col.close().unwrap();
}

#[test]
fn recall_across_segments_matches_a_single_index_on_minilm() {
    let Some(d) = minilm() else { return };
    let base = dataset::load_vectors(d.join("base.fbin"), Some(20_000)).unwrap();
    let queries = dataset::load_vectors(d.join("query.fbin"), Some(300)).unwrap();
    let gt = dataset::ground_truth(&base, &queries, 10, Metric::Cosine).unwrap();
    let params = HnswParams {
        m: 16,
        ef_construction: 100,
        ..Default::default()
    };
    let ef = 48;

    let single = Hnsw::build(&base.data, base.dim, Metric::Cosine, params, false).unwrap();
    let single_res: Vec<Vec<u32>> = queries
        .rows()
        .map(|q| {
            single
                .search(q, 10, ef)
                .unwrap()
                .iter()
                .map(|n| n.id.0)
                .collect()
        })
        .collect();
    let single_recall = dataset::recall_at_k(&single_res, &gt, 10);

    let dir = tempfile::tempdir().unwrap();
    let cfg = CollectionConfig {
        hnsw: params,
        memory_tier_points: 8_000, // three segments: two frozen (checkpointed), one active
        fsync: FsyncPolicy::Never,
        ssd: None, // segments stay HNSW files (the SSD tier: collection_tiers.rs)
        ..CollectionConfig::new(base.dim, Metric::Cosine)
    };
    let col = Collection::create(dir.path(), cfg).unwrap();
    for (b, chunk) in base.data.chunks(base.dim * 1000).enumerate() {
        let pts = chunk
            .chunks(base.dim)
            .enumerate()
            .map(|(i, v)| Point {
                id: (b * 1000 + i) as u64,
                vector: v.to_vec(),
                payload: None,
            })
            .collect();
        col.upsert(pts).unwrap();
    }
    col.close().unwrap();
    assert_eq!(col.stats().segments, 3);
    let res: Vec<Vec<u32>> = queries
        .rows()
        .map(|q| {
            col.search(&req(q.to_vec(), 10, ef))
                .unwrap()
                .iter()
                .map(|r| r.id as u32)
                .collect()
        })
        .collect();
    let col_recall = dataset::recall_at_k(&res, &gt, 10);
    eprintln!("recall@10 at ef={ef}: single index {single_recall:.4}, collection over 3 segments {col_recall:.4}");
    assert!(
        col_recall >= single_recall - 0.01,
        "collection {col_recall} vs single index {single_recall}"
    );
    assert!(col_recall >= 0.9, "collection recall {col_recall}");
}
