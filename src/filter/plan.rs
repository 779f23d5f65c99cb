//! The plan of a filtered search in one tier, chosen per query from the
//! exact matching count the indexes give, and the explain a query returns
//! on request.
//!
//! - **Exact scan**: the distance to every matching point (SIMD kernels,
//!   from memory; for the SSD tier, their full vectors read in one round).
//!   The answer is exact. Its cost is linear in the matching count.
//! - **Filtered graph**: HNSW beam search routing through every node and
//!   admitting only matching ones, with a two-hop expansion where the
//!   neighbourhood is mostly filtered out (`hnsw::filtered`). Its cost
//!   falls as selectivity rises.
//! - **Filtered postings** (SSD tier): the nearest postings scanned with
//!   the filter; when fewer than `k` matching candidates come back, more
//!   postings are read, doubling `nprobe` up to [`MAX_POSTING_WIDENINGS`]
//!   times.
//!
//! The crossover, measured in `docs/BENCHMARKS.md` ("Filtered search"): an
//! exact scan costs about one distance per matching point (`m`); a filtered
//! traversal about `c · ef / s` distances at selectivity `s = m / n` (it
//! walks until `ef` matching nodes are in its beam), so the scan wins while
//! `m² ≤ c · ef · n`, with `c` = [`GRAPH_COST_PER_EF`]. On 50k MiniLM
//! vectors at `ef` 64 that is up to 25 % selectivity. The SSD tier scans
//! exactly up to [`SSD_EXACT_SCAN_PER_NPROBE`] × `nprobe` matching points.

use serde::Serialize;

/// Distances a filtered traversal costs per unit of `ef / selectivity`
/// (measured: 50k MiniLM vectors, M 16; BENCHMARKS.md "Filtered search").
pub const GRAPH_COST_PER_EF: u64 = 50;

/// The SSD tier reads and scores its matching points' full vectors when
/// there are at most this many per posting it would otherwise read.
pub const SSD_EXACT_SCAN_PER_NPROBE: u64 = 16;

/// Times the SSD tier doubles `nprobe` when too few matching candidates
/// came back.
pub const MAX_POSTING_WIDENINGS: usize = 4;

/// How a tier answered a filtered search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Distances to every matching point: exact.
    ExactScan,
    /// HNSW traversal admitting only matching points.
    FilteredGraph,
    /// SSD postings scanned with the filter.
    FilteredPostings,
    /// Nothing matches here: the tier was not searched.
    Empty,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::ExactScan => "exact_scan",
            PlanKind::FilteredGraph => "filtered_graph",
            PlanKind::FilteredPostings => "filtered_postings",
            PlanKind::Empty => "empty",
        }
    }
}

/// Which plan a search may use: the planner's choice, or one forced (for
/// tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlanChoice {
    #[default]
    Auto,
    Exact,
    Approximate,
}

/// The plan of a memory segment of `points` slots, `matching` of them matching.
pub fn memory_plan(matching: u64, points: u64, ef: usize, choice: PlanChoice) -> PlanKind {
    let scan_wins = (matching as u128).pow(2)
        <= u128::from(GRAPH_COST_PER_EF) * ef as u128 * u128::from(points);
    match choice {
        _ if matching == 0 => PlanKind::Empty,
        PlanChoice::Exact => PlanKind::ExactScan,
        PlanChoice::Approximate => PlanKind::FilteredGraph,
        PlanChoice::Auto if scan_wins => PlanKind::ExactScan,
        PlanChoice::Auto => PlanKind::FilteredGraph,
    }
}

/// The plan of the SSD tier holding `matching` matching slots.
pub fn ssd_plan(matching: u64, nprobe: usize, choice: PlanChoice) -> PlanKind {
    match choice {
        _ if matching == 0 => PlanKind::Empty,
        PlanChoice::Exact => PlanKind::ExactScan,
        PlanChoice::Approximate => PlanKind::FilteredPostings,
        PlanChoice::Auto if matching <= SSD_EXACT_SCAN_PER_NPROBE * nprobe as u64 => {
            PlanKind::ExactScan
        }
        PlanChoice::Auto => PlanKind::FilteredPostings,
    }
}

/// What one tier did for a filtered search.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TierExplain {
    /// `segment N` (memory) or `ssd`.
    pub tier: String,
    /// Slots of the tier (replaced and deleted copies included).
    pub points: u64,
    /// Slots the filter matched (the planner's estimate: replaced and
    /// deleted copies included).
    pub matching: u64,
    pub plan: Option<PlanKind>,
    /// Leaf conditions answered from a payload index.
    pub indexed_conditions: u64,
    /// Payloads evaluated one by one (conditions on unindexed fields).
    pub payloads_scanned: u64,
    /// Distances computed.
    pub distances: u64,
    /// Graph nodes expanded, or points scanned.
    pub visited: u64,
    /// Matching nodes reached through a filtered-out neighbour.
    pub two_hop: u64,
    /// SSD postings read.
    pub postings: u64,
    /// Times the SSD tier read more postings for want of matching candidates.
    pub widenings: u64,
    /// Candidates the tier returned.
    pub candidates: u64,
}

/// What a filtered search did, tier by tier.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Explain {
    pub tiers: Vec<TierExplain>,
    /// Matching slots over all tiers (the estimate).
    pub matching: u64,
    /// Current matching points among the exact scans' (counted while scanning).
    pub matching_scanned: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_scan_and_large_ones_traverse() {
        let n = 50_000;
        assert_eq!(memory_plan(0, n, 64, PlanChoice::Auto), PlanKind::Empty);
        assert_eq!(
            memory_plan(100, n, 64, PlanChoice::Auto),
            PlanKind::ExactScan
        );
        assert_eq!(
            memory_plan(10_000, n, 64, PlanChoice::Auto),
            PlanKind::ExactScan
        );
        assert_eq!(
            memory_plan(27_000, n, 64, PlanChoice::Auto),
            PlanKind::FilteredGraph
        );
        assert_eq!(
            memory_plan(27_000, n, 64, PlanChoice::Exact),
            PlanKind::ExactScan
        );
        assert_eq!(
            ssd_plan(10, 64, PlanChoice::Approximate),
            PlanKind::FilteredPostings
        );
        assert_eq!(
            ssd_plan(1 << 20, 64, PlanChoice::Auto),
            PlanKind::FilteredPostings
        );
    }
}
