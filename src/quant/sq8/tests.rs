use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::distance::{available_kernels, Metric};

pub(super) fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    // Per-dimension offset and spread, so dimensions differ.
    let spread: Vec<(f32, f32)> = (0..dim)
        .map(|_| (rng.gen_range(-3.0..3.0), rng.gen_range(0.01..2.0)))
        .collect();
    (0..n)
        .map(|_| {
            spread
                .iter()
                .map(|&(o, s)| o + s * rng.gen_range(-1.0f32..1.0))
                .collect()
        })
        .collect()
}

fn train(vs: &[Vec<f32>]) -> Sq8Quantizer {
    Sq8Quantizer::train(vs.iter().map(Vec::as_slice)).unwrap()
}

#[test]
fn round_trip_within_half_a_step() {
    for (seed, dim) in [1usize, 7, 17, 128, 769].into_iter().enumerate() {
        let vs = random_vectors(50, dim, seed as u64);
        let q = train(&vs);
        let mut back = vec![0.0; dim];
        for v in &vs {
            q.decode(&q.encode_vec(v), &mut back);
            for i in 0..dim {
                // Half a step, plus f32 rounding of (x − min)/scale and min + scale·c.
                let tol = q.scale()[i] * 0.5 * (1.0 + 1e-4)
                    + 4.0 * f32::EPSILON * (v[i].abs() + q.min()[i].abs());
                let err = (v[i] - back[i]).abs();
                assert!(
                    err <= tol,
                    "seed={seed} dim {i}: {} -> {} (err {err}, scale {})",
                    v[i],
                    back[i],
                    q.scale()[i]
                );
            }
        }
    }
}

#[test]
fn values_outside_the_range_are_clamped() {
    let q = Sq8Quantizer::from_params(vec![0.0, -1.0], vec![1.0 / 255.0, 2.0 / 255.0]).unwrap();
    assert_eq!(q.encode_vec(&[-5.0, 100.0]), vec![0, 255]);
    assert_eq!(q.encode_vec(&[f32::NAN, f32::NEG_INFINITY]), vec![0, 0]);
}

#[test]
fn zero_range_dimension_round_trips_exactly() {
    let vs = [vec![3.5, 0.0], vec![3.5, 1.0]];
    let q = train(&vs);
    assert_eq!(q.scale()[0], 1.0);
    let mut out = [0.0; 2];
    q.decode(&q.encode_vec(&vs[0]), &mut out);
    assert_eq!(out, [3.5, 0.0]);
}

#[test]
fn train_rejects_bad_samples() {
    let none: [&[f32]; 0] = [];
    assert_eq!(Sq8Quantizer::train(none), Err(QuantError::EmptySample));
    let e = Sq8Quantizer::train([&[1.0, 2.0][..], &[1.0][..]]).unwrap_err();
    assert!(
        matches!(
            e,
            QuantError::DimensionMismatch {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = Sq8Quantizer::train([&[1.0, f32::NAN][..]]).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { dim: 1, .. }), "{e}");
    assert_eq!(
        Sq8Quantizer::train([&[][..]]),
        Err(QuantError::BadDimension(0))
    );
}

#[test]
fn from_params_validates() {
    assert!(matches!(
        Sq8Quantizer::from_params(vec![0.0], vec![0.0]),
        Err(QuantError::BadScale { dim: 0, .. })
    ));
    assert!(matches!(
        Sq8Quantizer::from_params(vec![0.0], vec![-1.0]),
        Err(QuantError::BadScale { .. })
    ));
    assert!(matches!(
        Sq8Quantizer::from_params(vec![0.0, 1.0], vec![1.0, f32::NAN]),
        Err(QuantError::NonFinite { dim: 1, .. })
    ));
    assert!(matches!(
        Sq8Quantizer::from_params(vec![f32::INFINITY], vec![1.0]),
        Err(QuantError::NonFinite { .. })
    ));
    assert!(matches!(
        Sq8Quantizer::from_params(vec![0.0], vec![1.0, 1.0]),
        Err(QuantError::DimensionMismatch { .. })
    ));
    assert_eq!(
        Sq8Quantizer::from_params(vec![], vec![]),
        Err(QuantError::BadDimension(0))
    );
}

/// `Sq8Query::distance` equals the metric's distance to the decoded vector.
/// They differ only in rounding (the query side is folded into q' or w and
/// the bias), so the bound is relative to the magnitude of the terms:
/// `|Δ| ≤ 1e-5·Σ|terms| + 1e-6`.
#[test]
fn query_distance_matches_decoded_vector() {
    for (seed, dim) in [1usize, 7, 15, 17, 127, 129, 768, 1536]
        .into_iter()
        .enumerate()
    {
        let seed = seed as u64;
        let vs = random_vectors(40, dim, seed);
        let quant = train(&vs);
        let mut rng = SmallRng::seed_from_u64(seed + 100);
        let query: Vec<f32> = (0..dim).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let mut unit = query.clone();
        assert!(crate::distance::normalize(&mut unit));
        for k in available_kernels() {
            for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
                let sq = Sq8Query::with_kernels(&quant, metric, &query, &k);
                assert_eq!(sq.metric(), metric);
                let q = if metric.normalizes() { &unit } else { &query };
                for v in vs.iter().take(10) {
                    let code = quant.encode_vec(v);
                    let mut dec = vec![0.0; dim];
                    quant.decode(&code, &mut dec);
                    let (want, abs_terms) = match metric {
                        Metric::L2 => {
                            let s: f64 = q
                                .iter()
                                .zip(&dec)
                                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                                .sum();
                            (s, s)
                        }
                        _ => {
                            let s: f64 = q
                                .iter()
                                .zip(&dec)
                                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                                .sum();
                            let abs: f64 = q
                                .iter()
                                .zip(&dec)
                                .zip(quant.min())
                                .map(|((&a, &b), &m)| {
                                    f64::from(a).abs() * (f64::from(b).abs() + f64::from(m).abs())
                                })
                                .sum();
                            (1.0 - s, abs + 1.0)
                        }
                    };
                    let got = f64::from(sq.distance(&code));
                    let tol = 1e-5 * abs_terms + 1e-6;
                    assert!(
                        (got - want).abs() <= tol,
                        "seed={seed} {metric}/{}/{dim}: got {got}, want {want}, tol {tol}",
                        k.name
                    );
                }
            }
        }
    }
}

