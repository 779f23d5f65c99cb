//! Tests of f16 and SQ8 vector storage: recall against f32, concurrent
//! inserts, clamping, memory, persistence and corrupt files.

use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::tests::{brute_force, random_data, recall, saved};
use super::*;
use crate::distance::Metric;
use crate::quant::Sq8Quantizer;

const ENCODINGS: [VectorEncoding; 3] = [
    VectorEncoding::F32,
    VectorEncoding::F16,
    VectorEncoding::Sq8,
];

fn params(m: usize) -> HnswParams {
    HnswParams {
        m,
        ..Default::default()
    }
}

/// Clustered rows, the shape of real embeddings (random uniform data in a
/// few dimensions has near-tied neighbours that any quantisation reorders).
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    crate::dataset::synthetic::clustered(n, dim, seed).data
}

/// Rewrites the file checksum after a deliberate edit of the body.
fn fix_crc(b: &mut [u8]) {
    let body = b.len() - 8;
    let crc = crc32c::crc32c(&b[..body]);
    b[body..body + 4].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn quantised_graphs_keep_recall_close_to_f32() {
    let (n, dim) = (4000, 32);
    let all = clustered(n + 100, dim, 5);
    let (data, queries) = all.split_at(n * dim);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut r = [0.0; 3];
        for (i, enc) in ENCODINGS.into_iter().enumerate() {
            let index = Hnsw::build_encoded(data, dim, metric, params(12), enc, false).unwrap();
            assert_eq!(index.encoding(), enc);
            r[i] = recall(&index, data, queries, 10, 64, &|_| false);
        }
        // Measured (f32, f16, sq8): l2 1.0, 0.999, 0.981; ip 0.998, 0.998,
        // 0.982; cosine 1.0, 0.996, 0.951 (tight clusters on the unit
        // sphere: neighbour gaps near SQ8's step).
        assert!(r[0] >= 0.97, "{metric}: f32 recall {r:?}");
        assert!(r[1] >= r[0] - 0.01, "{metric}: f16 recall {r:?}");
        assert!(r[2] >= r[0] - 0.07, "{metric}: sq8 recall {r:?}");
    }
}

#[test]
fn memory_reflects_the_codes() {
    let (n, dim) = (2000, 64);
    let data = random_data(n, dim, 3);
    let mem: Vec<usize> = ENCODINGS
        .into_iter()
        .map(|e| {
            let h = Hnsw::build_encoded(&data, dim, Metric::L2, params(8), e, false).unwrap();
            // Node levels are drawn at random per build: leave the links out.
            h.memory_bytes() - h.links.bytes(h.len())
        })
        .collect();
    // Only the code arena differs: 256, 128 and 64 bytes per vector (plus
    // the SQ8 parameters, 8 bytes per dimension, and for L2 each code's
    // norm, 4 bytes per vector). Each arena counts whole pages from its
    // aligned start, which depends on where the allocator put it: allow a
    // page either way for each arena.
    let near = |got: usize, want: usize, arenas: usize| got.abs_diff(want) <= 4096 * arenas;
    assert!(near(mem[0] - mem[1], n * 128, 1), "{mem:?}");
    assert!(
        near(mem[0] + n * 4, n * 192 - 8 * dim + mem[2], 2),
        "{mem:?}"
    );
}

