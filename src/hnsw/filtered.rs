//! Filtered search: a beam search on layer 0 that routes through every
//! node but admits only allowed ones to the results, with a two-hop
//! expansion (ACORN-style, Patel et al. 2024) where the neighbourhood of the
//! node being expanded is mostly filtered out, so the beam reaches allowed
//! nodes past disallowed ones instead of starving; and an exact scan of an
//! explicit set of nodes, for small matching sets. Both count their work
//! ([`FilterStats`]) for a query's explain.

use std::cmp::Reverse;

use roaring::RoaringBitmap;

use super::codes::{with_space, Dist, Space};
use super::visited::Scratch;
use super::{Candidate, Hnsw, HnswError, Neighbor, NodeId, Result};
use crate::score::Prepared;

/// A node's neighbourhood counts as mostly filtered out (and gets the
/// two-hop expansion) when fewer than 1 in this many of its new neighbours
/// are allowed.
const TWO_HOP_BELOW: usize = 4;

/// Work done by one filtered search or scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FilterStats {
    /// Distances computed.
    pub distances: u64,
    /// Nodes expanded (graph) or scanned (exact).
    pub visited: u64,
    /// Allowed nodes reached through a disallowed neighbour (two-hop).
    pub two_hop: u64,
}

impl FilterStats {
    pub fn add(&mut self, o: FilterStats) {
        self.distances += o.distances;
        self.visited += o.visited;
        self.two_hop += o.two_hop;
    }
}

/// Keeps `c` in `heap` if it is among the `k` nearest so far.
fn push_top(heap: &mut std::collections::BinaryHeap<Candidate>, c: Candidate, k: usize) {
    if heap.len() < k {
        heap.push(c);
    } else if heap.peek().is_some_and(|t| c.dist < t.dist) {
        heap.pop();
        heap.push(c);
    }
}

/// The heap's candidates as neighbours, nearest first (ties by id).
fn nearest_first(heap: std::collections::BinaryHeap<Candidate>) -> Vec<Neighbor> {
    let mut out: Vec<Neighbor> = heap
        .into_iter()
        .map(|c| Neighbor {
            id: NodeId(c.id),
            distance: c.dist,
        })
        .collect();
    out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    out
}

