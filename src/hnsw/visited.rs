//! Epoch-tagged visited sets and the per-search scratch pool.
//!
//! A visited set is a `u16` tag per node: a node is visited when its tag equals
//! the current epoch, so clearing is a single increment (a full reset only
//! every 65,535 searches). Scratch (visited set, heaps, query buffers) is taken
//! from a pool and returned after each search, so the hot path never allocates.

use std::collections::BinaryHeap;

use parking_lot::Mutex;

use super::codes::QueryTmp;
use super::Candidate;

/// Per-search working memory.
pub(crate) struct Scratch {
    tags: Vec<u16>,
    epoch: u16,
    /// Nearest-first frontier (min-heap through `Reverse`-style ordering).
    pub(crate) frontier: BinaryHeap<std::cmp::Reverse<Candidate>>,
    /// Current best results, worst on top.
    pub(crate) results: BinaryHeap<Candidate>,
    /// Unvisited neighbours of the node being expanded.
    pub(crate) batch: Vec<u32>,
    /// A normalised copy of the query, for cosine.
    pub(crate) query: Vec<f32>,
    /// Buffers of the prepared search (or insert) query.
    pub(crate) query_tmp: QueryTmp,
    /// Buffers of the node-to-node distances of an insert: the base node of
    /// a list being shrunk, and the candidate being checked.
    pub(crate) link_tmp: [QueryTmp; 2],
}

impl Scratch {
    fn new(capacity: usize) -> Self {
        Self {
            tags: vec![0; capacity],
            epoch: 0,
            frontier: BinaryHeap::with_capacity(256),
            results: BinaryHeap::with_capacity(256),
            batch: Vec::with_capacity(64),
            query: Vec::new(),
            query_tmp: QueryTmp::default(),
            link_tmp: Default::default(),
        }
    }

    /// Starts a new search over `capacity` nodes.
    pub(crate) fn reset(&mut self, capacity: usize) {
        if self.tags.len() < capacity {
            self.tags.resize(capacity, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.iter_mut().for_each(|t| *t = 0);
            self.epoch = 1;
        }
        self.frontier.clear();
        self.results.clear();
        self.batch.clear();
    }

    /// Marks `id` visited; returns `true` if it was not visited before.
    #[inline(always)]
    pub(crate) fn visit(&mut self, id: u32) -> bool {
        let tag = &mut self.tags[id as usize];
        if *tag == self.epoch {
            false
        } else {
            *tag = self.epoch;
            true
        }
    }
}

/// A pool of scratch buffers shared by concurrent searches.
pub(crate) struct ScratchPool {
    free: Mutex<Vec<Scratch>>,
}

impl ScratchPool {
    pub(crate) fn new() -> Self {
        Self {
            free: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn take(&self, capacity: usize) -> Scratch {
        let mut s = self
            .free
            .lock()
            .pop()
            .unwrap_or_else(|| Scratch::new(capacity));
        s.reset(capacity);
        s
    }

    pub(crate) fn give(&self, s: Scratch) {
        self.free.lock().push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_clear_and_wrap() {
        let pool = ScratchPool::new();
        let mut s = pool.take(4);
        assert!(s.visit(2));
        assert!(!s.visit(2));
        for _ in 0..70_000 {
            s.reset(4);
        }
        assert!(s.visit(2));
        assert!(!s.visit(2));
        s.reset(8);
        assert!(s.visit(7));
        pool.give(s);
    }
}