#[test]
fn set_query_reuses_and_matches_new() {
    let vs = random_vectors(20, 33, 9);
    let quant = train(&vs);
    let code = quant.encode_vec(&vs[3]);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let mut q = Sq8Query::new(&quant, metric, &vs[0]);
        q.set_query(&quant, &vs[1]);
        assert_eq!(
            q.distance(&code),
            Sq8Query::new(&quant, metric, &vs[1]).distance(&code),
            "{metric}"
        );
    }
}

#[test]
fn bytes_round_trip() {
    for dim in [1, 5, 768] {
        let q = train(&random_vectors(10, dim, dim as u64));
        let bytes = q.to_bytes();
        assert_eq!(bytes.len(), q.serialized_len());
        assert_eq!(&bytes[..4], b"QSQ8");
        assert_eq!(Sq8Quantizer::from_bytes(&bytes).unwrap(), q);
    }
}

#[test]
fn from_bytes_rejects_every_truncation() {
    let bytes = train(&random_vectors(10, 9, 1)).to_bytes();
    for len in 0..bytes.len() {
        let e = Sq8Quantizer::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(e, QuantError::Truncated { got, .. } if got == len),
            "len {len}: {e}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        Sq8Quantizer::from_bytes(&long),
        Err(QuantError::TrailingBytes {
            what: WHAT,
            extra: 1
        })
    );
}

#[test]
fn from_bytes_rejects_corruption() {
    let bytes = train(&random_vectors(10, 9, 2)).to_bytes();
    // Every single-bit flip outside the reserved field is detected.
    for i in (0..bytes.len()).filter(|i| !(6..8).contains(i)) {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            assert!(Sq8Quantizer::from_bytes(&b).is_err(), "byte {i} bit {bit}");
        }
    }
    let mut b = bytes.clone();
    b[4] = 2;
    assert!(matches!(
        Sq8Quantizer::from_bytes(&b),
        Err(QuantError::UnsupportedVersion { got: 2, .. })
    ));
    // A valid checksum over invalid content is still rejected.
    let mut b = bytes.clone();
    b[12 + 4 * 9..12 + 4 * 10].copy_from_slice(&0.0f32.to_le_bytes()); // scale[0] = 0
    let crc = crc32c::crc32c(&b[..b.len() - 4]);
    let n = b.len();
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        Sq8Quantizer::from_bytes(&b),
        Err(QuantError::BadScale { dim: 0, .. })
    ));
}

proptest! {
    /// Garbage never panics, and a header with a huge dim is an error, not an allocation.
    #[test]
    fn from_bytes_never_panics_on_garbage(mut b in proptest::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        if magic && b.len() >= 4 {
            b[..4].copy_from_slice(b"QSQ8");
        }
        let _ = Sq8Quantizer::from_bytes(&b);
    }
}
