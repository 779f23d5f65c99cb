//! Nearest-neighbour search over both tiers: every memory segment's HNSW
//! and the SSD tier, merged and checked against the id map.

use rayon::prelude::*;

use super::point::check_vector;
use super::read::Fields;
use super::ssd::SsdTier;
use super::{Collection, CollectionError, Loc, PointId, Record, Result, MAX_K, SSD};
use crate::filter::plan::{Explain, PlanChoice};
use crate::filter::Filter;
use crate::hnsw::NodeId;
use crate::limits::{INLINE_SEARCH_MAX_UNINDEXED, INLINE_SEARCH_MAX_WORK, MAX_EF, MAX_NPROBE};
use crate::score::{self, Prepared};

/// A search request.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub vector: Vec<f32>,
    pub k: usize,
    /// Beam width of the memory tier; the collection's `ef_search` when `None`.
    pub ef: Option<usize>,
    /// Postings read in the SSD tier; the collection's `ssd.nprobe` when `None`.
    pub nprobe: Option<usize>,
    pub with_payload: bool,
    pub with_vector: bool,
    /// Re-rank factor of lossy memory segments; the collection's `rerank` when `None`.
    pub rerank: Option<usize>,
    /// Only points matching this filter are returned.
    pub filter: Option<Filter>,
    /// The plan of each tier: the planner's (`Auto`), or forced. `Exact`
    /// without a filter is an exact search of every point.
    pub plan: PlanChoice,
    /// Return what each tier did ([`Explain`]).
    pub explain: bool,
}