#[test]
fn concurrent_inserts_into_an_sq8_graph() {
    let (n, dim) = (4000, 24);
    let data = clustered(n, dim, 13);
    let queries = clustered(n + 60, dim, 13).split_off(n * dim);
    for metric in [Metric::L2, Metric::Cosine] {
        // Trained on the first quarter only (as stored: normalised for
        // cosine): later rows may fall outside the range and are clamped.
        let mut sample = data[..n / 4 * dim].to_vec();
        if metric.normalizes() {
            sample.chunks_mut(dim).for_each(|v| {
                crate::distance::normalize(v);
            });
        }
        let quantizer = Sq8Quantizer::train(sample.chunks(dim)).unwrap();
        let index = Hnsw::with_codec(
            dim,
            metric,
            params(12),
            n,
            VectorCodec::Sq8(quantizer.clone()),
        )
        .unwrap();
        let mut row_of = vec![0u32; n];
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let (index, data) = (&index, &data);
                    s.spawn(move || {
                        let mut placed = Vec::new();
                        for (i, row) in data.chunks(dim).enumerate().skip(t).step_by(4) {
                            let id = index.insert(row).unwrap();
                            placed.push((id.0, i as u32));
                            assert!(!index.search(row, 5, 20).unwrap().is_empty());
                        }
                        placed
                    })
                })
                .collect();
            for h in handles {
                for (id, row) in h.join().unwrap() {
                    row_of[id as usize] = row;
                }
            }
        });
        assert_eq!(index.len(), n);
        assert_eq!(index.encoding(), VectorEncoding::Sq8);
        let (mut hits, mut total) = (0, 0);
        for q in queries.chunks(dim) {
            let truth = brute_force(&data, dim, metric, q, 10, &|_| false);
            let got = index.search(q, 10, 64).unwrap();
            hits += got
                .iter()
                .filter(|g| truth.contains(&row_of[g.id.0 as usize]))
                .count();
            total += truth.len();
        }
        let r = hits as f64 / total as f64;
        // Measured: l2 0.977, cosine 0.960.
        assert!(r >= 0.93, "{metric}: recall of the inserted SQ8 graph {r}");
    }
}

#[test]
fn f16_inserts_after_a_build() {
    let (n, dim) = (3000, 16);
    let data = clustered(n, dim, 17);
    let mut index = Hnsw::build_encoded(
        &data[..n / 2 * dim],
        dim,
        Metric::L2,
        params(12),
        VectorEncoding::F16,
        false,
    )
    .unwrap();
    index.reserve(n);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (index, data) = (&index, &data);
            s.spawn(move || {
                for row in data[n / 2 * dim..].chunks(dim).skip(t).step_by(2) {
                    index.insert(row).unwrap();
                }
            });
        }
    });
    assert_eq!(index.len(), n);
    let mut self_hits = 0;
    for row in data.chunks(dim).skip(n / 2).take(200) {
        let best = index.search(row, 1, 50).unwrap()[0];
        let stored = index.vector(best.id).unwrap();
        self_hits += stored
            .iter()
            .zip(row)
            .all(|(a, b)| (a - b).abs() <= b.abs() * 1e-3 + 1e-6) as usize;
    }
    assert!(self_hits >= 195, "inserted rows found: {self_hits}/200");
}

#[test]
fn sq8_inserts_clamp_to_the_trained_range() {
    let quantizer = Sq8Quantizer::train([[0.0f32, 0.0].as_slice(), &[1.0, 2.0]]).unwrap();
    let index = Hnsw::with_codec(2, Metric::L2, params(4), 4, VectorCodec::Sq8(quantizer)).unwrap();
    let id = index.insert(&[5.0, -3.0]).unwrap();
    assert_eq!(&*index.vector(id).unwrap(), &[1.0, 0.0]);
    let id = index.insert(&[0.5, 1.0]).unwrap();
    let v = index.vector(id).unwrap();
    assert!((v[0] - 0.5).abs() <= 0.5 / 255.0 + 1e-6, "{v:?}");
    assert!((v[1] - 1.0).abs() <= 1.0 / 255.0 + 1e-6, "{v:?}");
    // The clamped vector is what is searched; the distance is the integer
    // kernel's (the query rounded to int8: within α/2·Σ|cᵢ − 128|·2, here
    // about 0.008), not exact.
    let hit = index.search(&[1.0, 0.0], 1, 10).unwrap()[0];
    assert_eq!(hit.id, NodeId(0));
    assert!(hit.distance.abs() < 0.02, "{}", hit.distance);
}

