//! Which postings a vector goes to: its nearest heads, kept only within
//! (1+ε₁) of the nearest (the closure rule) and only when no already-chosen
//! head is closer to the candidate than the vector is, scaled by
//! `rng_factor` (the RNG rule), up to `replicas` of them. Used by the build,
//! inserts and reassignment alike.

use crate::distance::DistanceKernel;
use crate::hnsw::{Hnsw, Neighbor, NodeId};

use super::params::SpannParams;
use super::Result;

/// Picks the postings of `v` from `cands` (nearest first) into `out`
/// as `(head, distance)`; the nearest head is always chosen. A candidate c
/// is skipped when a chosen head c' has `rng_factor`·d(c, c') ≤ d(v, c)
/// (SPTAG's `RNGFactor`): 1 is the plain RNG rule, larger keeps more
/// replicas.
pub fn rng_select(
    heads: &Hnsw,
    dist: &DistanceKernel,
    cands: &[Neighbor],
    replicas: usize,
    eps1: f32,
    rng_factor: f32,
    out: &mut Vec<(u32, f32)>,
) {
    out.clear();
    let Some(first) = cands.first() else { return };
    let limit = (1.0 + eps1) * first.distance.max(0.0);
    for c in cands {
        if out.len() >= replicas {
            break;
        }
        if c.distance > limit && !out.is_empty() {
            break;
        }
        let Some(cv) = heads.vector(c.id) else {
            continue;
        };
        let dominated = out.iter().any(|&(h, _)| {
            heads
                .vector(NodeId(h))
                .is_some_and(|hv| rng_factor * dist.distance(&cv, &hv) <= c.distance)
        });
        if !dominated {
            out.push((c.id.0, c.distance));
        }
    }
}

/// Which heads a vector may go to.
#[derive(Clone, Copy, Default)]
pub struct HeadFilter<'a> {
    /// Heads accepted (all if `None`).
    pub allow: Option<&'a dyn Fn(NodeId) -> bool>,
    /// For the fallback full scan when inserts may run concurrently: only
    /// heads whose insert has completed (their vectors are written).
    pub published: Option<&'a dyn Fn(NodeId) -> bool>,
}

/// Searches the head graph and picks the postings of `v` (already normalised
/// for cosine) into `out`, among the heads `filter` accepts.
pub fn assign(
    heads: &Hnsw,
    dist: &DistanceKernel,
    params: &SpannParams,
    v: &[f32],
    filter: HeadFilter<'_>,
    cands: &mut Vec<Neighbor>,
    out: &mut Vec<(u32, f32)>,
) -> Result<()> {
    let k = params.replica_candidates;
    heads.search_into(v, k, k.max(64), filter.allow, cands)?;
    if cands.is_empty() && heads.live_len() > 0 {
        // The graph walk found no live head (a region whose heads were all
        // deleted by splits): scan them all, so no vector goes unplaced.
        let both = |id: NodeId| {
            filter.allow.is_none_or(|a| a(id)) && filter.published.is_none_or(|p| p(id))
        };
        scan_heads(heads, dist, v, k, Some(&both), cands);
    }
    rng_select(
        heads,
        dist,
        cands,
        params.replicas,
        params.eps1,
        params.rng_factor,
        out,
    );
    Ok(())
}

/// The `k` nearest live heads of `v` (that `allow` accepts) by a full
/// scan, nearest first. While heads are inserted concurrently, `allow` must
/// reject heads whose insert has not completed (checked before their vector
/// is read).
pub fn scan_heads(
    heads: &Hnsw,
    dist: &DistanceKernel,
    v: &[f32],
    k: usize,
    allow: Option<&dyn Fn(NodeId) -> bool>,
    out: &mut Vec<Neighbor>,
) {
    out.clear();
    // Heads may be added and retired while this runs (splits, merges). A
    // split publishes its new heads before it retires the old one, and new
    // heads take ids past the current length; so a head seen deleted had
    // its replacements inserted before, and re-reading the length after the
    // pass (until it stops growing) reaches them. One pass over `0..len`
    // could miss both the retired head and its replacements.
    let mut from = 0u32;
    loop {
        let to = heads.len() as u32;
        if to <= from {
            break;
        }
        for id in (from..to).map(NodeId) {
            if heads.is_deleted(id) || allow.is_some_and(|a| !a(id)) {
                continue;
            }
            if let Some(hv) = heads.vector(id) {
                out.push(Neighbor {
                    id,
                    distance: dist.distance(v, &hv),
                });
            }
        }
        from = to;
    }
    out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    out.truncate(k);
}
