//! Exact (brute-force) k-nearest-neighbour ground truth.
//!
//! Queries are processed in parallel (rayon) in small blocks: each block makes
//! one pass over the base vectors, so the base is streamed from memory once
//! per block rather than once per query. Every query keeps a bounded max-heap
//! of its `k` best candidates, so memory is `O(queries · k)`, never
//! `O(queries · base)`. Ties in distance are broken by the smaller id, which
//! makes the result deterministic.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::error::{DatasetError, Result};
use super::{Neighbors, VectorSet};
use crate::distance::Metric;

/// Queries that share one pass over the base vectors.
const QUERY_BLOCK: usize = 8;

/// The exact `k` nearest base vectors of every query under `metric`, nearest
/// first, with their distances (`metric`'s "lower is closer" convention).
///
/// For [`Metric::Cosine`] normalised copies of both sets are compared. `k` is
/// capped at `base.len()`. Errors when the dimensions differ or the base has
/// more vectors than a `u32` id can name.
pub fn ground_truth(
    base: &VectorSet,
    queries: &VectorSet,
    k: usize,
    metric: Metric,
) -> Result<Neighbors> {
    ground_truth_with_progress(base, queries, k, metric, None)
}

/// [`ground_truth`], advancing `progress` by one per finished query.
pub fn ground_truth_with_progress(
    base: &VectorSet,
    queries: &VectorSet,
    k: usize,
    metric: Metric,
    progress: Option<&ProgressBar>,
) -> Result<Neighbors> {
    if !queries.is_empty() && !base.is_empty() && queries.dim != base.dim {
        return Err(DatasetError::InputMismatch {
            what: "queries vs base vectors",
            got: queries.dim,
            expected: base.dim,
        });
    }
    if base.len() >= Neighbors::NONE as usize {
        return Err(DatasetError::TooManyVectors { count: base.len() });
    }
    let k = k.min(base.len());
    let nq = queries.len();
    if k == 0 || nq == 0 {
        return Ok(Neighbors {
            k,
            data: Vec::new(),
            distances: Some(Vec::new()),
        });
    }
    let (base, queries): (Cow<VectorSet>, Cow<VectorSet>) = if metric.normalizes() {
        (
            Cow::Owned(base.normalized()),
            Cow::Owned(queries.normalized()),
        )
    } else {
        (Cow::Borrowed(base), Cow::Borrowed(queries))
    };
    let kernel = metric.kernel();

    let mut ids = vec![0u32; nq * k];
    let mut dists = vec![0f32; nq * k];
    ids.par_chunks_mut(k * QUERY_BLOCK)
        .zip(dists.par_chunks_mut(k * QUERY_BLOCK))
        .enumerate()
        .for_each_init(
            || vec![BinaryHeap::<Candidate>::with_capacity(k + 1); QUERY_BLOCK],
            |heaps, (block, (ids_out, dists_out))| {
                let first = block * QUERY_BLOCK;
                let qs: Vec<&[f32]> = (first..first + ids_out.len() / k)
                    .map(|q| queries.row(q))
                    .collect();
                for (id, v) in base.rows().enumerate() {
                    for (q, heap) in qs.iter().zip(heaps.iter_mut()) {
                        let c = Candidate {
                            dist: kernel.distance(q, v),
                            id: id as u32,
                        };
                        if heap.len() < k {
                            heap.push(c);
                        } else if let Some(mut top) = heap.peek_mut() {
                            if c < *top {
                                *top = c;
                            }
                        }
                    }
                }
                for (i, heap) in heaps.iter_mut().take(qs.len()).enumerate() {
                    let sorted = std::mem::take(heap).into_sorted_vec();
                    for (j, c) in sorted.iter().enumerate() {
                        ids_out[i * k + j] = c.id;
                        dists_out[i * k + j] = c.dist;
                    }
                    let mut reuse = sorted;
                    reuse.clear();
                    *heap = BinaryHeap::from(reuse);
                }
                if let Some(p) = progress {
                    p.inc(qs.len() as u64);
                }
            },
        );
    Ok(Neighbors {
        k,
        data: ids,
        distances: Some(dists),
    })
}

/// A base vector and its distance to the query; ordered by distance, then id.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    dist: f32,
    id: u32,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(dim: usize, data: &[f32]) -> VectorSet {
        VectorSet::new(dim, data.to_vec()).unwrap()
    }

    /// Sorting every distance is the obvious reference implementation.
    fn naive(base: &VectorSet, queries: &VectorSet, k: usize, metric: Metric) -> Vec<u32> {
        let (base, queries) = if metric.normalizes() {
            (base.normalized(), queries.normalized())
        } else {
            (base.clone(), queries.clone())
        };
        let kernel = metric.kernel();
        let mut out = Vec::new();
        for q in queries.rows() {
            let mut all: Vec<Candidate> = base
                .rows()
                .enumerate()
                .map(|(id, v)| Candidate {
                    dist: kernel.distance(q, v),
                    id: id as u32,
                })
                .collect();
            all.sort();
            out.extend(all.iter().take(k).map(|c| c.id));
        }
        out
    }

    #[test]
    fn ties_are_broken_by_smaller_id() {
        // Ids 1 and 3 are both at distance 1 from the query; 0 and 2 further.
        let base = set(1, &[3.0, 1.0, -2.0, 1.0]);
        let queries = set(1, &[0.0]);
        let gt = ground_truth(&base, &queries, 3, Metric::L2).unwrap();
        assert_eq!(gt.row(0), &[1, 3, 2]);
        assert_eq!(gt.distance_row(0).unwrap(), &[1.0, 1.0, 4.0]);
    }

    #[test]
    fn k_is_capped_at_base_size_and_dims_must_match() {
        let base = set(2, &[0.0, 1.0, 1.0, 0.0]);
        let gt = ground_truth(&base, &set(2, &[1.0, 0.0]), 10, Metric::InnerProduct).unwrap();
        assert_eq!((gt.k, gt.row(0)), (2, &[1u32, 0][..]));
        let err = ground_truth(&base, &set(3, &[1.0, 0.0, 0.0]), 1, Metric::L2).unwrap_err();
        assert!(err.to_string().contains("dimension 3, expected 2"), "{err}");
    }

    #[test]
    fn matches_naive_sort_for_every_metric() {
        let seed = 7;
        let mut base = super::super::synthetic::clustered(700, 12, seed);
        let queries = base.split_off(650);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let gt = ground_truth(&base, &queries, 10, metric).unwrap();
            assert_eq!(gt.len(), 50);
            assert_eq!(
                gt.data,
                naive(&base, &queries, 10, metric),
                "seed={seed} metric={metric}"
            );
        }
    }
}