#[test]
fn codec_errors() {
    let q3 = Sq8Quantizer::train([[0.0f32, 1.0, 2.0].as_slice()]).unwrap();
    assert!(matches!(
        Hnsw::with_codec(4, Metric::L2, params(4), 4, VectorCodec::Sq8(q3.clone())),
        Err(HnswError::InvalidParam { .. })
    ));
    let empty = Hnsw::new(3, Metric::L2, params(4), 4).unwrap();
    assert!(matches!(
        empty.reencode(VectorEncoding::Sq8),
        Err(HnswError::InvalidParam { .. })
    ));
    let empty = Hnsw::new(3, Metric::L2, params(4), 4).unwrap();
    let ix = empty.reencode_with(VectorCodec::Sq8(q3.clone())).unwrap();
    assert_eq!(ix.sq8_quantizer(), Some(&q3));
    assert!("f64".parse::<VectorEncoding>().is_err());
    assert_eq!(
        "SQ8".parse::<VectorEncoding>().unwrap(),
        VectorEncoding::Sq8
    );
}

#[test]
fn rebuild_keeps_the_encoding() {
    let (n, dim) = (600, 8);
    let data = clustered(n, dim, 23);
    let index = Hnsw::build_encoded(
        &data,
        dim,
        Metric::L2,
        params(8),
        VectorEncoding::Sq8,
        false,
    )
    .unwrap();
    index.delete(NodeId(5)).unwrap();
    let (rebuilt, map) = index.rebuild(false).unwrap();
    assert_eq!(rebuilt.len(), n - 1);
    assert_eq!(rebuilt.sq8_quantizer(), index.sq8_quantizer());
    for (new, old) in map.iter().enumerate().take(50) {
        assert_eq!(
            rebuilt.vector(NodeId(new as u32)).unwrap(),
            index.vector(*old).unwrap()
        );
    }
}

#[test]
fn save_load_round_trip_for_every_encoding() {
    let (n, dim) = (800, 12);
    let data = clustered(n, dim, 29);
    let queries = random_data(20, dim, 30);
    for enc in ENCODINGS {
        let index = Hnsw::build_encoded(&data, dim, Metric::Cosine, params(8), enc, false).unwrap();
        index.delete(NodeId(17)).unwrap();
        let (_dir, path) = saved(&index);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
        assert_eq!(bytes[13], enc.code());
        let loaded = Hnsw::load(&path, 5).unwrap();
        assert_eq!(loaded.encoding(), enc);
        assert_eq!(loaded.codec(), index.codec());
        assert!(loaded.is_deleted(NodeId(17)));
        for i in (0..n as u32).step_by(97) {
            assert_eq!(loaded.vector(NodeId(i)), index.vector(NodeId(i)), "{enc}");
        }
        for q in queries.chunks(dim) {
            assert_eq!(
                index.search(q, 10, 40).unwrap(),
                loaded.search(q, 10, 40).unwrap(),
                "{enc}"
            );
        }
        let id = loaded.insert(&data[..dim]).unwrap();
        assert_eq!(loaded.search(&data[..dim], 2, 20).unwrap().len(), 2);
        assert_eq!(id.0 as usize, n);
    }
}

#[test]
fn version_1_files_still_load() {
    let v1 = include_bytes!("../../fuzz/corpus/hnsw_file/valid-40x4");
    assert_eq!(u32::from_le_bytes(v1[8..12].try_into().unwrap()), 1);
    let p = Path::new("v1.hnsw");
    let index = Hnsw::from_bytes(v1, p, 0).unwrap();
    assert_eq!((index.len(), index.dim()), (40, 4));
    assert_eq!(index.encoding(), VectorEncoding::F32);
    assert!(index.is_deleted(NodeId(3)));
    let q = [0.1, 0.2, 0.3, 0.4];
    let before = index.search(&q, 5, 20).unwrap();
    assert_eq!(before.len(), 5);
    let (_dir, path) = saved(&index);
    let again = Hnsw::load(&path, 0).unwrap();
    assert_eq!(again.search(&q, 5, 20).unwrap(), before);
}

