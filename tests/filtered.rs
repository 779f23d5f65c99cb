//! Filtered search on collections: against a brute-force model through
//! replacements, deletes and merges into the SSD tier (exact plans equal
//! the model; approximate ones never return a non-matching, deleted or
//! stale point); count, scroll and delete by filter; payload indexes
//! created and dropped on a live collection and kept across reopen; and
//! recall on the real attributes of minilm-npm-384.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use quiver::collection::{
    Collection, CollectionConfig, FsyncPolicy, Payload, Point, SearchRequest, SsdConfig, Value,
};
use quiver::distance::Metric;
use quiver::filter::eval::matches;
use quiver::filter::plan::PlanChoice;
use quiver::filter::{json, FieldType, Filter};

const CATS: [&str; 5] = ["a", "b", "c", "d", "rare"];

fn payload(rng: &mut SmallRng) -> Payload {
    let mut p = Payload::new();
    let cat = if rng.gen_bool(0.03) {
        "rare"
    } else {
        CATS[rng.gen_range(0..4)]
    };
    p.insert("cat".into(), Value::String(cat.into()));
    p.insert("n".into(), Value::Int(rng.gen_range(0..50)));
    if rng.gen_bool(0.5) {
        p.insert(
            "tags".into(),
            Value::List(vec![Value::String(format!("t{}", rng.gen_range(0..3)))]),
        );
    }
    if rng.gen_bool(0.1) {
        p.insert("opt".into(), Value::Null);
    }
    p
}

type Model = BTreeMap<u64, (Vec<f32>, Payload)>;

fn upsert(
    col: &Collection,
    model: &mut Model,
    rng: &mut SmallRng,
    ids: impl Iterator<Item = u64>,
    dim: usize,
) {
    let points: Vec<Point> = ids
        .map(|id| Point {
            id,
            vector: (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect(),
            payload: Some(payload(rng)),
        })
        .collect();
    for p in &points {
        model.insert(p.id, (p.vector.clone(), p.payload.clone().unwrap()));
    }
    col.upsert(points).unwrap();
}

const FILTERS: &[&str] = &[
    r#"{"must": [{"match": {"key": "cat", "value": "rare"}}]}"#,
    r#"{"must": [{"match": {"key": "cat", "value": "a"}}]}"#,
    r#"{"must_not": [{"match": {"key": "cat", "value": "a"}}]}"#,
    r#"{"must": [{"range": {"key": "n", "gte": 10, "lt": 20}}], "should": [{"match": {"key": "tags", "value": "t1"}}, {"is_null": {"key": "opt"}}]}"#,
    r#"{"must": [{"match_any": {"key": "cat", "values": ["b", "rare"]}}, {"is_empty": {"key": "tags"}}]}"#,
    r#"{"should": [{"has_id": {"ids": [1, 5, 9, 700, 1200]}}, {"range": {"key": "n", "lte": 1}}]}"#,
];

fn brute(model: &Model, f: &Filter, q: &[f32], k: usize) -> Vec<(u64, f32)> {
    let kern = Metric::L2.kernel();
    let mut all: Vec<(f32, u64)> = model
        .iter()
        .filter(|(id, (_, p))| matches(f, **id, Some(p)))
        .map(|(&id, (v, _))| (kern.distance(q, v), id))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(d, id)| (id, d)).collect()
}

