//! Filtered reads: the per-tier plan of a filtered (or forced exact)
//! search and its explain, and `count`, `scroll` and `delete` by filter.
//! Every tier selects its matching slots from its payload indexes
//! (`filter::SlotSpace`); `has_id` resolves through a snapshot of the id
//! map taken before any tier is touched (the map's lock comes before the
//! tiers' own, see mod.rs).

use std::collections::HashMap;

use roaring::RoaringBitmap;

use super::segment::Segment;
use super::ssd::SsdTier;
use super::{Collection, CollectionError, Loc, PointId, Record, Result, MAX_K, SSD};
use crate::filter::plan::{
    self, Explain, PlanChoice, PlanKind, TierExplain, MAX_POSTING_WIDENINGS,
};
use crate::filter::{Filter, FilterError, Selection};
use crate::hnsw::{FilterStats, NodeId};
use crate::score::Prepared;

/// A candidate of a search: distance, tier (segment id or [`SSD`]), slot.
pub(super) type Candidate = (f32, u32, NodeId);

impl From<FilterError> for CollectionError {
    fn from(e: FilterError) -> Self {
        match e {
            FilterError::Invalid { field, message } => {
                CollectionError::InvalidArgument { field, message }
            }
            FilterError::TooLarge { field, message } => {
                CollectionError::LimitExceeded { field, message }
            }
        }
    }
}

/// Where each point id a filter's `has_id` names lives now.
struct IdSnapshot(HashMap<PointId, Loc>);

impl IdSnapshot {
    fn of(f: &Filter, map: &std::collections::BTreeMap<PointId, Loc>) -> Self {
        IdSnapshot(
            f.ids()
                .into_iter()
                .filter_map(|id| map.get(&id).map(|&l| (id, l)))
                .collect(),
        )
    }

    /// The slots of `ids` in tier `seg`.
    fn slots(&self, ids: &[PointId], seg: u32) -> RoaringBitmap {
        ids.iter()
            .filter_map(|id| self.0.get(id))
            .filter(|l| l.seg == seg)
            .map(|l| l.node.0)
            .collect()
    }
}

impl Collection {
    /// Validates `f` (limits, values, types of indexed fields), naming
    /// paths under `path`.
    pub(super) fn check_filter(&self, f: &Filter, path: &str) -> Result<Filter> {
        let mut f = f.clone();
        f.validate(path)?;
        f.check_types(path, &|k| self.field_type(k))?;
        Ok(f)
    }

    fn id_snapshot(&self, f: &Filter) -> IdSnapshot {
        if f.ids().is_empty() {
            return IdSnapshot(HashMap::new());
        }
        IdSnapshot::of(f, &self.map.read())
    }

    /// The SSD slots of `sel` whose point is current there. The SSD tier
    /// holds live copies that are not current while a merge is in flight
    /// (inserted, not yet switched to), which an exact scan of it must not
    /// let crowd current ones out.
    fn current_ssd_slots(&self, sel: &RoaringBitmap, t: &SsdTier) -> RoaringBitmap {
        let map = self.map.read();
        sel.iter()
            .filter(|&slot| {
                let here = Loc {
                    seg: SSD,
                    node: NodeId(slot),
                };
                t.point_id(slot)
                    .and_then(|id| map.get(&id))
                    .is_some_and(|l| *l == here)
            })
            .collect()
    }

