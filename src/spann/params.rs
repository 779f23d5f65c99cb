//! Build and search settings, named after the SPANN / SPFresh papers and
//! SPTAG's parameter list where they have a counterpart.

use serde::{Deserialize, Serialize};

use super::{Result, SpannError};
use crate::hnsw::{HnswParams, VectorEncoding};

/// How vectors are stored inside postings: the same three encodings (and
/// the same names and file codes) as the head graph's
/// [`VectorEncoding`]. With f16 or SQ8 the full vectors are kept in
/// `vectors.f32` for re-ranking.
pub use crate::hnsw::VectorEncoding as Encoding;

/// Build and update settings of a SPANN index.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpannParams {
    /// Share of the vectors that become heads (SPTAG `Ratio`; 0.12 at billion scale).
    pub head_ratio: f64,
    /// Branching factor of the hierarchical balanced k-means (SPTAG `BKTKmeansK`, 32).
    pub branching: usize,
    /// Balance penalty λ of the k-means assignment: cost = d(x, c) + λ·d̄·(|c|/avg − 1).
    pub balance: f32,
    /// Most postings a vector is written to (SPTAG `ReplicaCount`, 8).
    pub replicas: usize,
    /// Candidate heads examined per vector when choosing replicas (SPTAG `InternalResultNum`, 64).
    pub replica_candidates: usize,
    /// ε₁ of the closure rule: replicas only at d(x, c) ≤ (1+ε₁)·d(x, c₁).
    pub eps1: f32,
    /// Slack of the RNG rule (SPTAG `RNGFactor`): a candidate head c is
    /// skipped when a chosen head c' has `rng_factor`·d(c, c') ≤ d(x, c).
    /// 1 is the plain rule; larger keeps more replicas. Absent in older
    /// `meta` files, which used 1.
    #[serde(default = "one")]
    pub rng_factor: f32,
    /// How vectors are stored in postings.
    pub encoding: Encoding,
    /// Posting length limit in 4 KiB pages; a longer posting is split.
    pub max_posting_pages: u32,
    /// Postings with fewer live vectors than this are merged (SPTAG `MergeThreshold`, 10).
    pub min_posting_len: usize,
    /// Nearby postings checked for reassignment after a split (SPFresh: 64).
    pub reassign_neighbors: usize,
    /// The head HNSW graph.
    pub hnsw: HnswParams,
    /// How the head graph stores head vectors: f32, f16 or SQ8 (quantiser
    /// trained on the heads). The build assigns replicas with f32 heads, then
    /// re-encodes the graph; heads added later by splits are encoded (SQ8
    /// clamps values outside the trained range). Absent in older `meta`
    /// files, which are f32.
    #[serde(default)]
    pub head_encoding: VectorEncoding,
    /// Seed of the clustering.
    pub seed: u64,
}

fn one() -> f32 {
    1.0
}

impl Default for SpannParams {
    fn default() -> Self {
        Self {
            head_ratio: 0.1,
            branching: 32,
            balance: 1.0,
            replicas: 8,
            replica_candidates: 64,
            eps1: 10.0,
            rng_factor: 1.0,
            encoding: Encoding::F32,
            max_posting_pages: 32,
            min_posting_len: 10,
            reassign_neighbors: 32,
            hnsw: HnswParams {
                m: 16,
                ef_construction: 200,
                ..HnswParams::default()
            },
            head_encoding: VectorEncoding::F32,
            seed: 0x0053_5041_4e4e,
        }
    }
}

impl SpannParams {
    /// The measured defaults of the SSD tier: what a collection gets
    /// (`SsdConfig::default`) and what `quiver index --index spann` builds.
    /// SQ8 heads and [`DEFAULT_SPANN_HEAD_RATIO`](crate::limits::DEFAULT_SPANN_HEAD_RATIO)
    /// (more, smaller postings in about a tenth of the raw vector bytes),
    /// f16 postings searched without a re-rank round (one round of reads
    /// per query), 8 replicas under the plain RNG rule. `Default` keeps the
    /// older f32 settings for bare indexes and tests. Measurements in
    /// docs/BENCHMARKS.md, "SSD tier defaults".
    pub fn recommended() -> Self {
        Self {
            head_ratio: crate::limits::DEFAULT_SPANN_HEAD_RATIO,
            encoding: Encoding::F16,
            head_encoding: VectorEncoding::Sq8,
            ..Self::default()
        }
    }

