//! Every available kernel table against an f64 reference.
//!
//! Error bound. Each kernel computes `Σ tᵢ` where every term `tᵢ` is formed
//! with at most 3 roundings (a subtraction or `scale·code`, then a product),
//! and summed in independent f32 accumulators whose longest dependent chain is
//! at most `⌈d/4⌉ + 4` additions (scalar: 4 accumulators, SIMD: ≥ 32 lanes),
//! followed by a reduction of ≤ 4 more levels. Standard summation analysis
//! (Higham, §4.2) gives
//!
//! `|got − ref| ≤ γ_m · Σ|tᵢ|`, with `γ_m ≈ m·u`, `u = 2⁻²⁴`, `m = ⌈d/4⌉ + 12`,
//!
//! which we assert (plus `1e-30` so that an all-zero input compares exactly).
//! The bound is rigorous, hence loose at large `d`; a dropped or duplicated
//! element is caught regardless by `*_exact_on_integers`, where all terms
//! and partial sums are small integers and every kernel must be exact.

use half::f16;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{available_kernels, scalar_kernels, select, Kernels};

/// Dimensions that hit every loop boundary of every kernel (16/32/64-element
/// blocks ± 1) plus common embedding sizes.
const DIMS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 768, 1536,
];

fn bound(d: usize, abs_terms: f64) -> f64 {
    let m = d.div_ceil(4) as f64 + 12.0;
    m * f64::from(f32::EPSILON) / 2.0 * abs_terms + 1e-30
}

fn check(what: &str, k: &Kernels, d: usize, got: f32, reference: f64, abs_terms: f64) {
    let tol = bound(d, abs_terms);
    let err = (f64::from(got) - reference).abs();
    assert!(
        err <= tol,
        "{what}/{}/{d}: got {got}, reference {reference}, error {err:e} > bound {tol:e}",
        k.name
    );
}

fn ref_l2(a: &[f32], b: impl Fn(usize) -> f64) -> (f64, f64) {
    let s: f64 = a
        .iter()
        .enumerate()
        .map(|(i, &x)| (f64::from(x) - b(i)).powi(2))
        .sum();
    (s, s)
}

fn ref_dot(a: &[f32], b: impl Fn(usize) -> f64) -> (f64, f64) {
    let terms = a.iter().enumerate().map(|(i, &x)| f64::from(x) * b(i));
    terms.fold((0.0, 0.0), |(s, abs), t| (s + t, abs + t.abs()))
}

struct Case {
    a: Vec<f32>,
    b: Vec<f32>,
    h: Vec<f16>,
    scale: Vec<f32>,
    code: Vec<u8>,
}

impl Case {
    fn random(d: usize, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut v = |lo: f32, hi: f32| (0..d).map(|_| rng.gen_range(lo..hi)).collect::<Vec<f32>>();
        let a = v(-2.0, 2.0);
        let b = v(-2.0, 2.0);
        let scale = v(0.0, 0.02);
        let h = v(-2.0, 2.0).into_iter().map(f16::from_f32).collect();
        let code = (0..d)
            .map(|i| (i as u64).wrapping_mul(seed | 1).wrapping_add(seed >> 7) as u8)
            .collect();
        Self {
            a,
            b,
            h,
            scale,
            code,
        }
    }
}

/// Runs every kernel of every available table on one case.
fn check_all(c: &Case) {
    let d = c.a.len();
    for k in available_kernels() {
        let (r, abs) = ref_l2(&c.a, |i| f64::from(c.b[i]));
        check("l2_f32", &k, d, (k.l2_f32)(&c.a, &c.b), r, abs);
        let (r, abs) = ref_dot(&c.a, |i| f64::from(c.b[i]));
        check("dot_f32", &k, d, (k.dot_f32)(&c.a, &c.b), r, abs);
        let (r, abs) = ref_l2(&c.a, |i| f64::from(c.h[i].to_f32()));
        check("l2_f16", &k, d, (k.l2_f16)(&c.a, &c.h), r, abs);
        let (r, abs) = ref_dot(&c.a, |i| f64::from(c.h[i].to_f32()));
        check("dot_f16", &k, d, (k.dot_f16)(&c.a, &c.h), r, abs);
        let (r, abs) = ref_l2(&c.a, |i| f64::from(c.scale[i]) * f64::from(c.code[i]));
        check("l2_sq8", &k, d, (k.l2_sq8)(&c.a, &c.scale, &c.code), r, abs);
        let (r, abs) = ref_dot(&c.a, |i| f64::from(c.code[i]));
        check("dot_u8", &k, d, (k.dot_u8)(&c.a, &c.code), r, abs);
    }
}

#[test]
fn kernels_match_reference_on_boundary_dims() {
    for (seed, &d) in DIMS.iter().enumerate() {
        check_all(&Case::random(d, seed as u64));
    }
}

#[test]
fn kernels_match_reference_at_max_dim() {
    check_all(&Case::random(65535, 65535));
}

