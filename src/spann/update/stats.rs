//! Counters of the updates since open, and the space use of `postings.dat`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::spann::posting::PAGE;
use crate::spann::slots::State;
use crate::spann::{Result, Spann};

/// Counters of the updates applied since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct UpdateStats {
    pub inserted: u64,
    pub deleted: u64,
    pub splits: u64,
    pub merges: u64,
    pub reassigned: u64,
    /// Postings rewritten to a bigger extent because new entries did not fit.
    pub relocations: u64,
    /// Chunks appended in place.
    pub appends: u64,
    /// Postings rewritten to a fresh extent (relocations, garbage dropped).
    pub rewrites: u64,
}

/// The atomic form of [`UpdateStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub inserted: AtomicU64,
    pub deleted: AtomicU64,
    pub splits: AtomicU64,
    pub merges: AtomicU64,
    pub reassigned: AtomicU64,
    pub relocations: AtomicU64,
    pub appends: AtomicU64,
    pub rewrites: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> UpdateStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        UpdateStats {
            inserted: l(&self.inserted),
            deleted: l(&self.deleted),
            splits: l(&self.splits),
            merges: l(&self.merges),
            reassigned: l(&self.reassigned),
            relocations: l(&self.relocations),
            appends: l(&self.appends),
            rewrites: l(&self.rewrites),
        }
    }
}

/// Space use of `postings.dat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpaceStats {
    /// Bytes of the file in use (its allocated end).
    pub file_bytes: u64,
    /// Bytes of chunks written in live postings (stale entries included).
    pub live_bytes: u64,
    /// Bytes of the extents reserved by live postings.
    pub reserved_bytes: u64,
    /// Bytes free for reuse now.
    pub free_bytes: u64,
    /// Bytes freed but still referenced by an older generation on disk
    /// (reusable after `release_before`).
    pub pending_bytes: u64,
}

impl Spann {
    /// Live copies of every vector id across all live postings (0 for
    /// deleted ids; copies left behind by a move in progress not counted):
    /// the replica-count distribution. Reads every posting.
    pub fn replica_counts(&self) -> Result<Vec<u16>> {
        let _pin = self.epochs.pin();
        let mut counts = vec![0u16; self.versions.len()];
        let n = self.heads.read().len();
        for h in 0..n as u32 {
            let cell = self.slots.get(h as usize).get();
            if cell.state != State::Live {
                continue;
            }
            for id in self.read_posting(h, cell.slot)?.live.ids {
                if let Some(c) = counts.get_mut(id as usize) {
                    *c = c.saturating_add(1);
                }
            }
        }
        Ok(counts)
    }

    /// The live member ids of head `h`'s posting (empty for a retired or
    /// unknown head): which postings hold a vector, for recall diagnostics
    /// (`examples/spann_recall.rs`). Reads the posting.
    pub fn posting_members(&self, h: u32) -> Result<Vec<u32>> {
        let _pin = self.epochs.pin();
        if h as usize >= self.heads.read().len() {
            return Ok(Vec::new());
        }
        let cell = self.slots.get(h as usize).get();
        if cell.state != State::Live {
            return Ok(Vec::new());
        }
        Ok(self.read_posting(h, cell.slot)?.live.ids)
    }

    /// Space use of `postings.dat`: file, live and reserved bytes, and what
    /// is free now or after the next release.
    pub fn space_stats(&self) -> SpaceStats {
        let n = self.heads.read().len();
        let (mut live, mut reserved) = (0u64, 0u64);
        for h in 0..n {
            let c = self.slots.get(h).get();
            if c.state == State::Live {
                live += u64::from(c.slot.bytes);
                reserved += u64::from(c.slot.capacity) * PAGE as u64;
            }
        }
        let u = self.alloc.lock().usage();
        SpaceStats {
            file_bytes: u.file_pages * PAGE as u64,
            live_bytes: live,
            reserved_bytes: reserved,
            free_bytes: u.free_pages * PAGE as u64,
            pending_bytes: u.pending_pages * PAGE as u64,
        }
    }
}