fn check(col: &Collection, model: &Model, rng: &mut SmallRng, dim: usize, seed: u64) {
    for text in FILTERS {
        let f = json::parse(text, "filter").unwrap();
        let want_count = model
            .iter()
            .filter(|(id, (_, p))| matches(&f, **id, Some(p)))
            .count();
        assert_eq!(
            col.count_matching(&f).unwrap(),
            want_count,
            "seed {seed} {text}"
        );
        let (page, _) = col.scroll_matching(&f, None, 100_000, true, false).unwrap();
        let ids: Vec<u64> = page.iter().map(|r| r.id).collect();
        let want_ids: Vec<u64> = model
            .iter()
            .filter(|(id, (_, p))| matches(&f, **id, Some(p)))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, want_ids, "seed {seed} {text}: scroll");
        for r in &page {
            assert_eq!(r.payload.as_ref(), Some(&model[&r.id].1), "seed {seed}");
        }
        for _ in 0..5 {
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let want = brute(model, &f, &q, 10);
            let exact = col
                .search(&SearchRequest {
                    vector: q.clone(),
                    k: 10,
                    filter: Some(f.clone()),
                    plan: PlanChoice::Exact,
                    ..Default::default()
                })
                .unwrap();
            let got: Vec<u64> = exact.iter().map(|r| r.id).collect();
            let want_ids: Vec<u64> = want.iter().map(|x| x.0).collect();
            assert_eq!(got, want_ids, "seed {seed} {text}: exact plan");
            for choice in [PlanChoice::Auto, PlanChoice::Approximate] {
                let (res, explain) = col
                    .search_explained(&SearchRequest {
                        vector: q.clone(),
                        k: 10,
                        ef: Some(64),
                        filter: Some(f.clone()),
                        plan: choice,
                        explain: true,
                        ..Default::default()
                    })
                    .unwrap();
                let explain = explain.expect("explain was asked for");
                assert!(!explain.tiers.is_empty());
                let mut seen = std::collections::HashSet::new();
                for r in &res {
                    let (v, p) = model
                        .get(&r.id)
                        .unwrap_or_else(|| panic!("seed {seed}: deleted id {} returned", r.id));
                    assert!(
                        matches(&f, r.id, Some(p)),
                        "seed {seed} {text}: non-matching {}",
                        r.id
                    );
                    assert!(seen.insert(r.id), "seed {seed}: duplicate {}", r.id);
                    let d = Metric::L2.kernel().distance(&q, v);
                    assert!(
                        (d - r.distance).abs() <= 1e-3 * d.abs().max(1.0),
                        "seed {seed}: stale copy of {}",
                        r.id
                    );
                }
            }
        }
    }
}

#[test]
fn filtered_search_count_scroll_and_delete_match_the_model_across_tiers() {
    let seed: u64 = rand::random();
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let cfg = CollectionConfig {
        memory_tier_points: 400,
        fsync: FsyncPolicy::Never,
        ssd: Some(SsdConfig::default()),
        ..CollectionConfig::builder(dim, Metric::L2)
            .payload_index("cat", FieldType::Keyword)
            .build()
            .unwrap()
    };
    let col = Collection::create(dir.path(), cfg.clone()).unwrap();
    let mut model = Model::new();
    upsert(&col, &mut model, &mut rng, 0..1000, dim);
    col.checkpoint_all().unwrap();
    // Replacements and deletes reach points on SSD and in memory.
    upsert(&col, &mut model, &mut rng, (0..1300).step_by(3), dim);
    let gone: Vec<u64> = (0..1300).step_by(7).collect();
    for id in &gone {
        model.remove(id);
    }
    col.delete(&gone).unwrap();
    check(&col, &model, &mut rng, dim, seed);
    // An index created on a live collection, one dropped; same answers.
    col.create_field_index("n", FieldType::Integer).unwrap();
    col.create_field_index("tags", FieldType::Keyword).unwrap();
    assert!(col.drop_field_index("cat").unwrap());
    let keys: Vec<String> = col.field_indexes().into_iter().map(|f| f.key).collect();
    assert_eq!(keys, ["n", "tags"]);
    check(&col, &model, &mut rng, dim, seed);
    // Type clashes with indexed fields and bad filters name the path.
    let clash = json::parse(
        r#"{"must": [{"match": {"key": "n", "value": "x"}}]}"#,
        "filter",
    )
    .unwrap();
    let e = col.count_matching(&clash).unwrap_err().to_string();
    assert!(e.starts_with("filter.must[0].match:"), "{e}");
    // Delete by filter; reopen keeps points and indexes.
    let rare = json::parse(
        r#"{"must": [{"match": {"key": "cat", "value": "rare"}}]}"#,
        "filter",
    )
    .unwrap();
    let before = col.count_matching(&rare).unwrap();
    let (_, deleted) = col.delete_matching(&rare).unwrap();
    assert_eq!(deleted, before);
    model.retain(|id, (_, p)| !matches(&rare, *id, Some(p)));
    assert_eq!(col.count_matching(&rare).unwrap(), 0);
    col.close().unwrap();
    drop(col);
    let col = Collection::open(dir.path()).unwrap();
    let keys: Vec<String> = col.field_indexes().into_iter().map(|f| f.key).collect();
    assert_eq!(keys, ["n", "tags"]);
    check(&col, &model, &mut rng, dim, seed);
}