/// Small-integer inputs: every product and partial sum is an integer below
/// 2²⁴, so every kernel must return exactly the reference, at any length.
#[test]
fn kernels_exact_on_integers() {
    for &d in DIMS.iter().chain(&[1000, 4099, 65535]) {
        let a: Vec<f32> = (0..d).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..d).map(|i| (i % 5) as f32 - 2.0).collect();
        let h: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
        let q: Vec<f32> = (0..d).map(|i| (i % 9) as f32).collect();
        let ones = vec![1.0f32; d];
        let code: Vec<u8> = (0..d).map(|i| (i % 8) as u8).collect();
        let l2 = ref_l2(&a, |i| f64::from(b[i])).0 as f32;
        let dot = ref_dot(&a, |i| f64::from(b[i])).0 as f32;
        let sq8 = ref_l2(&q, |i| f64::from(code[i])).0 as f32;
        let u8dot = ref_dot(&a, |i| f64::from(code[i])).0 as f32;
        for k in available_kernels() {
            let n = k.name;
            assert_eq!((k.l2_f32)(&a, &b), l2, "l2_f32/{n}/{d}");
            assert_eq!((k.dot_f32)(&a, &b), dot, "dot_f32/{n}/{d}");
            assert_eq!((k.l2_f16)(&a, &h), l2, "l2_f16/{n}/{d}");
            assert_eq!((k.dot_f16)(&a, &h), dot, "dot_f16/{n}/{d}");
            assert_eq!((k.l2_sq8)(&q, &ones, &code), sq8, "l2_sq8/{n}/{d}");
            assert_eq!((k.dot_u8)(&a, &code), u8dot, "dot_u8/{n}/{d}");
        }
    }
}

/// Each kernel reads only its own slices: a slice cut out of a larger buffer
/// (so the bytes after it are non-zero garbage) gives the same result.
#[test]
fn kernels_ignore_bytes_past_the_end() {
    let c = Case::random(200, 3);
    for d in [1, 7, 15, 17, 63, 65, 100] {
        for k in available_kernels() {
            let exact = Case {
                a: c.a[..d].to_vec(),
                b: c.b[..d].to_vec(),
                h: c.h[..d].to_vec(),
                scale: c.scale[..d].to_vec(),
                code: c.code[..d].to_vec(),
            };
            let n = k.name;
            assert_eq!(
                (k.l2_f32)(&c.a[..d], &c.b[..d]),
                (k.l2_f32)(&exact.a, &exact.b),
                "l2_f32/{n}/{d}"
            );
            assert_eq!(
                (k.dot_f16)(&c.a[..d], &c.h[..d]),
                (k.dot_f16)(&exact.a, &exact.h),
                "dot_f16/{n}/{d}"
            );
            assert_eq!(
                (k.l2_sq8)(&c.a[..d], &c.scale[..d], &c.code[..d]),
                (k.l2_sq8)(&exact.a, &exact.scale, &exact.code),
                "l2_sq8/{n}/{d}"
            );
            assert_eq!(
                (k.dot_u8)(&c.a[..d], &c.code[..d]),
                (k.dot_u8)(&exact.a, &exact.code),
                "dot_u8/{n}/{d}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "length mismatch")]
fn every_table_rejects_length_mismatch() {
    // The best table; scalar is checked by the same assert.
    let k = available_kernels()[0];
    (k.l2_f32)(&[1.0, 2.0], &[1.0]);
}

#[test]
fn available_kernels_best_first_scalar_last() {
    let all = available_kernels();
    assert_eq!(all.last().map(|k| k.name), Some("scalar"));
    #[cfg(target_arch = "x86_64")]
    {
        let names: Vec<_> = all.iter().map(|k| k.name).collect();
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
        {
            assert_eq!(names[0], "avx512");
        }
        if let (Some(a), Some(b)) = (
            names.iter().position(|&n| n == "avx512"),
            names.iter().position(|&n| n == "avx2"),
        ) {
            assert!(a < b, "{names:?}");
        }
    }
}

#[test]
fn env_override_selects_named_table_or_falls_back() {
    let all = available_kernels();
    assert_eq!(select(&all, None).name, all[0].name);
    assert_eq!(select(&all, Some("")).name, all[0].name);
    assert_eq!(select(&all, Some("auto")).name, all[0].name);
    assert_eq!(select(&all, Some(" SCALAR ")).name, "scalar");
    assert_eq!(select(&all, Some("no-such-isa")).name, all[0].name);
    for k in &all {
        assert_eq!(select(&all, Some(k.name)).name, k.name);
    }
    assert_eq!(select(&[scalar_kernels()], Some("avx512")).name, "scalar");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kernels_match_reference_random_dims(d in 0usize..3000, seed in any::<u64>()) {
        check_all(&Case::random(d, seed));
    }
}

/// Every table's `dot_u8i8` against the scalar one: integer sums, so equal.
fn check_u8i8(w: &[i8], code: &[u8]) {
    let want = super::scalar::dot_u8i8(w, code);
    for k in available_kernels() {
        assert_eq!(
            (k.dot_u8i8)(w, code),
            want,
            "dot_u8i8/{}/{}",
            k.name,
            w.len()
        );
    }
}

#[test]
fn dot_u8i8_extremes_every_dim() {
    // Largest magnitudes of both signs (the sums a saturating kernel would
    // get wrong), at every loop boundary.
    for &d in DIMS.iter().chain(&[383, 384, 385, 65_535]) {
        check_u8i8(&vec![127; d], &vec![255; d]);
        check_u8i8(&vec![-127; d], &vec![255; d]);
        let w: Vec<i8> = (0..d)
            .map(|i| if i % 2 == 0 { 127 } else { -128 })
            .collect();
        check_u8i8(&w, &vec![255; d]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dot_u8i8_matches_scalar(d in 0usize..3000, seed in any::<u64>()) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let w: Vec<i8> = (0..d).map(|_| rng.gen()).collect();
        let code: Vec<u8> = (0..d).map(|_| rng.gen()).collect();
        check_u8i8(&w, &code);
    }
}
