//! Head selection by hierarchical balanced k-means (SPANN §3.2, SPTAG's BKT):
//! split the data recursively into at most `branching` clusters with an
//! assignment cost that penalises big clusters, until every leaf holds about
//! `1 / head_ratio` vectors; the member nearest each leaf's mean becomes a head.
//! Also the balanced 2-means used to split a posting.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::distance::{self, DistanceKernel, Metric};

/// Iterations of each k-means.
const ITERS: usize = 8;
/// Points used to train the centres of one node (all points are assigned).
const TRAIN_SAMPLE: usize = 16_384;

/// Row `i` of a row-major matrix.
#[inline]
fn row(data: &[f32], dim: usize, i: u32) -> &[f32] {
    &data[i as usize * dim..(i as usize + 1) * dim]
}

/// Balanced k-means of the rows `ids` into `k` clusters; returns each row's
/// cluster and the centres (`k * dim`, normalised for cosine). Runs on the
/// current rayon pool.
pub fn balanced_kmeans(
    data: &[f32],
    dim: usize,
    ids: &[u32],
    k: usize,
    metric: Metric,
    balance: f32,
    seed: u64,
) -> (Vec<u32>, Vec<f32>) {
    kmeans(data, dim, ids, k, metric, balance, seed, true)
}

/// [`balanced_kmeans`] on the calling thread only: for posting splits,
/// which run while holding posting locks and must not wait on rayon.
pub(crate) fn balanced_kmeans_sequential(
    data: &[f32],
    dim: usize,
    ids: &[u32],
    k: usize,
    metric: Metric,
    balance: f32,
    seed: u64,
) -> (Vec<u32>, Vec<f32>) {
    kmeans(data, dim, ids, k, metric, balance, seed, false)
}

#[allow(clippy::too_many_arguments)]
fn kmeans(
    data: &[f32],
    dim: usize,
    ids: &[u32],
    k: usize,
    metric: Metric,
    balance: f32,
    seed: u64,
    parallel: bool,
) -> (Vec<u32>, Vec<f32>) {
    let dist = metric.kernel();
    let k = k.clamp(1, ids.len().max(1));
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut sample: Vec<u32> = ids.to_vec();
    sample.shuffle(&mut rng);
    let mut centres: Vec<f32> = sample[..k]
        .iter()
        .flat_map(|&i| row(data, dim, i).iter().copied())
        .collect();
    sample.truncate(TRAIN_SAMPLE.max(k));
    let mut counts = vec![0usize; k];
    // Per-centre penalties, raised for crowded centres and lowered for empty
    // ones a little each pass (damped, so sizes converge instead of swinging).
    let mut penalty = vec![0f32; k];
    let mut mean_d = 0.0f32;
    for it in 0..=ITERS {
        // Assign: the last pass covers every id, earlier passes the sample.
        let pts: &[u32] = if it == ITERS { ids } else { &sample };
        if it > 0 {
            let total = counts.iter().sum::<usize>().max(1) as f32;
            for (p, &c) in penalty.iter_mut().zip(&counts) {
                *p += 0.25 * balance * mean_d * (c as f32 * k as f32 / total - 1.0);
            }
        }
        let near = |&i: &u32| nearest_penalised(row(data, dim, i), &centres, dim, &penalty, &dist);
        let assign: Vec<(u32, f32)> = if parallel {
            pts.par_iter().map(near).collect()
        } else {
            pts.iter().map(near).collect()
        };
        mean_d = assign.iter().map(|a| a.1).sum::<f32>() / assign.len().max(1) as f32;
        counts = vec![0; k];
        let mut sums = vec![0f64; k * dim];
        for (&i, &(c, _)) in pts.iter().zip(&assign) {
            counts[c as usize] += 1;
            let s = &mut sums[c as usize * dim..(c as usize + 1) * dim];
            for (a, &x) in s.iter_mut().zip(row(data, dim, i)) {
                *a += f64::from(x);
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                continue; // keep the old centre
            }
            let out = &mut centres[c * dim..(c + 1) * dim];
            for (o, &s) in out.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *o = (s / counts[c] as f64) as f32;
            }
            if metric.normalizes() {
                distance::normalize(out);
            }
        }
        if it == ITERS {
            return (assign.into_iter().map(|a| a.0).collect(), centres);
        }
    }
    unreachable!("the last iteration returns")
}

