//! The version map: one `u32` word per vector id: bit 31 = deleted, bit 30
//! = moving (in memory only), bits 0..=29 = the id's version. A posting
//! entry carries the version of the id when the copy was written.
//!
//! Reassigning a vector (LIRE) goes in three steps:
//! 1. [`VersionMap::start_move`] sets the moving bit (one mover per id) and
//!    hands out the next version. From now on the id's old copies are
//!    *leaving*: updates no longer count them towards their posting's
//!    length (no spurious splits), but keep them on disk, and searches
//!    still see them;
//! 2. the new copies are written with the next version and published;
//! 3. once every search that began before that has finished (deferred by
//!    the epochs), [`VersionMap::raise`] sets the version and clears the
//!    bit: the old copies are now garbage that rewrites drop.
//!
//! Versions compare as 30-bit serial numbers (RFC 1982): `a` is newer than
//! `b` when `a − b (mod 2^30)` is in `1..2^29`. An entry *newer* than the
//! map's version belongs to a move not yet completed and is kept; only an
//! *older* one is garbage. A stale copy could pass for live again only
//! after 2^29 reassignments of one id while it survived every rewrite of
//! its posting.
//!
//! Words are atomics in a [`SegVec`], so lookups from searches take no
//! lock while inserts grow the map and deletes set bits.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::segvec::SegVec;
use super::{Result, SpannError};

/// Bit of a version word that marks a deleted id.
pub const DELETED: u32 = 1 << 31;
/// Bit of a version word that marks an id being reassigned (never stored).
pub const MOVING: u32 = 1 << 30;
/// Version bits of a word.
pub const VERSION_MASK: u32 = MOVING - 1;
const HALF: u32 = 1 << 29;

/// Whether version `a` is newer than version `b` (30-bit serial numbers).
#[inline]
pub fn newer(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b) & VERSION_MASK;
    d != 0 && d < HALF
}

/// The version after `v`.
#[inline]
pub fn next(v: u32) -> u32 {
    v.wrapping_add(1) & VERSION_MASK
}

/// Whether a copy written at version `entry` is garbage given the id's
/// current `word`: the id is deleted or the copy is older than its version.
/// Searches return exactly the copies that are not garbage.
#[inline]
pub fn garbage(entry: u32, word: u32) -> bool {
    word & DELETED != 0 || newer(word & VERSION_MASK, entry & VERSION_MASK)
}

/// Whether a copy that is not garbage is *leaving*: its id is being moved
/// and this copy predates the move (kept, but not counted as a member).
#[inline]
pub fn leaving(entry: u32, word: u32) -> bool {
    word & MOVING != 0 && !newer(entry & VERSION_MASK, word & VERSION_MASK)
}

/// Per-id version words and the number of ids issued.
pub(crate) struct VersionMap {
    words: SegVec<AtomicU32>,
    issued: AtomicUsize,
}

impl VersionMap {
    /// A map holding `words` (ids `0..words.len()`; moving bits dropped).
    pub(crate) fn from_words(words: &[u32]) -> Self {
        let m = Self {
            words: SegVec::new(),
            issued: AtomicUsize::new(words.len()),
        };
        for (i, &w) in words.iter().enumerate() {
            m.words.get(i).store(w & !MOVING, Ordering::Relaxed);
        }
        m
    }

