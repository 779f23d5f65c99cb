//! Collections whose data spans the memory tier (HNSW segments) and the SSD
//! tier (SPANN): points move to the SSD tier at checkpoints and keep their
//! payloads and vectors; deletes and replacements reach them; reopening
//! gives the same state; and recall on real data across both tiers.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use quiver::collection::{
    Collection, CollectionConfig, FsyncPolicy, Payload, Point, SearchRequest, SsdConfig, Value,
};
use quiver::dataset;
use quiver::distance::Metric;
use quiver::hnsw::HnswParams;

use crate::common::minilm;

fn payload(id: u64) -> Payload {
    let mut p = Payload::new();
    p.insert("id".into(), Value::Int(id as i64));
    p
}

/// A point with a random vector in [-1, 1]^dim and the payload of its id.
fn random_point(rng: &mut SmallRng, id: u64, dim: usize) -> Point {
    Point {
        id,
        vector: (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect(),
        payload: Some(payload(id)),
    }
}

/// Upserts `points` and records them in `model`.
fn upsert_model(col: &Collection, model: &mut BTreeMap<u64, Vec<f32>>, points: Vec<Point>) {
    for p in &points {
        model.insert(p.id, p.vector.clone());
    }
    col.upsert(points).unwrap();
}

/// Deletes every `step`-th id of `model` from both.
fn delete_every(col: &Collection, model: &mut BTreeMap<u64, Vec<f32>>, step: usize) {
    let gone: Vec<u64> = model.keys().copied().step_by(step).collect();
    for id in &gone {
        model.remove(id);
    }
    col.delete(&gone).unwrap();
}

fn exact(vector: Vec<f32>, k: usize) -> SearchRequest {
    SearchRequest {
        vector,
        k,
        ef: Some(2_000),
        nprobe: Some(100_000),
        with_payload: true,
        with_vector: true,
        ..Default::default()
    }
}

fn brute(model: &BTreeMap<u64, Vec<f32>>, q: &[f32], k: usize) -> Vec<u64> {
    let kern = Metric::L2.kernel();
    let mut all: Vec<(f32, u64)> = model
        .iter()
        .map(|(&id, v)| (kern.distance(q, v), id))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|x| x.1).collect()
}

#[test]
fn points_move_to_the_ssd_tier_and_stay_correct_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 16;
    let cfg = CollectionConfig {
        memory_tier_points: 500,
        fsync: FsyncPolicy::Never,
        ..CollectionConfig::new(dim, Metric::L2)
    };
    let mut col = Collection::create(dir.path(), cfg).unwrap();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    let check = |col: &Collection, model: &BTreeMap<u64, Vec<f32>>, rng: &mut SmallRng| {
        assert_eq!(col.count(), model.len());
        for _ in 0..20 {
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let got = col.search(&exact(q.clone(), 10)).unwrap();
            let ids: Vec<u64> = got.iter().map(|r| r.id).collect();
            assert_eq!(ids, brute(model, &q, 10));
            for r in &got {
                assert_eq!(r.payload.as_ref(), Some(&payload(r.id)));
                assert_eq!(r.vector.as_ref(), Some(&model[&r.id]), "vector of {}", r.id);
            }
        }
        let ids: Vec<u64> = model.keys().copied().take(50).collect();
        for (id, r) in ids.iter().zip(col.get(&ids, true, true).unwrap()) {
            let r = r.unwrap_or_else(|| panic!("get {id}"));
            assert_eq!(r.vector.as_ref(), Some(&model[id]));
        }
    };
    for round in 0..4u64 {
        let pts: Vec<Point> = (0..800)
            .map(|i| {
                // Later rounds replace some earlier ids (which by then live in the SSD tier).
                let id = if i % 4 == 0 {
                    rng.gen_range(0..round * 800 + 1)
                } else {
                    round * 800 + i
                };
                random_point(&mut rng, id, dim)
            })
            .collect();
        for p in &pts {
            model.insert(p.id, p.vector.clone());
        }
        for chunk in pts.chunks(100) {
            col.upsert(chunk.to_vec()).unwrap();
        }
        let doomed: Vec<u64> = (0..30)
            .map(|_| rng.gen_range(0..(round + 1) * 800))
            .collect();
        for id in &doomed {
            model.remove(id);
        }
        col.delete(&doomed).unwrap();
        col.checkpoint_all().unwrap();
        let stats = col.stats();
        assert!(
            stats.ssd_points > 0,
            "round {round}: nothing in the SSD tier: {stats:?}"
        );
        assert_eq!(stats.segments, 1, "frozen segments were merged: {stats:?}");
        check(&col, &model, &mut rng);
        // Writes after the checkpoint live only in the WAL and the memory tier.
        let extra: Vec<Point> = (0..50)
            .map(|i| {
                let id = 100_000 + round * 100 + i;
                random_point(&mut rng, id, dim)
            })
            .collect();
        upsert_model(&col, &mut model, extra);
        delete_every(&col, &mut model, 97);
        col.close().unwrap();
        drop(col);
        col = Collection::open(dir.path()).unwrap();
        check(&col, &model, &mut rng);
    }
}

