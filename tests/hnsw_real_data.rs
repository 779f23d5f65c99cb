//! HNSW recall on real sentence embeddings (all-MiniLM-L6-v2, 384-d, cosine).

use quiver::dataset;
use quiver::distance::Metric;
use quiver::hnsw::{Hnsw, HnswParams, NodeId, VectorEncoding};

use crate::common::minilm;

fn recall_at(
    index: &Hnsw,
    queries: &dataset::VectorSet,
    gt: &dataset::Neighbors,
    ef: usize,
) -> f64 {
    let results: Vec<Vec<u32>> = queries
        .rows()
        .map(|q| {
            index
                .search(q, 10, ef)
                .unwrap()
                .iter()
                .map(|n| n.id.0)
                .collect()
        })
        .collect();
    dataset::recall_at_k(&results, gt, 10)
}

#[test]
fn recall_on_minilm_reaches_targets_and_survives_save_load() {
    let Some(dir) = minilm() else { return };
    let base = dataset::load_vectors(dir.join("base.fbin"), None).unwrap();
    let queries = dataset::load_vectors(dir.join("query.fbin"), Some(300)).unwrap();
    let gt = dataset::load_neighbors(dir.join("gt.ibin")).unwrap();
    let params = HnswParams {
        m: 16,
        ef_construction: 100,
        ..Default::default()
    };
    let index = Hnsw::build(&base.data, base.dim, Metric::Cosine, params, false).unwrap();

    let r64 = recall_at(&index, &queries, &gt, 64);
    let r256 = recall_at(&index, &queries, &gt, 256);
    assert!(r64 >= 0.95, "recall@10 at ef=64: {r64}");
    assert!(r256 >= 0.99, "recall@10 at ef=256: {r256}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minilm.hnsw");
    index.save(&path).unwrap();
    let loaded = Hnsw::load(&path, 0).unwrap();
    assert_eq!(recall_at(&loaded, &queries, &gt, 64), r64);

    // Deleting the true nearest neighbour of each query: it never comes back,
    // and the rest of the top-10 is still found.
    for q in 0..queries.len() {
        index.delete(NodeId(gt.row(q)[0])).unwrap();
    }
    for (q, v) in queries.rows().enumerate() {
        let res = index.search(v, 10, 64).unwrap();
        assert!(
            res.iter().all(|n| n.id.0 != gt.row(q)[0]),
            "query {q}: deleted id returned"
        );
    }
}

#[test]
fn f16_and_sq8_graphs_on_minilm_stay_close_to_f32() {
    let Some(dir) = minilm() else { return };
    let base = dataset::load_vectors(dir.join("base.fbin"), None).unwrap();
    let queries = dataset::load_vectors(dir.join("query.fbin"), Some(300)).unwrap();
    let gt = dataset::load_neighbors(dir.join("gt.ibin")).unwrap();
    let params = HnswParams {
        m: 16,
        ef_construction: 100,
        ..Default::default()
    };
    let f32_index = Hnsw::build(&base.data, base.dim, Metric::Cosine, params, false).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f32.hnsw");
    f32_index.save(&path).unwrap();
    let f32_mem = f32_index.memory_bytes();
    let r32: Vec<f64> = [32, 64]
        .map(|ef| recall_at(&f32_index, &queries, &gt, ef))
        .to_vec();
    drop(f32_index);
    for enc in [VectorEncoding::F16, VectorEncoding::Sq8] {
        let index = Hnsw::load(&path, 0).unwrap().reencode(enc).unwrap();
        let r: Vec<f64> = [32, 64]
            .map(|ef| recall_at(&index, &queries, &gt, ef))
            .to_vec();
        let saved = f32_mem - index.memory_bytes();
        let per_vector = enc.code_bytes(base.dim);
        assert!(
            saved >= base.len() * (4 * base.dim - per_vector) - 8 * base.dim,
            "{enc}: saved {saved} bytes"
        );
        // Measured (ef 32, 64): f32 0.930, 0.960; f16 0.930, 0.959; sq8
        // 0.927, 0.955.
        for (got, want) in r.iter().zip(&r32) {
            let slack = if enc == VectorEncoding::F16 {
                0.003
            } else {
                0.015
            };
            assert!(*got >= want - slack, "{enc}: recall {r:?} vs f32 {r32:?}");
        }
        // The encoded graph round-trips through its file.
        let p = tmp.path().join(format!("{enc}.hnsw"));
        index.save(&p).unwrap();
        let loaded = Hnsw::load(&p, 0).unwrap();
        assert_eq!(loaded.encoding(), enc);
        assert_eq!(recall_at(&loaded, &queries, &gt, 64), r[1]);
    }
}