#[test]
fn corrupt_encoded_files_are_errors() {
    let (n, dim) = (200, 8);
    let data = clustered(n, dim, 37);
    let p = Path::new("enc.hnsw");
    let file = |enc| {
        let ix = Hnsw::build_encoded(&data, dim, Metric::L2, params(4), enc, false).unwrap();
        let (_dir, path) = saved(&ix);
        std::fs::read(path).unwrap()
    };
    let sq8 = file(VectorEncoding::Sq8);
    let f16 = file(VectorEncoding::F16);
    let err = |b: &[u8]| {
        Hnsw::from_bytes(b, p, 0)
            .err()
            .expect("must fail")
            .to_string()
    };
    assert!(Hnsw::from_bytes(&sq8, p, 0).is_ok());

    // Every truncation and single bit flip fails.
    for bytes in [&sq8, &f16] {
        for cut in (0..bytes.len()).step_by(29) {
            assert!(Hnsw::from_bytes(&bytes[..cut], p, 0).is_err());
        }
        let mut rng = SmallRng::seed_from_u64(38);
        for _ in 0..100 {
            let mut b = bytes.clone();
            let i = rng.gen_range(0..b.len());
            b[i] ^= 1 << rng.gen_range(0..8);
            assert!(Hnsw::from_bytes(&b, p, 0).is_err(), "bit flip at {i}");
        }
    }

    // Checksummed, but inconsistent.
    let mut b = sq8.clone();
    b[13] = 9;
    fix_crc(&mut b);
    assert!(err(&b).contains("unknown vector encoding 9"), "{}", err(&b));

    let mut b = sq8.clone();
    b[13] = VectorEncoding::F16.code();
    fix_crc(&mut b);
    assert!(err(&b).contains("quantizer section"), "{}", err(&b));

    let mut b = f16.clone();
    b[13] = VectorEncoding::Sq8.code();
    fix_crc(&mut b);
    assert!(
        err(&b).contains("quantizer section of 0 bytes"),
        "{}",
        err(&b)
    );

    let mut b = sq8.clone();
    b[60] = 1;
    fix_crc(&mut b);
    assert!(err(&b).contains("reserved header byte"), "{}", err(&b));

    // The quantizer's own checksum (after the levels).
    let mut b = sq8.clone();
    b[64 + n + 20] ^= 0x10;
    fix_crc(&mut b);
    assert!(err(&b).contains("SQ8 quantizer"), "{}", err(&b));

    // A quantizer of another dimension (same byte length is impossible, so
    // grow the section: the codes then no longer line up).
    let mut b = sq8.clone();
    b[52..56].copy_from_slice(&1u32.to_le_bytes());
    fix_crc(&mut b);
    assert!(err(&b).contains("SQ8 quantizer"), "{}", err(&b));

    // A NaN f16 code.
    let mut b = f16.clone();
    let code0 = 64 + n;
    b[code0 + 2..code0 + 4].copy_from_slice(&half::f16::NAN.to_le_bytes());
    fix_crc(&mut b);
    assert!(err(&b).contains("non-finite"), "{}", err(&b));

    // Random checksummed edits: a clean error or a usable index.
    let mut rng = SmallRng::seed_from_u64(39);
    for _ in 0..1000 {
        let mut b = sq8.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..b.len() - 8);
            b[i] = rng.gen();
        }
        fix_crc(&mut b);
        if let Ok(ix) = Hnsw::from_bytes(&b, p, 1) {
            let _ = ix.search(&[0.5; 8], 5, 10);
            let _ = ix.insert(&[0.25; 8]);
        }
    }
}