impl Collection {
    /// The `k` nearest live points to the request's vector, nearest first.
    /// The query is checked and normalised once, for every segment and the
    /// SSD tier.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Record>> {
        Ok(self.search_explained(req)?.0)
    }

    /// [`Collection::search`], with what each tier did when the request
    /// asks for it (`explain`) and is filtered or exact.
    pub fn search_explained(&self, req: &SearchRequest) -> Result<(Vec<Record>, Option<Explain>)> {
        check_vector(
            &req.vector,
            self.config.dim,
            self.config.metric.normalizes(),
            "vector",
        )?;
        if req.k == 0 || req.k > MAX_K {
            return Err(CollectionError::invalid(
                "k",
                format!("must be in 1..={MAX_K}, got {}", req.k),
            ));
        }
        let ef = req.ef.unwrap_or(self.config.ef_search);
        if ef == 0 || ef > MAX_EF {
            return Err(CollectionError::invalid(
                "ef",
                format!("must be in 1..={MAX_EF}, got {ef}"),
            ));
        }
        let nprobe = req.nprobe.or(self.config.ssd.map(|c| c.nprobe));
        if let Some(n) = req.nprobe {
            if n == 0 || n > MAX_NPROBE {
                return Err(CollectionError::invalid(
                    "nprobe",
                    format!("must be in 1..={MAX_NPROBE}, got {n}"),
                ));
            }
        }
        let mut buf = Vec::with_capacity(self.config.dim);
        let query =
            score::prepare_checked(&req.vector, self.config.metric, &mut buf).map_err(|_| {
                CollectionError::invalid(
                    "vector",
                    "its norm is not a finite number: cannot be normalised for cosine",
                )
            })?;
        let filter = match &req.filter {
            Some(f) => Some(self.check_filter(f, "filter")?),
            None if req.plan != PlanChoice::Auto => Some(Filter::all()),
            None => None,
        };
        let rerank = self.config.rerank_for(req.rerank)?;
        let segs = self.segments.read().clone();
        let tier = self.ssd.read().clone();
        let (mut cands, explain) = match &filter {
            Some(f) => {
                let (c, e) = self.filtered_candidates(
                    f,
                    query,
                    req.k,
                    ef,
                    nprobe,
                    req.plan,
                    &segs,
                    tier.as_deref(),
                )?;
                (c, req.explain.then_some(e))
            }
            None => {
                let mut cands: Vec<(f32, u32, NodeId)> =
                    Vec::with_capacity(req.k * (segs.len() + 1));
                for s in segs.iter() {
                    for n in s.search(query, req.k, ef, rerank)? {
                        cands.push((n.distance, s.id, n.id));
                    }
                }
                if let Some(t) = &tier {
                    for (distance, slot) in self.ssd_candidates(t, query, req.k, nprobe)? {
                        cands.push((distance, SSD, NodeId(slot)));
                    }
                }
                (cands, None)
            }
        };
        cands.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Keep candidates that are the current copy of their id (one read
        // of the id map for all of them), each id once. A segment being
        // merged still answers for points already moved to the SSD tier, so
        // a search that raced the move finds them in one tier or the other.
        let current: Vec<(PointId, f32, Loc)> = {
            let map = self.map.read();
            let mut seen = std::collections::HashSet::with_capacity(req.k);
            let mut current = Vec::with_capacity(req.k);
            for (dist, seg, node) in cands {
                if current.len() == req.k {
                    break;
                }
                let here = Loc { seg, node };
                let (id, copy) = if seg == SSD {
                    match tier.as_ref().and_then(|t| t.point_id(node.0)) {
                        Some(id) => (id, None),
                        None => continue,
                    }
                } else {
                    let Some(s) = segs.iter().find(|s| s.id == seg) else {
                        continue;
                    };
                    let Some(id) = s.point_id(node) else { continue };
                    let copy = s.merged_slot(node).map(|slot| Loc {
                        seg: SSD,
                        node: NodeId(slot),
                    });
                    (id, copy)
                };
                let is_current = map.get(&id).is_some_and(|l| {
                    *l == here || Some(*l) == copy || (l.seg != SSD && unpublished(&segs, *l))
                });
                if is_current && seen.insert(id) {
                    current.push((id, dist, here));
                }
            }
            current
        };
        let fields = Fields {
            payload: req.with_payload,
            vector: req.with_vector,
        };
        let mut out = Vec::with_capacity(current.len());
        for (id, distance, loc) in current {
            if loc.seg == SSD {
                out.extend(self.record(id, loc, distance, fields)?);
            } else if let Some(s) = segs.iter().find(|s| s.id == loc.seg) {
                out.push(Record::in_segment(s, id, loc.node, distance, fields));
            }
        }
        Ok((out, explain))
    }

    /// The SSD tier's nearest copies, enough of them that at least `k` are
    /// current (or all it has). SPANN also returns copies the id map does
    /// not point at: those a merge inserted but has not switched to yet
    /// (their points are current in a memory segment), and replaced or
    /// deleted ones whose delete is still in flight. Asking it for exactly
    /// `k` let such copies crowd current ones out of the top `k`, so the
    /// request doubles until `k` current copies are in hand.
    fn ssd_candidates(
        &self,
        t: &SsdTier,
        vector: Prepared<'_>,
        k: usize,
        nprobe: Option<usize>,
    ) -> Result<Vec<(f32, u32)>> {
        let mut want = k;
        loop {
            let hits = t.search(vector, want, nprobe)?;
            let current = self.current_ssd_hits(t, &hits);
            if current >= k || hits.len() < want || want >= MAX_K * 4 {
                return Ok(hits);
            }
            want = (want * 2).max(want + 16);
        }
    }

    /// How many of the SSD tier's `hits` are the current copy of their point.
    pub(super) fn current_ssd_hits(&self, t: &SsdTier, hits: &[(f32, u32)]) -> usize {
        let map = self.map.read();
        hits.iter()
            .filter(|&&(_, slot)| {
                t.point_id(slot).is_some_and(|id| {
                    map.get(&id)
                        == Some(&Loc {
                            seg: SSD,
                            node: NodeId(slot),
                        })
                })
            })
            .count()
    }

    /// Whether `req` is a short search that only reads memory: the
    /// collection has no SSD tier (nothing is read from disk) and its
    /// memory segments × beam width is at most [`INLINE_SEARCH_MAX_WORK`],
    /// and its unindexed buffer (scanned exactly) holds at most
    /// [`INLINE_SEARCH_MAX_UNINDEXED`] points.
    /// The server runs such searches where the request arrived instead of
    /// handing them to a blocking thread and waiting for its wake-up.
    pub fn search_is_short(&self, req: &SearchRequest) -> bool {
        if self.ssd.read().is_some() || req.filter.is_some() || req.plan != PlanChoice::Auto {
            return false;
        }
        let beam = req.ef.unwrap_or(self.config.ef_search).max(req.k);
        let segs = self.segments.read().clone();
        segs.len().saturating_mul(beam) <= INLINE_SEARCH_MAX_WORK
            && segs.iter().map(|s| s.unindexed()).sum::<usize>() <= INLINE_SEARCH_MAX_UNINDEXED
    }

    /// Runs several searches in parallel.
    pub fn search_batch(&self, reqs: &[SearchRequest]) -> Vec<Result<Vec<Record>>> {
        reqs.par_iter().map(|r| self.search(r)).collect()
    }

    /// [`Collection::search_batch`] with each search's explain (when asked).
    pub fn search_batch_explained(
        &self,
        reqs: &[SearchRequest],
    ) -> Vec<Result<(Vec<Record>, Option<Explain>)>> {
        reqs.par_iter().map(|r| self.search_explained(r)).collect()
    }
}

/// Whether `loc`, a memory copy the id map names, is not searchable yet: a
/// write still being applied mapped its id to it before publishing it
/// (write.rs). The live copy a search found for that id is then the one
/// the write replaces, still current for searches until the write
/// publishes. A segment newer than the search's snapshot counts as such.
fn unpublished(segs: &[std::sync::Arc<super::segment::Segment>], loc: Loc) -> bool {
    match segs.iter().find(|s| s.id == loc.seg) {
        Some(s) => !s.is_published(loc.node),
        None => segs.last().is_some_and(|s| loc.seg > s.id),
    }
}