    /// Checks ranges; an error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, m: String| Err(SpannError::param(field, m));
        if !(self.head_ratio > 0.0 && self.head_ratio <= 1.0) {
            return bad(
                "head_ratio",
                format!("must be in (0, 1], got {}", self.head_ratio),
            );
        }
        if !(2..=1024).contains(&self.branching) {
            return bad(
                "branching",
                format!("must be in 2..=1024, got {}", self.branching),
            );
        }
        if !(self.balance >= 0.0 && self.balance.is_finite()) {
            return bad("balance", format!("must be >= 0, got {}", self.balance));
        }
        if !(1..=64).contains(&self.replicas) {
            return bad(
                "replicas",
                format!("must be in 1..=64, got {}", self.replicas),
            );
        }
        if self.replica_candidates < self.replicas {
            return bad(
                "replica_candidates",
                format!(
                    "{} must be >= replicas ({})",
                    self.replica_candidates, self.replicas
                ),
            );
        }
        if self.eps1.is_nan() || self.eps1 < 0.0 {
            return bad("eps1", format!("must be >= 0, got {}", self.eps1));
        }
        if !(self.rng_factor > 0.0 && self.rng_factor.is_finite()) {
            return bad(
                "rng_factor",
                format!("must be > 0 and finite, got {}", self.rng_factor),
            );
        }
        if !(1..=4096).contains(&self.max_posting_pages) {
            return bad(
                "max_posting_pages",
                format!("must be in 1..=4096, got {}", self.max_posting_pages),
            );
        }
        self.hnsw.validate()?;
        Ok(())
    }
}

/// Per-search settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchParams {
    /// Most postings read per query (SPTAG `SearchInternalResultNum`).
    pub nprobe: usize,
    /// `1+ε₂` of query-aware pruning: read only heads with d(q, c) ≤ ratio·d(q, c₁)
    /// (SPTAG `MaxDistRatio`); `None` reads all `nprobe`.
    pub max_dist_ratio: Option<f32>,
    /// Beam width of the head HNSW search, raised to
    /// [`SPANN_HEAD_EF_PER_NPROBE`](crate::limits::SPANN_HEAD_EF_PER_NPROBE)
    /// × `nprobe`.
    pub head_ef: usize,
    /// Candidates re-ranked at full precision when postings are compressed
    /// (raised to `k`), in a second round of reads; 0 keeps the posting
    /// codes' distances (one round; right for f16, lossy for SQ8), except
    /// in an exhaustive search (`nprobe` ≥ live heads), which re-ranks so
    /// that it stays exact. See [`SearchParams::rerank_for`].
    pub rerank: usize,
}

impl SearchParams {
    /// The default `rerank` for postings stored as `encoding`: SQ8 codes
    /// need the re-rank ([`DEFAULT_SQ8_RERANK`](crate::limits::DEFAULT_SQ8_RERANK)
    /// candidates); f16 codes rank the top `k` as f32 vectors do, so they
    /// skip it and a query reads in one round; f32 postings are exact.
    pub fn rerank_for(encoding: Encoding) -> usize {
        match encoding {
            Encoding::Sq8 => crate::limits::DEFAULT_SQ8_RERANK,
            Encoding::F16 | Encoding::F32 => 0,
        }
    }
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            nprobe: 32,
            max_dist_ratio: None,
            head_ef: 128,
            rerank: crate::limits::DEFAULT_SQ8_RERANK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `meta` files and collection configs written before `rng_factor`
    /// existed open with the plain RNG rule they were built with.
    #[test]
    fn settings_without_rng_factor_mean_the_plain_rule() {
        let mut v = serde_json::to_value(SpannParams::recommended()).unwrap();
        v.as_object_mut().unwrap().remove("rng_factor");
        let p: SpannParams = serde_json::from_value(v).unwrap();
        assert_eq!(p.rng_factor, 1.0);
        assert_eq!(p, SpannParams::recommended());
    }

    #[test]
    fn recommended_is_valid_and_bad_rng_factor_is_named() {
        SpannParams::recommended().validate().unwrap();
        let bad = SpannParams {
            rng_factor: 0.0,
            ..SpannParams::recommended()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("rng_factor"));
    }

    #[test]
    fn rerank_only_for_sq8_postings() {
        assert_eq!(SearchParams::rerank_for(Encoding::Sq8), 64);
        assert_eq!(SearchParams::rerank_for(Encoding::F16), 0);
        assert_eq!(SearchParams::rerank_for(Encoding::F32), 0);
    }
}
