//! Seeded synthetic data for benchmarks: gaussian clusters of unequal size
//! and spread, which behave like real embeddings for ANN indexes far better
//! than uniform noise (graph search on uniform data is unrealistically hard,
//! on well-separated blobs unrealistically easy).
//!
//! Generation is parallel and deterministic: vectors are produced in fixed
//! blocks, each from its own generator seeded from `seed` and the block
//! number, so the output does not depend on the thread count.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::VectorSet;

/// Vectors generated from one block generator.
const BLOCK: usize = 1024;

/// `n` vectors of dimension `dim` drawn from about `sqrt(n)` gaussian
/// clusters. Centres are standard normal; each cluster has its own spread
/// (σ between 0.15 and 0.6) and weight (cluster sizes vary about tenfold), so
/// neighbourhoods have uneven density as in real data. The same `(n, dim,
/// seed)` always gives the same vectors; hold out queries with
/// [`VectorSet::split_off`] on a set generated with `n + queries` rows.
pub fn clustered(n: usize, dim: usize, seed: u64) -> VectorSet {
    if n == 0 || dim == 0 {
        return VectorSet {
            dim,
            data: Vec::new(),
        };
    }
    let clusters = ((n as f64).sqrt().round() as usize).max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| gaussian(&mut rng)).collect();
    let sigmas: Vec<f32> = (0..clusters).map(|_| rng.gen_range(0.15..0.6)).collect();
    // Cumulative weights in [1, 10) for picking a cluster per vector.
    let mut cumulative = Vec::with_capacity(clusters);
    let mut total = 0.0f64;
    for _ in 0..clusters {
        total += 10f64.powf(rng.gen::<f64>());
        cumulative.push(total);
    }

    let mut data = vec![0f32; n * dim];
    data.par_chunks_mut(BLOCK * dim)
        .enumerate()
        .for_each(|(block, out)| {
            let block_seed = seed ^ (block as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut rng = StdRng::seed_from_u64(block_seed);
            for v in out.chunks_exact_mut(dim) {
                let pick = rng.gen::<f64>() * total;
                let c = cumulative.partition_point(|&w| w <= pick).min(clusters - 1);
                let centre = &centres[c * dim..(c + 1) * dim];
                for (x, &m) in v.iter_mut().zip(centre) {
                    *x = m + sigmas[c] * gaussian(&mut rng);
                }
            }
        });
    VectorSet { dim, data }
}

/// One standard-normal sample (Box–Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clustered_is_deterministic_and_sized() {
        let a = clustered(3000, 16, 42);
        assert_eq!((a.len(), a.dim), (3000, 16));
        assert_eq!(a, clustered(3000, 16, 42));
        assert_ne!(a, clustered(3000, 16, 43));
        assert!(a.data.iter().all(|x| x.is_finite()));
        assert!(clustered(0, 8, 1).is_empty());
    }

    #[test]
    fn clustered_points_sit_near_a_centre() {
        // The nearest other point is much closer than a typical point: clusters exist.
        let s = clustered(2000, 32, 5);
        let l2 =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        let (mut nearest, mut typical) = (0.0, 0.0);
        for i in 0..50 {
            let q = s.row(i);
            let d: Vec<f32> = (0..s.len())
                .filter(|&j| j != i)
                .map(|j| l2(q, s.row(j)))
                .collect();
            nearest += d.iter().cloned().fold(f32::MAX, f32::min);
            typical += d.iter().sum::<f32>() / d.len() as f32;
        }
        assert!(
            nearest * 4.0 < typical,
            "seed=5 nearest={nearest} typical={typical}"
        );
    }
}