/// On an SQ8 memory tier (f32 vectors kept for re-ranking) the exact plan is
/// still exact and the graph plan's hits carry exact distances.
#[test]
fn filtered_search_on_sq8_segments_scores_with_full_vectors() {
    let seed: u64 = rand::random();
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let cfg = CollectionConfig {
        fsync: FsyncPolicy::Never,
        ssd: None,
        ..CollectionConfig::builder(dim, Metric::L2)
            .hnsw_encoding(quiver::hnsw::VectorEncoding::Sq8)
            .payload_index("cat", FieldType::Keyword)
            .build()
            .unwrap()
    };
    let col = Collection::create(dir.path(), cfg).unwrap();
    let mut model = Model::new();
    // Past the first segment's training size, so the graph holds SQ8 codes.
    upsert(&col, &mut model, &mut rng, 0..12_000, dim);
    let kern = Metric::L2.kernel();
    for text in &FILTERS[..3] {
        let f = json::parse(text, "filter").unwrap();
        for _ in 0..5 {
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let want: Vec<u64> = brute(&model, &f, &q, 10).into_iter().map(|x| x.0).collect();
            for plan in [PlanChoice::Exact, PlanChoice::Approximate] {
                let res = col
                    .search(&SearchRequest {
                        vector: q.clone(),
                        k: 10,
                        ef: Some(200),
                        filter: Some(f.clone()),
                        plan,
                        ..Default::default()
                    })
                    .unwrap();
                for r in &res {
                    let d = kern.distance(&q, &model[&r.id].0);
                    assert!(
                        (d - r.distance).abs() <= 1e-4 * d.max(1.0),
                        "seed {seed}: {plan:?} distance of {} is not exact",
                        r.id
                    );
                }
                if plan == PlanChoice::Exact {
                    let got: Vec<u64> = res.iter().map(|r| r.id).collect();
                    assert_eq!(got, want, "seed {seed} {text}: exact plan on SQ8");
                }
            }
        }
    }
}

/// Recall of filtered search on the real attributes of minilm-npm-384 (the
/// first 20,000 points, all in memory, default `ef`): equality, a correlated
/// scope, IN, a range and a large unscoped filter each reach recall@10
/// ≥ 0.95 against brute force over their matching points.
#[test]
fn filtered_recall_on_the_real_attributes() {
    let Some(d) = crate::common::minilm() else {
        return;
    };
    let n = 20_000;
    let base = quiver::dataset::load_vectors(d.join("base.fbin"), Some(n)).unwrap();
    let queries = quiver::dataset::load_vectors(d.join("query.fbin"), Some(200)).unwrap();
    let text = std::fs::read_to_string(d.join("attributes.jsonl")).unwrap();
    let payloads: Vec<Payload> = text
        .lines()
        .take(n)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = CollectionConfig {
        fsync: FsyncPolicy::Never,
        ssd: None,
        ..CollectionConfig::builder(base.dim, Metric::Cosine)
            .payload_index("scope", FieldType::Keyword)
            .payload_index("downloads", FieldType::Integer)
            .build()
            .unwrap()
    };
    let col = Collection::create(dir.path(), cfg).unwrap();
    for start in (0..n).step_by(1000) {
        let pts = (start..(start + 1000).min(n))
            .map(|i| Point {
                id: i as u64,
                vector: base.row(i).to_vec(),
                payload: Some(payloads[i].clone()),
            })
            .collect();
        col.upsert(pts).unwrap();
    }
    let kern = Metric::Cosine.kernel();
    let unit = |v: &[f32]| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    for text in [
        r#"{"must": [{"match": {"key": "scope", "value": "@types"}}]}"#,
        r#"{"must": [{"match": {"key": "scope", "value": ""}}]}"#,
        r#"{"must": [{"match_any": {"key": "scope", "values": ["@stdlib", "@aws-sdk", "@azure"]}}]}"#,
        r#"{"must": [{"range": {"key": "downloads", "gte": 1000000}}]}"#,
        r#"{"must": [{"match": {"key": "scope", "value": "@types"}}, {"range": {"key": "downloads", "gte": 100000}}]}"#,
    ] {
        let f = json::parse(text, "filter").unwrap();
        let matching: Vec<usize> = (0..n)
            .filter(|&i| matches(&f, i as u64, Some(&payloads[i])))
            .collect();
        let (mut hit, mut total) = (0, 0);
        for q in queries.rows() {
            let qn = unit(q);
            let mut all: Vec<(f32, u64)> = matching
                .iter()
                .map(|&i| (kern.distance(&qn, &unit(base.row(i))), i as u64))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            let want: Vec<u64> = all.iter().take(10).map(|x| x.1).collect();
            let got = col
                .search(&SearchRequest {
                    vector: q.to_vec(),
                    k: 10,
                    filter: Some(f.clone()),
                    ..Default::default()
                })
                .unwrap();
            total += want.len();
            hit += got.iter().filter(|r| want.contains(&r.id)).count();
        }
        let recall = hit as f64 / total.max(1) as f64;
        eprintln!("{text}: {} matching, recall@10 {recall:.4}", matching.len());
        assert!(recall >= 0.95, "{text}: recall@10 {recall:.4}");
    }
}
