//! [`Sq8IntQuery`] against the exact distance to the decoded vector
//! ([`Sq8Query`]), within the bound of rounding the query to int8.

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::super::{Sq8Quantizer, Sq8Query};
use super::Sq8IntQuery;
use crate::distance::{available_kernels, Metric};

/// The SQ8 tests' vectors; with `constant_dim`, dimension 0 is 5.0 in all.
fn data(n: usize, dim: usize, seed: u64, constant_dim: bool) -> Vec<Vec<f32>> {
    let mut vs = super::super::tests::random_vectors(n, dim, seed);
    if constant_dim {
        vs.iter_mut().for_each(|v| v[0] = 5.0);
    }
    vs
}

/// `|int − exact| ≤ k1/2·α-rounding·Σ|cᵢ − 128| + f32 slack`.
fn check(quant: &Sq8Quantizer, metric: Metric, query: &[f32], codes: &[Vec<u8>]) {
    let exact = Sq8Query::new(quant, metric, query);
    let mut first: Option<Vec<f32>> = None;
    for k in available_kernels() {
        let q = Sq8IntQuery::with_kernels(quant, metric, query, &k);
        assert_eq!(q.metric(), metric);
        assert_eq!(q.needs_norm(), metric == Metric::L2);
        let mut got_all = Vec::new();
        for code in codes {
            let norm = quant.centered_sq_norm(code);
            let got = q.distance(code, norm);
            let want = exact.distance(code);
            let spread: f32 = code.iter().map(|&c| (f32::from(c) - 128.0).abs()).sum();
            let tol = q.k1 * 0.5 * spread * 1.001
                + 1e-5
                    * (q.k0.abs() + norm + want.abs() + q.k1 * 255.0 * 127.0 * code.len() as f32)
                + 1e-5;
            assert!(
                (got - want).abs() <= tol,
                "{metric}/{}/{}: got {got}, want {want}, tol {tol}",
                k.name,
                code.len()
            );
            got_all.push(got);
        }
        // Integer kernels: every table gives the same distances.
        match &first {
            None => first = Some(got_all),
            Some(f) => assert_eq!(f, &got_all, "{}", k.name),
        }
    }
}

fn run(dim: usize, seed: u64, constant_dim: bool) {
    let vs = data(30, dim, seed, constant_dim);
    let quant = Sq8Quantizer::train(vs.iter().map(Vec::as_slice)).unwrap();
    let codes: Vec<Vec<u8>> = vs.iter().map(|v| quant.encode_vec(v)).collect();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let query: Vec<f32> = (0..dim).map(|_| rng.gen_range(-3.0..3.0)).collect();
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        check(&quant, metric, &query, &codes);
    }
}

#[test]
fn close_to_exact_at_loop_boundaries() {
    for (seed, dim) in [1usize, 2, 15, 31, 63, 64, 65, 127, 128, 129, 384, 785, 1536]
        .into_iter()
        .enumerate()
    {
        run(dim, seed as u64, false);
    }
}

/// A constant training dimension gets scale 1 and a weight far above the
/// others: it is handled exactly, outside the int8 weights.
#[test]
fn constant_dimension_is_an_outlier() {
    let dim = 64;
    let vs = data(30, dim, 9, true);
    let quant = Sq8Quantizer::train(vs.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(quant.scale()[0], 1.0);
    let q = Sq8IntQuery::new(&quant, Metric::L2, &vs[1]);
    assert_eq!(q.outliers.len(), 1);
    assert_eq!(q.outliers[0].0, 0);
    assert_eq!(q.w8[0], 0);
    run(dim, 9, true);
}

#[test]
fn zero_query_and_reuse() {
    let vs = data(10, 33, 3, false);
    let quant = Sq8Quantizer::train(vs.iter().map(Vec::as_slice)).unwrap();
    let code = quant.encode_vec(&vs[2]);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let zero = vec![0.0; 33];
        let d =
            Sq8IntQuery::new(&quant, metric, &zero).distance(&code, quant.centered_sq_norm(&code));
        assert!(d.is_finite());
        // set_query on a used value equals a fresh one.
        let mut q = Sq8IntQuery::new(&quant, metric, &vs[0]);
        q.set_query(&quant, &vs[1]);
        let fresh = Sq8IntQuery::new(&quant, metric, &vs[1]);
        let n = quant.centered_sq_norm(&code);
        assert_eq!(q.distance(&code, n), fresh.distance(&code, n));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn close_to_exact_random(dim in 1usize..700, seed in any::<u64>()) {
        run(dim, seed, seed % 3 == 0);
    }
}