    /// Candidates of a filtered search from every tier, each tier by the
    /// plan its matching count calls for, and what each tier did.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn filtered_candidates(
        &self,
        f: &Filter,
        q: Prepared<'_>,
        k: usize,
        ef: usize,
        nprobe: Option<usize>,
        choice: PlanChoice,
        segs: &[std::sync::Arc<Segment>],
        tier: Option<&SsdTier>,
    ) -> Result<(Vec<Candidate>, Explain)> {
        let ids = self.id_snapshot(f);
        let mut explain = Explain::default();
        let mut cands = Vec::new();
        for s in segs {
            let mut sel = s.table().select(f, &|want| ids.slots(want, s.id));
            // A write in flight has stored its points' payloads (so the
            // indexes select them) before it maps and publishes them: such
            // a node is not current yet, and taking a place in this
            // segment's top k it would crowd a current point out.
            if let Some(published) = sel.below(s.published()) {
                sel = std::sync::Arc::new(published);
            }
            let kind = plan::memory_plan(sel.slots.len(), s.hnsw.len() as u64, ef, choice);
            let mut st = FilterStats::default();
            let hits = match kind {
                PlanKind::ExactScan => {
                    // A segment's live nodes are its current points (a
                    // replaced or deleted copy is deleted from the graph
                    // under the writer lock; a merged one is current through
                    // its SSD copy), so no per-slot check of the id map.
                    let hits = s.hnsw.scan_allowed(q, k, &sel.slots, &mut st)?;
                    explain.matching_scanned += st.visited;
                    hits
                }
                PlanKind::FilteredGraph => {
                    let buffer = s.unindexed_nodes();
                    let dense = sel.dense();
                    let mut hits =
                        s.hnsw
                            .search_allowed(q, k, ef, |id| dense.contains(id), &mut st)?;
                    // The unindexed buffer is not in the graph: its
                    // matching points are scanned exactly.
                    if let Some(mut nodes) = buffer {
                        nodes &= &sel.slots;
                        if !nodes.is_empty() {
                            let scanned = s.hnsw.scan_allowed(q, k, &nodes, &mut st)?;
                            super::segment::merge_hits(&mut hits, scanned, k);
                        }
                    }
                    hits
                }
                _ => Vec::new(),
            };
            let mut te = tier_explain(format!("segment {}", s.id), s.hnsw.len(), &sel, kind);
            te.distances = st.distances;
            te.visited = st.visited;
            te.two_hop = st.two_hop;
            te.candidates = hits.len() as u64;
            explain.tiers.push(te);
            cands.extend(hits.into_iter().map(|n| (n.distance, s.id, n.id)));
        }
        if let Some(t) = tier {
            let sel = t.table().select(f, &|want| ids.slots(want, SSD));
            let nprobe = nprobe.unwrap_or(t.default_nprobe());
            let kind = plan::ssd_plan(sel.slots.len(), nprobe, choice);
            let mut te = tier_explain("ssd".into(), t.table().len(), &sel, kind);
            let hits = match kind {
                PlanKind::ExactScan => {
                    let current = self.current_ssd_slots(&sel.slots, t);
                    explain.matching_scanned += current.len();
                    let (hits, st) = t.search_among(q, k, &current)?;
                    te.distances = st.scanned as u64;
                    te.visited = st.scanned as u64;
                    hits
                }
                PlanKind::FilteredPostings => {
                    self.ssd_allowed(t, q, k, nprobe, &sel.slots, &mut te)?
                }
                _ => Vec::new(),
            };
            te.candidates = hits.len() as u64;
            explain.tiers.push(te);
            cands.extend(hits.into_iter().map(|(d, slot)| (d, SSD, NodeId(slot))));
        }
        explain.matching = explain.tiers.iter().map(|t| t.matching).sum();
        Ok((cands, explain))
    }

    /// The SSD tier's nearest allowed copies, enough that `k` are current:
    /// more hits while stale copies crowd them out, more postings (doubling
    /// `nprobe`, at most [`MAX_POSTING_WIDENINGS`] times) while the postings
    /// read hold too few matching ones.
    fn ssd_allowed(
        &self,
        t: &SsdTier,
        q: Prepared<'_>,
        k: usize,
        nprobe: usize,
        allow: &RoaringBitmap,
        te: &mut TierExplain,
    ) -> Result<Vec<(f32, u32)>> {
        let (mut want, mut np) = (k, nprobe);
        loop {
            let (hits, st) = t.search_allowed(q, want, np, allow)?;
            te.postings += st.postings as u64;
            te.distances += st.scanned as u64;
            te.visited += st.scanned as u64;
            let current = self.current_ssd_hits(t, &hits);
            if current >= k {
                return Ok(hits);
            }
            if hits.len() >= want && want < MAX_K * 4 {
                want = (want * 2).max(want + 16);
            } else if (te.widenings as usize) < MAX_POSTING_WIDENINGS && np < t.heads() {
                np = np.saturating_mul(2);
                te.widenings += 1;
            } else {
                return Ok(hits);
            }
        }
    }

    /// Every current point matching `f`: `(id, where it lives)`, any order.
    /// The id map's read lock is held throughout (tiers are snapshotted
    /// under it), so a merge cannot move a point between tiers halfway and
    /// have it counted twice or not at all.
    fn matching_points(&self, f: &Filter) -> Result<Vec<(PointId, Loc)>> {
        let map = self.map.read();
        let ids = IdSnapshot::of(f, &map);
        let segs = self.segments.read().clone();
        let tier = self.ssd.read().clone();
        let mut out = Vec::new();
        let mut gather = |seg: u32, sel: &RoaringBitmap, id_of: &dyn Fn(u32) -> Option<PointId>| {
            for slot in sel {
                let here = Loc {
                    seg,
                    node: NodeId(slot),
                };
                if let Some(id) = id_of(slot).filter(|id| map.get(id) == Some(&here)) {
                    out.push((id, here));
                }
            }
        };
        for s in segs.iter() {
            let sel = s.table().select(f, &|want| ids.slots(want, s.id));
            gather(s.id, &sel.slots, &|slot| s.point_id(NodeId(slot)));
        }
        if let Some(t) = &tier {
            let sel = t.table().select(f, &|want| ids.slots(want, SSD));
            gather(SSD, &sel.slots, &|slot| t.point_id(slot));
        }
        Ok(out)
    }

    /// Live points matching `f`.
    pub fn count_matching(&self, f: &Filter) -> Result<usize> {
        let f = self.check_filter(f, "filter")?;
        Ok(self.matching_points(&f)?.len())
    }

    /// [`Collection::scroll`] over the points matching `f`.
    pub fn scroll_matching(
        &self,
        f: &Filter,
        after: Option<PointId>,
        limit: usize,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<(Vec<Record>, Option<PointId>)> {
        let f = self.check_filter(f, "filter")?;
        let mut points = self.matching_points(&f)?;
        points.retain(|(id, _)| after.is_none_or(|a| *id > a));
        points.sort_unstable_by_key(|(id, _)| *id);
        let more = points.len() > limit;
        let fields = super::read::Fields {
            payload: with_payload,
            vector: with_vector,
        };
        let mut records = Vec::with_capacity(points.len().min(limit));
        for &(id, mut loc) in points.iter().take(limit) {
            // A merge that finished since the points were gathered moved the
            // point to the SSD tier (and dropped its segment): follow the map.
            loop {
                if let Some(r) = self.record(id, loc, 0.0, fields)? {
                    records.push(r);
                    break;
                }
                match self.map.read().get(&id) {
                    Some(&now) if now != loc => loc = now,
                    _ => break,
                }
            }
        }
        let next = if more {
            records.last().map(|r| r.id)
        } else {
            None
        };
        Ok((records, next))
    }

    /// Deletes the points matching `f` when the delete runs (writes racing
    /// it may survive it). Returns the WAL position and how many were deleted.
    pub fn delete_matching(&self, f: &Filter) -> Result<(quiver_storage::Lsn, usize)> {
        let f = self.check_filter(f, "filter")?;
        let mut ids: Vec<PointId> = self
            .matching_points(&f)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        self.delete(&ids)
    }
}

fn tier_explain(tier: String, points: usize, sel: &Selection, kind: PlanKind) -> TierExplain {
    TierExplain {
        tier,
        points: points as u64,
        matching: sel.slots.len(),
        plan: Some(kind),
        indexed_conditions: sel.indexed_leaves as u64,
        payloads_scanned: sel.payloads_scanned as u64,
        ..TierExplain::default()
    }
}
