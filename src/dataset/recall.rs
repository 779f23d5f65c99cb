//! Recall of approximate results against exact ground truth.

use super::Neighbors;

/// Mean recall@k of `results` (one id list per query, best first) against
/// `gt`: for each query, the fraction of its true top-`k` ids that appear in
/// its first `k` results. `k` is capped at `gt.k`; [`Neighbors::NONE`]
/// padding in the ground truth is not counted, and queries with no true
/// neighbours are skipped. Returns 0 when nothing is counted.
///
/// Panics when `results` has more queries than `gt`.
pub fn recall_at_k(results: &[Vec<u32>], gt: &Neighbors, k: usize) -> f64 {
    assert!(
        results.len() <= gt.len(),
        "recall_at_k: {} result lists but ground truth for {} queries",
        results.len(),
        gt.len()
    );
    let k = k.min(gt.k);
    let mut sum = 0.0;
    let mut counted = 0usize;
    let mut found: Vec<u32> = Vec::with_capacity(k);
    for (q, res) in results.iter().enumerate() {
        let truth: Vec<u32> = gt.row(q)[..k]
            .iter()
            .copied()
            .filter(|&id| id != Neighbors::NONE)
            .collect();
        if truth.is_empty() {
            continue;
        }
        found.clear();
        found.extend(res.iter().take(k).copied());
        found.sort_unstable();
        let hits = truth
            .iter()
            .filter(|id| found.binary_search(id).is_ok())
            .count();
        sum += hits as f64 / truth.len() as f64;
        counted += 1;
    }
    if counted == 0 {
        0.0
    } else {
        sum / counted as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(k: usize, data: Vec<u32>) -> Neighbors {
        Neighbors {
            k,
            data,
            distances: None,
        }
    }

    #[test]
    fn recall_counts_hits_in_the_first_k() {
        let truth = gt(3, vec![1, 2, 3, 4, 5, 6]);
        let results = vec![vec![3, 9, 1], vec![7, 8, 9, 4]];
        assert!((recall_at_k(&results, &truth, 3) - (2.0 / 3.0 + 0.0) / 2.0).abs() < 1e-12);
        assert!((recall_at_k(&results, &truth, 1) - 0.0).abs() < 1e-12);
        assert_eq!(recall_at_k(&results[..1], &truth, 2), 0.0);
        assert_eq!(recall_at_k(&[vec![1, 9, 2]], &truth, 2), 0.5);
    }

    #[test]
    fn recall_ignores_padding_and_duplicates() {
        let truth = gt(3, vec![1, Neighbors::NONE, Neighbors::NONE]);
        assert_eq!(recall_at_k(&[vec![1, 1, 1]], &truth, 3), 1.0);
        assert_eq!(recall_at_k(&[vec![]], &truth, 3), 0.0);
        let truth = gt(2, vec![5, 6]);
        assert_eq!(recall_at_k(&[vec![5, 5]], &truth, 2), 0.5);
        assert_eq!(recall_at_k(&[vec![6, 5]], &truth, 10), 1.0);
    }
}