/// The centre minimising `d(v, c) + penalty[c]`, with the plain distance.
fn nearest_penalised(
    v: &[f32],
    centres: &[f32],
    dim: usize,
    penalty: &[f32],
    dist: &DistanceKernel,
) -> (u32, f32) {
    let mut best = (0u32, f32::INFINITY, f32::INFINITY);
    for (c, centre) in centres.chunks_exact(dim).enumerate() {
        let d = dist.distance(v, centre);
        let cost = d + penalty[c];
        if cost < best.2 {
            best = (c as u32, d, cost);
        }
    }
    (best.0, best.1)
}

/// Chooses about `n * head_ratio` heads among the rows of `data` by
/// hierarchical balanced k-means; returns their row ids, sorted.
pub fn select_heads(
    data: &[f32],
    dim: usize,
    metric: Metric,
    head_ratio: f64,
    branching: usize,
    balance: f32,
    seed: u64,
) -> Vec<u32> {
    let n = data.len() / dim;
    if n == 0 {
        return Vec::new();
    }
    let leaf = ((1.0 / head_ratio).round() as usize).max(1);
    let all: Vec<u32> = (0..n as u32).collect();
    let mut heads = split(data, dim, metric, all, leaf, branching, balance, seed);
    heads.sort_unstable();
    heads
}

#[allow(clippy::too_many_arguments)]
fn split(
    data: &[f32],
    dim: usize,
    metric: Metric,
    ids: Vec<u32>,
    leaf: usize,
    branching: usize,
    balance: f32,
    seed: u64,
) -> Vec<u32> {
    if ids.len() <= leaf + leaf / 2 {
        return vec![medoid(data, dim, metric, &ids)];
    }
    let k = ids.len().div_ceil(leaf).clamp(2, branching);
    let (assign, _) = balanced_kmeans(data, dim, &ids, k, metric, balance, seed);
    let mut parts: Vec<Vec<u32>> = vec![Vec::new(); k];
    for (&i, &c) in ids.iter().zip(&assign) {
        parts[c as usize].push(i);
    }
    parts.retain(|p| !p.is_empty());
    if parts.len() == 1 {
        // Degenerate data (duplicates): halve arbitrarily so recursion ends.
        let mut p = parts.pop().unwrap_or_default();
        let b = p.split_off(p.len() / 2);
        parts = vec![p, b];
    }
    parts
        .into_par_iter()
        .enumerate()
        .flat_map_iter(|(j, p)| {
            let s = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(j as u64 + 1);
            split(data, dim, metric, p, leaf, branching, balance, s)
        })
        .collect()
}

/// The member nearest to the mean of `ids`.
fn medoid(data: &[f32], dim: usize, metric: Metric, ids: &[u32]) -> u32 {
    let mut mean = vec![0f32; dim];
    for &i in ids {
        for (m, &x) in mean.iter_mut().zip(row(data, dim, i)) {
            *m += x;
        }
    }
    if metric.normalizes() {
        distance::normalize(&mut mean);
    } else {
        mean.iter_mut().for_each(|m| *m /= ids.len() as f32);
    }
    let dist = metric.kernel();
    *ids.iter()
        .min_by(|&&a, &&b| {
            dist.distance(row(data, dim, a), &mean)
                .total_cmp(&dist.distance(row(data, dim, b), &mean))
        })
        .expect("a leaf is never empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_about_the_ratio_and_clusters_balanced() {
        let v = crate::dataset::synthetic::clustered(4000, 16, 7);
        let heads = select_heads(&v.data, 16, Metric::L2, 0.05, 8, 1.0, 1);
        let want = 200.0;
        assert!(
            (heads.len() as f64) > want * 0.6 && (heads.len() as f64) < want * 1.6,
            "heads={}",
            heads.len()
        );
        assert!(heads.windows(2).all(|w| w[0] < w[1]));
        // Without natural clusters the penalty evens the sizes out.
        use rand::Rng;
        let mut rng = SmallRng::seed_from_u64(5);
        let u: Vec<f32> = (0..4000 * 8).map(|_| rng.gen::<f32>()).collect();
        let ids: Vec<u32> = (0..4000).collect();
        let (assign, _) = balanced_kmeans(&u, 8, &ids, 8, Metric::L2, 1.0, 3);
        let mut counts = [0usize; 8];
        assign.iter().for_each(|&c| counts[c as usize] += 1);
        assert!(
            counts.iter().all(|&c| c > 250 && c < 800),
            "counts={counts:?}"
        );
    }
}