    /// Ids issued (deleted ones included).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.issued.load(Ordering::Acquire)
    }

    /// Issues `n` fresh ids (version 0, live); returns the first.
    pub(crate) fn reserve(&self, n: usize) -> Result<u32> {
        self.issued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                l.checked_add(n).filter(|&e| e < u32::MAX as usize)
            })
            .map(|l| l as u32)
            .map_err(|_| SpannError::param("id", "vector ids exhausted"))
    }

    /// The word of `id`, or `None` if it was never issued.
    #[inline]
    pub(crate) fn word(&self, id: u32) -> Option<u32> {
        ((id as usize) < self.len()).then(|| self.words.get(id as usize).load(Ordering::Acquire))
    }

    /// Marks `id` deleted; `Some(false)` if it already was, `None` if unknown.
    pub(crate) fn delete(&self, id: u32) -> Option<bool> {
        if (id as usize) >= self.len() {
            return None;
        }
        let old = self
            .words
            .get(id as usize)
            .fetch_or(DELETED, Ordering::AcqRel);
        Some(old & DELETED == 0)
    }

    /// Starts moving `id`: sets the moving bit and returns the version its
    /// new copies get. `None` if it is deleted, unknown or already moving
    /// (its mover places it).
    pub(crate) fn start_move(&self, id: u32) -> Option<u32> {
        if (id as usize) >= self.len() {
            return None;
        }
        self.words
            .get(id as usize)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w & (DELETED | MOVING) == 0).then_some(w | MOVING)
            })
            .ok()
            .map(|w| next(w & VERSION_MASK))
    }

    /// Gives up a move of `id` to `version` whose new copies were never
    /// published (the old ones count again).
    pub(crate) fn cancel_move(&self, id: u32, version: u32) {
        if (id as usize) >= self.len() {
            return;
        }
        let _ =
            self.words
                .get(id as usize)
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                    (w & MOVING != 0 && next(w & VERSION_MASK) == version).then_some(w & !MOVING)
                });
    }

    /// Completes a move: raises the version of `id` to `version` (unless it
    /// is already at or past it) and clears the moving bit; the deleted bit
    /// is kept.
    pub(crate) fn raise(&self, id: u32, version: u32) {
        if (id as usize) >= self.len() {
            return;
        }
        let w = self.words.get(id as usize);
        let _ = w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
            newer(version, cur & VERSION_MASK).then_some((cur & DELETED) | (version & VERSION_MASK))
        });
    }

    /// A copy of every issued word.
    pub(crate) fn snapshot(&self) -> Vec<u32> {
        (0..self.len())
            .map(|i| self.words.get(i).load(Ordering::Acquire))
            .collect()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.words.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_hide_old_copies_from_counts_not_from_searches() {
        let m = VersionMap::from_words(&[4]);
        let to = m.start_move(0).unwrap();
        assert_eq!(to, 5);
        assert_eq!(m.start_move(0), None, "one mover at a time");
        let w = m.word(0).unwrap();
        assert!(
            !garbage(4, w) && leaving(4, w),
            "old copy: seen, not counted"
        );
        assert!(
            !garbage(5, w) && !leaving(5, w),
            "new copy: seen and counted"
        );
        m.cancel_move(0, to);
        assert_eq!(m.word(0), Some(4));
        let to = m.start_move(0).unwrap();
        m.raise(0, to);
        let w = m.word(0).unwrap();
        assert_eq!(w, 5);
        assert!(garbage(4, w) && !garbage(5, w) && !leaving(5, w));
        m.delete(0);
        assert_eq!(m.start_move(0), None);
    }

    #[test]
    fn serial_order_survives_the_wrap() {
        assert!(newer(1, 0) && !newer(0, 1) && !newer(5, 5));
        assert!(newer(0, VERSION_MASK), "0 follows the largest version");
        assert_eq!(next(VERSION_MASK), 0);
        let mut v = VERSION_MASK - 300;
        for _ in 0..1000 {
            let n = next(v);
            assert!(newer(n, v) && !newer(v, n));
            assert!(garbage(v, n) && !garbage(n, n) && !garbage(next(n), n));
            v = n;
        }
    }

    #[test]
    fn map_issues_deletes_and_raises() {
        let m = VersionMap::from_words(&[0, 3 | DELETED]);
        assert_eq!(VERSION_MASK, (1 << 30) - 1);
        assert_eq!(m.len(), 2);
        assert_eq!(m.reserve(3).unwrap(), 2);
        assert_eq!(m.word(4), Some(0));
        assert_eq!(m.word(5), None);
        assert_eq!(m.delete(1), Some(false));
        assert_eq!(m.delete(0), Some(true));
        assert_eq!(m.delete(9), None);
        m.raise(2, 1);
        m.raise(2, 1);
        m.raise(2, 0); // older: ignored
        m.raise(1, 4);
        assert_eq!(m.snapshot(), vec![DELETED, 4 | DELETED, 1, 0, 0]);
        assert!(m.reserve(u32::MAX as usize).is_err());
    }
}