#[test]
fn recall_across_memory_and_ssd_tiers_on_minilm() {
    let Some(d) = minilm() else { return };
    let base = dataset::load_vectors(d.join("base.fbin"), Some(20_000)).unwrap();
    let queries = dataset::load_vectors(d.join("query.fbin"), Some(300)).unwrap();
    let gt = dataset::ground_truth(&base, &queries, 10, Metric::Cosine).unwrap();
    let (ef, nprobe) = (64, 64);
    let hnsw = HnswParams {
        m: 16,
        ef_construction: 100,
        ..Default::default()
    };
    // Builds a collection holding `on_ssd` of the points in the SSD tier
    // and the rest in memory, and returns its recall@10.
    let recall_with = |on_ssd: usize| -> f64 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CollectionConfig {
            hnsw,
            memory_tier_points: base.len(),
            fsync: FsyncPolicy::Never,
            ssd: Some(SsdConfig::default()),
            ..CollectionConfig::new(base.dim, Metric::Cosine)
        };
        let col = Collection::create(dir.path(), cfg).unwrap();
        let upsert = |range: std::ops::Range<usize>| {
            for start in range.clone().step_by(1000) {
                let pts = (start..(start + 1000).min(range.end))
                    .map(|i| Point {
                        id: i as u64,
                        vector: base.row(i).to_vec(),
                        payload: None,
                    })
                    .collect();
                col.upsert(pts).unwrap();
            }
        };
        upsert(0..on_ssd);
        if on_ssd > 0 {
            col.checkpoint_all().unwrap();
        }
        upsert(on_ssd..base.len());
        let stats = col.stats();
        assert_eq!(stats.ssd_points, on_ssd, "{stats:?}");
        let res: Vec<Vec<u32>> = queries
            .rows()
            .map(|q| {
                let req = SearchRequest {
                    vector: q.to_vec(),
                    k: 10,
                    ef: Some(ef),
                    nprobe: Some(nprobe),
                    with_payload: false,
                    with_vector: false,
                    ..Default::default()
                };
                col.search(&req)
                    .unwrap()
                    .iter()
                    .map(|r| r.id as u32)
                    .collect()
            })
            .collect();
        col.close().unwrap();
        dataset::recall_at_k(&res, &gt, 10)
    };
    let memory = recall_with(0);
    let ssd = recall_with(base.len());
    let mixed = recall_with(base.len() / 2);
    eprintln!(
        "recall@10 (ef={ef}, nprobe={nprobe}): memory tier {memory:.4}, SSD tier {ssd:.4}, half in each {mixed:.4}"
    );
    assert!(memory >= 0.9 && ssd >= 0.9, "memory {memory}, ssd {ssd}");
    let better = memory.max(ssd);
    assert!(
        mixed >= better - 0.01,
        "mixed {mixed} vs better single tier {better}"
    );
}

/// `flush` writes the memory tier to segment files, so a reopen has no WAL
/// to replay; the next open merges those segments into the SSD tier in the
/// background, and the data stays exact throughout.
#[test]
fn flush_writes_the_memory_tier_and_the_next_open_merges_it() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let cfg = CollectionConfig {
        memory_tier_points: 600,
        fsync: FsyncPolicy::Never,
        ..CollectionConfig::new(dim, Metric::L2)
    };
    let col = Collection::create(dir.path(), cfg).unwrap();
    let mut rng = SmallRng::seed_from_u64(9);
    let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    for round in 0..3u64 {
        let pts: Vec<Point> = (0..400)
            .map(|i| {
                let id = if i % 5 == 0 {
                    rng.gen_range(0..400)
                } else {
                    round * 400 + i
                };
                random_point(&mut rng, id, dim)
            })
            .collect();
        upsert_model(&col, &mut model, pts);
        delete_every(&col, &mut model, 41);
    }
    let check = |col: &Collection| {
        assert_eq!(col.count(), model.len());
        let ids: Vec<u64> = model.keys().copied().collect();
        for (id, r) in ids.iter().zip(col.get(&ids, true, true).unwrap()) {
            let r = r.unwrap_or_else(|| panic!("get {id}"));
            assert_eq!(r.vector.as_ref(), Some(&model[id]));
            assert_eq!(r.payload.as_ref(), Some(&payload(*id)));
        }
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..10 {
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let got: Vec<u64> = col
                .search(&exact(q.clone(), 10))
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(got, brute(&model, &q, 10));
        }
    };
    col.close().unwrap();
    let active = col.stats().active_points;
    assert!(active > 0, "the test needs points in the memory tier");
    col.flush().unwrap();
    let flushed = col.stats();
    assert_eq!(flushed.checkpoint_lsn, flushed.last_lsn, "{flushed:?}");
    assert_eq!(flushed.active_points, 0);
    check(&col);
    drop(col);

    let col = Collection::open(dir.path()).unwrap();
    let opened = col.stats();
    assert_eq!(
        opened.checkpoint_lsn, opened.last_lsn,
        "nothing to replay: {opened:?}"
    );
    check(&col);
    col.close().unwrap(); // joins the merge the open started
    let merged = col.stats();
    assert_eq!(merged.segments, 1, "flushed segments merged: {merged:?}");
    assert_eq!(merged.ssd_points, model.len(), "{merged:?}");
    check(&col);
    drop(col);
    let col = Collection::open(dir.path()).unwrap();
    check(&col);
}
