//! Neighbour lists of every node on every layer, readable without locks.
//!
//! Layer 0 is one flat array: per node `1 + M0` slots (a count, then up to
//! `M0 = 2M` neighbour ids). Upper layers are allocated per node at insert
//! time, `1 + M` slots per layer. Slots are atomics: readers load with
//! `Acquire` (a plain load on x86), writers store with `Release` while holding
//! the node's lock, so concurrent searches and inserts never race in the Rust
//! memory model and no search takes a lock.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, MutexGuard};

/// Graph adjacency for a fixed number of node slots.
pub(crate) struct Links {
    m: usize,
    m0: usize,
    level0: Box<[AtomicU32]>,
    upper: Box<[OnceLock<Box<[AtomicU32]>>]>,
    levels: Box<[AtomicU8]>,
    /// Lowest layer whose list the node's own insert has written (`u8::MAX`
    /// before the first). Lists are written top-down, so a node is safe to
    /// descend into on layer `l` once `ready <= l`.
    ready: Box<[AtomicU8]>,
    locks: Box<[Mutex<()>]>,
}

fn atomics(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

impl Links {
    pub(crate) fn new(m: usize, capacity: usize) -> Self {
        let m0 = 2 * m;
        Self {
            m,
            m0,
            level0: super::vectors::zeroed_atomic_u32s(capacity * (1 + m0)),
            upper: (0..capacity).map(|_| OnceLock::new()).collect(),
            levels: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            ready: (0..capacity).map(|_| AtomicU8::new(u8::MAX)).collect(),
            locks: (0..capacity).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Maximum neighbours on `level` (M0 on layer 0, M above).
    #[inline(always)]
    pub(crate) fn max_degree(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// Prepares node `id` to live on layers `0..=level`.
    pub(crate) fn init_node(&self, id: u32, level: usize) {
        self.levels[id as usize].store(level as u8, Ordering::Release);
        if level > 0 {
            let _ = self.upper[id as usize].set(atomics(level * (1 + self.m)));
        }
    }

    /// Records that the node's own list on `level` (and every layer above) is written.
    pub(crate) fn mark_ready(&self, id: u32, level: usize) {
        self.ready[id as usize].fetch_min(level as u8, Ordering::AcqRel);
    }

    /// Whether the node's own lists are written down to `level`.
    #[inline(always)]
    pub(crate) fn is_ready(&self, id: u32, level: usize) -> bool {
        (self.ready[id as usize].load(Ordering::Acquire) as usize) <= level
    }

    #[inline(always)]
    pub(crate) fn level(&self, id: u32) -> usize {
        self.levels[id as usize].load(Ordering::Acquire) as usize
    }

    /// The raw list (count slot first) of `id` on `level`; empty if the node
    /// does not live on that layer.
    #[inline(always)]
    fn list(&self, id: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let s = id as usize * (1 + self.m0);
            &self.level0[s..s + 1 + self.m0]
        } else {
            match self.upper[id as usize].get() {
                Some(b) => {
                    let s = (level - 1) * (1 + self.m);
                    b.get(s..s + 1 + self.m).unwrap_or(&[])
                }
                None => &[],
            }
        }
    }

    /// Calls `f` for each neighbour of `id` on `level`.
    #[inline(always)]
    pub(crate) fn for_each(&self, id: u32, level: usize, mut f: impl FnMut(u32)) {
        let list = self.list(id, level);
        let Some((count, slots)) = list.split_first() else {
            return;
        };
        let n = (count.load(Ordering::Acquire) as usize).min(slots.len());
        for s in &slots[..n] {
            f(s.load(Ordering::Acquire));
        }
    }

    /// Copies the neighbours of `id` on `level` into `out`.
    pub(crate) fn read(&self, id: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        self.for_each(id, level, |n| out.push(n));
    }

    /// Replaces the neighbours of `id` on `level`; the caller holds the node's lock.
    pub(crate) fn write(&self, _guard: &MutexGuard<'_, ()>, id: u32, level: usize, ids: &[u32]) {
        let list = self.list(id, level);
        let Some((count, slots)) = list.split_first() else {
            return;
        };
        let n = ids.len().min(slots.len());
        for (slot, &v) in slots.iter().zip(&ids[..n]) {
            slot.store(v, Ordering::Release);
        }
        count.store(n as u32, Ordering::Release);
    }

    /// Locks node `id` for writing its lists.
    pub(crate) fn lock(&self, id: u32) -> MutexGuard<'_, ()> {
        self.locks[id as usize].lock()
    }

    /// Prefetches the list of `id` on `level`.
    #[inline(always)]
    pub(crate) fn prefetch_list(&self, id: u32, level: usize) {
        let list = self.list(id, level);
        crate::distance::prefetch_lines(list, 3);
    }

    /// Bytes held by the adjacency (lists, levels, locks).
    /// Resident bytes with `len` nodes inserted: layer 0 is a zeroed
    /// allocation committed page by page as lists are written, so it counts
    /// for `len` nodes (whole pages); the per-node arrays are written at
    /// creation and count for the whole capacity.
    pub(crate) fn bytes(&self, len: usize) -> usize {
        let upper: usize = self
            .upper
            .iter()
            .map(|u| u.get().map_or(0, |b| b.len() * 4))
            .sum();
        (len.min(self.levels.len()) * (1 + self.m0) * 4)
            .next_multiple_of(4096)
            .min(self.level0.len() * 4)
            + upper
            + self.upper.len() * std::mem::size_of::<OnceLock<Box<[AtomicU32]>>>()
            + self.levels.len()
            + self.ready.len()
            + self.locks.len() * std::mem::size_of::<Mutex<()>>()
    }

    /// Grows to `capacity` node slots, keeping the contents.
    pub(crate) fn grow(&mut self, capacity: usize) {
        let old = self.levels.len();
        if capacity <= old {
            return;
        }
        let extend = |b: &mut Box<[AtomicU32]>, n: usize| {
            let mut v = std::mem::take(b).into_vec();
            v.resize_with(n, || AtomicU32::new(0));
            *b = v.into_boxed_slice();
        };
        extend(&mut self.level0, capacity * (1 + self.m0));
        let mut upper = std::mem::take(&mut self.upper).into_vec();
        upper.resize_with(capacity, OnceLock::new);
        self.upper = upper.into_boxed_slice();
        let mut ready = std::mem::take(&mut self.ready).into_vec();
        ready.resize_with(capacity, || AtomicU8::new(u8::MAX));
        self.ready = ready.into_boxed_slice();
        let mut levels = std::mem::take(&mut self.levels).into_vec();
        levels.resize_with(capacity, || AtomicU8::new(0));
        self.levels = levels.into_boxed_slice();
        let mut locks = std::mem::take(&mut self.locks).into_vec();
        locks.resize_with(capacity, || Mutex::new(()));
        self.locks = locks.into_boxed_slice();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_grow() {
        let mut l = Links::new(2, 3);
        l.init_node(0, 0);
        l.init_node(1, 2);
        {
            let g = l.lock(1);
            l.write(&g, 1, 0, &[0, 2, 3, 4, 5]);
            l.write(&g, 1, 2, &[0]);
        }
        let mut out = Vec::new();
        l.read(1, 0, &mut out);
        assert_eq!(out, vec![0, 2, 3, 4]);
        l.read(1, 2, &mut out);
        assert_eq!(out, vec![0]);
        l.read(0, 1, &mut out);
        assert!(out.is_empty());
        l.grow(10);
        l.read(1, 0, &mut out);
        assert_eq!(out, vec![0, 2, 3, 4]);
        assert_eq!(l.level(1), 2);
    }
}