impl Hnsw {
    /// Checks a prepared query's dimension and metric against the index.
    pub(crate) fn check_prepared<'q>(&self, query: Prepared<'q>) -> Result<&'q [f32]> {
        let q = query.as_slice();
        if q.len() != self.dim {
            return Err(HnswError::Dimension {
                what: "query".into(),
                expected: self.dim,
                got: q.len(),
            });
        }
        if query.metric() != self.metric {
            return Err(HnswError::param(
                "query",
                format!(
                    "prepared for {}, the index uses {}",
                    query.metric(),
                    self.metric
                ),
            ));
        }
        Ok(q)
    }

    /// The `k` nearest live nodes for which `allow` holds, by a graph
    /// search of beam width `ef` (raised to `k`) that routes through every
    /// node. (Computing distances to allowed nodes only, ACORN-1, measured
    /// 5-20 % more distances at equal recall at 32-57 % selectivity on
    /// MiniLM: BENCHMARKS.md.)
    pub fn search_allowed(
        &self,
        query: Prepared<'_>,
        k: usize,
        ef: usize,
        allow: impl Fn(u32) -> bool,
        stats: &mut FilterStats,
    ) -> Result<Vec<Neighbor>> {
        let q = self.check_prepared(query)?;
        let mut out = Vec::with_capacity(k);
        if k == 0 {
            return Ok(out);
        }
        let Some(entry) = *self.entry.read() else {
            return Ok(out);
        };
        let ef = ef.max(k);
        let ok = |id: u32| allow(id) && !self.is_deleted(NodeId(id));
        let mut s = self.pool.take(self.capacity());
        let mut tmp = std::mem::take(&mut s.query_tmp);
        with_space!(&self.codes, space => {
            let d = space.query(q, &mut tmp);
            let ep = self.greedy_descent(&d, entry.node, entry.level, 0);
            self.beam_allowed(&d, ep, ef, &ok, &mut s, stats);
        });
        s.query_tmp = tmp;
        // A lossy index re-scores its whole beam with full vectors.
        let keep = if self.codec().lossy() { ef } else { k };
        while s.results.len() > keep {
            s.results.pop();
        }
        out.extend(s.results.drain().map(|c| Neighbor {
            id: NodeId(c.id),
            distance: c.dist,
        }));
        self.pool.give(s);
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        self.rescore_exact(q, &mut out, k, stats);
        Ok(out)
    }

    /// Re-scores `found` with the full-precision vectors of a lossy index
    /// that keeps them (nearest first, `k` kept); others are left as they are.
    fn rescore_exact(
        &self,
        q: &[f32],
        found: &mut Vec<Neighbor>,
        k: usize,
        stats: &mut FilterStats,
    ) {
        if self.codec().lossy() && self.exact_source() != super::rerank::ExactSource::None {
            let kernel = self.metric.kernel();
            for n in found.iter_mut() {
                if let Some(v) = self.exact_vector(n.id) {
                    n.distance = kernel.distance(q, v);
                    stats.distances += 1;
                }
            }
            found.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        }
        found.truncate(k);
    }

    /// The `k` nearest live nodes among `nodes`, by computing the distance
    /// to each: exact for f32 storage, and for f16/SQ8 storage that keeps
    /// full vectors (scored with those); on codes otherwise.
    pub fn scan_allowed(
        &self,
        query: Prepared<'_>,
        k: usize,
        nodes: &RoaringBitmap,
        stats: &mut FilterStats,
    ) -> Result<Vec<Neighbor>> {
        let q = self.check_prepared(query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut heap: std::collections::BinaryHeap<Candidate> =
            std::collections::BinaryHeap::with_capacity(k + 1);
        let len = self.len() as u32;
        if self.codec().lossy() && self.exact_source() != super::rerank::ExactSource::None {
            let kernel = self.metric.kernel();
            for n in nodes.iter().take_while(|&n| n < len) {
                if self.is_deleted(NodeId(n)) {
                    continue;
                }
                let Some(v) = self.exact_vector(NodeId(n)) else {
                    continue;
                };
                let dist = kernel.distance(q, v);
                stats.distances += 1;
                stats.visited += 1;
                push_top(&mut heap, Candidate { dist, id: n }, k);
            }
            return Ok(nearest_first(heap));
        }
        let mut s = self.pool.take(0);
        let mut tmp = std::mem::take(&mut s.query_tmp);
        with_space!(&self.codes, space => {
            let d = space.query(q, &mut tmp);
            let mut iter = nodes.iter().take_while(|&n| n < len).filter(|&n| !self.is_deleted(NodeId(n))).peekable();
            while let Some(n) = iter.next() {
                if let Some(&next) = iter.peek() {
                    d.prefetch_all(next);
                }
                let dist = d.dist(n);
                stats.distances += 1;
                stats.visited += 1;
                push_top(&mut heap, Candidate { dist, id: n }, k);
            }
        });
        s.query_tmp = tmp;
        self.pool.give(s);
        Ok(nearest_first(heap))
    }

    /// Layer-0 beam search from `ep` admitting only nodes passing `ok` to
    /// the results; leaves up to `ef` of them in `s.results`.
    fn beam_allowed<D: Dist>(
        &self,
        q: &D,
        ep: Candidate,
        ef: usize,
        ok: &impl Fn(u32) -> bool,
        s: &mut Scratch,
        stats: &mut FilterStats,
    ) {
        s.visit(ep.id);
        stats.distances += 1;
        s.frontier.push(Reverse(ep));
        if ok(ep.id) {
            s.results.push(ep);
        }
        let mut bound = f32::INFINITY;
        let mut batch = std::mem::take(&mut s.batch);
        let mut hop2: Vec<u32> = Vec::new();
        while let Some(Reverse(c)) = s.frontier.pop() {
            if c.dist > bound && s.results.len() >= ef {
                break;
            }
            stats.visited += 1;
            batch.clear();
            self.links.for_each(c.id, 0, |n| {
                if s.visit(n) {
                    batch.push(n);
                }
            });
            hop2.clear();
            if batch.iter().filter(|&&n| ok(n)).count() * TWO_HOP_BELOW < batch.len() {
                // Mostly filtered out here: also look one hop further, at
                // the allowed neighbours of the disallowed ones.
                let cap = batch.len();
                for &n in batch.iter().filter(|&&n| !ok(n)) {
                    if hop2.len() >= cap {
                        break;
                    }
                    self.links.for_each(n, 0, |nn| {
                        if hop2.len() < cap && ok(nn) && s.visit(nn) {
                            hop2.push(nn);
                        }
                    });
                }
                stats.two_hop += hop2.len() as u64;
            }
            if let Some(Reverse(next)) = s.frontier.peek() {
                self.links.prefetch_list(next.id, 0);
            }
            for &n in batch.iter().chain(hop2.iter()) {
                q.prefetch(n);
            }
            let all: &[u32] = &batch;
            for (i, &n) in all.iter().chain(hop2.iter()).enumerate() {
                if let Some(&next) = all.get(i + 1).or_else(|| hop2.get(i + 1 - all.len())) {
                    q.prefetch_all(next);
                }
                let d = q.dist(n);
                stats.distances += 1;
                if s.results.len() < ef || d < bound {
                    let cand = Candidate { dist: d, id: n };
                    s.frontier.push(Reverse(cand));
                    if ok(n) {
                        s.results.push(cand);
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                        if s.results.len() >= ef {
                            bound = s.results.peek().map_or(f32::INFINITY, |t| t.dist);
                        }
                    }
                }
            }
        }
        s.batch = batch;
    }
}
