//! Queries: greedy descent through the upper layers, then the ef-bounded beam
//! search on layer 0 (algorithms 2 and 5 of Malkov & Yashunin), generic over
//! the prepared query ([`Dist`]) so each vector encoding gets its own loop.

use std::cmp::Reverse;

use super::codes::{with_space, Dist, Space};
use super::visited::Scratch;
use super::{Candidate, Entry, Hnsw, HnswError, Neighbor, NodeId, Result};
use crate::distance;
use crate::score::Prepared;

impl Hnsw {
    /// The `k` nearest live nodes to `query`, searching with beam width `ef`
    /// (raised to `k` if smaller).
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Neighbor>> {
        let mut out = Vec::with_capacity(k);
        self.search_into(query, k, ef, None, &mut out)?;
        Ok(out)
    }

    /// Like [`Hnsw::search`], returning only nodes for which `allow` is true.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: &dyn Fn(NodeId) -> bool,
    ) -> Result<Vec<Neighbor>> {
        let mut out = Vec::with_capacity(k);
        self.search_into(query, k, ef, Some(allow), &mut out)?;
        Ok(out)
    }

    /// The allocation-free form: results (nearest first) replace `out`'s contents.
    pub fn search_into(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<&dyn Fn(NodeId) -> bool>,
        out: &mut Vec<Neighbor>,
    ) -> Result<()> {
        out.clear();
        self.check_vector(query, "query")?;
        if k == 0 {
            return Ok(());
        }
        let Some(entry) = *self.entry.read() else {
            return Ok(());
        };
        let ef = ef.max(k);
        let mut s = self.pool.take(self.capacity());
        let mut q = std::mem::take(&mut s.query);
        q.clear();
        q.extend_from_slice(query);
        if self.metric.normalizes() && !distance::normalize(&mut q) {
            s.query = q;
            self.pool.give(s);
            return Err(HnswError::ZeroNorm {
                what: "query".into(),
            });
        }

        self.search_scratch(&q, entry, k, ef, allow, &mut s, out);
        s.query = q;
        self.pool.give(s);
        Ok(())
    }

    /// [`Hnsw::search`] with a query its caller prepared (checked and
    /// normalised once, e.g. for every segment of a collection).
    pub fn search_prepared(
        &self,
        query: Prepared<'_>,
        k: usize,
        ef: usize,
    ) -> Result<Vec<Neighbor>> {
        let q = self.check_prepared(query)?;
        let mut out = Vec::with_capacity(k);
        if k == 0 {
            return Ok(out);
        }
        let Some(entry) = *self.entry.read() else {
            return Ok(out);
        };
        let mut s = self.pool.take(self.capacity());
        self.search_scratch(q, entry, k, ef.max(k), None, &mut s, &mut out);
        self.pool.give(s);
        Ok(out)
    }

    /// The search proper, for a prepared query `q`, with scratch `s`:
    /// results (nearest first) are appended to `out`.
    #[allow(clippy::too_many_arguments)]
    fn search_scratch(
        &self,
        q: &[f32],
        entry: Entry,
        k: usize,
        ef: usize,
        allow: Option<&dyn Fn(NodeId) -> bool>,
        s: &mut Scratch,
        out: &mut Vec<Neighbor>,
    ) {
        let mut tmp = std::mem::take(&mut s.query_tmp);
        with_space!(&self.codes, space => {
            let d = space.query(q, &mut tmp);
            self.search_base(&d, entry, ef, allow, s);
        });
        s.query_tmp = tmp;
        while s.results.len() > k {
            s.results.pop();
        }
        out.extend(s.results.drain().map(|c| Neighbor {
            id: NodeId(c.id),
            distance: c.dist,
        }));
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    }

    /// Descends from `entry` to layer 0 and runs the layer-0 beam search,
    /// leaving up to `ef` results in `s.results`.
    fn search_base<D: Dist>(
        &self,
        q: &D,
        entry: Entry,
        ef: usize,
        allow: Option<&dyn Fn(NodeId) -> bool>,
        s: &mut Scratch,
    ) {
        let ep = self.greedy_descent(q, entry.node, entry.level, 0);
        let has_deletions = self
            .deleted_count
            .load(std::sync::atomic::Ordering::Acquire)
            > 0;
        match (allow, has_deletions) {
            (None, false) => self.search_layer(q, &[ep], ef, 0, s, None::<&fn(u32) -> bool>),
            (None, true) => {
                let f = |id: u32| !self.is_deleted(NodeId(id));
                self.search_layer(q, &[ep], ef, 0, s, Some(&f))
            }
            (Some(a), _) => {
                let f = |id: u32| !self.is_deleted(NodeId(id)) && a(NodeId(id));
                self.search_layer(q, &[ep], ef, 0, s, Some(&f))
            }
        }
    }

    /// Greedy walk from `node` on layers `top..=bottom+1` down to `bottom`
    /// (exclusive): returns the closest node found and its distance.
    pub(crate) fn greedy_descent<D: Dist>(
        &self,
        q: &D,
        node: u32,
        top: usize,
        bottom: usize,
    ) -> Candidate {
        let mut cur = Candidate {
            dist: q.dist(node),
            id: node,
        };
        for level in (bottom + 1..=top).rev() {
            loop {
                let mut changed = false;
                self.links.for_each(cur.id, level, |n| {
                    // Step only onto nodes whose next layer is linked: a node
                    // still being inserted may have an empty list below.
                    if !self.links.is_ready(n, level - 1) {
                        return;
                    }
                    let d = q.dist(n);
                    if d < cur.dist {
                        cur = Candidate { dist: d, id: n };
                        changed = true;
                    }
                });
                if !changed {
                    break;
                }
            }
        }
        cur
    }

    /// Beam search on one layer from `entries`. Leaves up to `ef` results in
    /// `s.results` (worst on top); only nodes passing `allow` become results,
    /// but every node routes.
    pub(crate) fn search_layer<D: Dist, F: Fn(u32) -> bool>(
        &self,
        q: &D,
        entries: &[Candidate],
        ef: usize,
        level: usize,
        s: &mut Scratch,
        allow: Option<&F>,
    ) {
        let mut bound = f32::INFINITY;
        for &e in entries {
            if !s.visit(e.id) {
                continue;
            }
            s.frontier.push(Reverse(e));
            if allow.is_none_or(|a| a(e.id)) {
                s.results.push(e);
                if s.results.len() > ef {
                    s.results.pop();
                }
            }
        }
        if let Some(top) = s.results.peek() {
            bound = top.dist;
        }
        let mut batch = std::mem::take(&mut s.batch);
        while let Some(Reverse(c)) = s.frontier.pop() {
            if c.dist > bound && (s.results.len() >= ef || allow.is_none()) {
                break;
            }
            batch.clear();
            self.links.for_each(c.id, level, |n| {
                if s.visit(n) {
                    batch.push(n);
                }
            });
            // The next node to expand is probably the frontier's top: fetch its
            // list now. Then, while computing one neighbour's distance, pull in
            // all lines of the next neighbour's vector.
            if let Some(Reverse(next)) = s.frontier.peek() {
                self.links.prefetch_list(next.id, level);
            }
            for &n in &batch {
                q.prefetch(n);
            }
            let ahead = q.prefetch_ahead();
            for &n in batch.iter().take(ahead).skip(1) {
                q.prefetch_all(n);
            }
            for (i, &n) in batch.iter().enumerate() {
                if let Some(&next) = batch.get(i + ahead) {
                    q.prefetch_all(next);
                }
                let d = q.dist(n);
                if s.results.len() < ef || d < bound {
                    let cand = Candidate { dist: d, id: n };
                    s.frontier.push(Reverse(cand));
                    if allow.is_none_or(|a| a(n)) {
                        s.results.push(cand);
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                    }
                    if let Some(top) = s.results.peek() {
                        bound = top.dist;
                    }
                }
            }
        }
        s.batch = batch;
    }
}
