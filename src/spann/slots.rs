//! The posting table: per head, where its posting lives (the slot, behind a
//! mutex held only to copy or publish it), the writer lock held by the one
//! update changing the posting, and whether a merge is draining it.
//!
//! A head's posting is *unborn* between the head's insert into the graph
//! and its first publication (writers that find it then retry elsewhere),
//! *live*, or *retired* once a split or merge removed the head: a retired
//! slot keeps pointing at its extent so searches that picked the head
//! earlier can still read it; the extent is freed through the epochs.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use parking_lot::Mutex;

use super::PostingSlot;

/// Lifecycle of a head's posting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum State {
    #[default]
    Unborn,
    Live,
    Retired,
}

/// A slot with its bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cell {
    pub slot: PostingSlot,
    /// Generation open when the slot's extent was allocated.
    pub born: u64,
    pub state: State,
}

/// One head's entry in the posting table.
#[derive(Default)]
pub(crate) struct PostingCell {
    /// Held across I/O by the update changing this posting.
    pub write: Mutex<()>,
    cell: Mutex<Cell>,
    /// Merges moving the posting's vectors away (non-zero: no appends).
    pub draining: AtomicU32,
    /// Set once the slot left `Unborn`: the head's insert into the graph
    /// completed, so its vector may be read.
    published: AtomicBool,
}

impl PostingCell {
    /// A copy of the slot.
    #[inline]
    pub fn get(&self) -> Cell {
        *self.cell.lock()
    }

    /// Publishes `cell`; returns the previous one.
    pub fn set(&self, cell: Cell) -> Cell {
        self.update(|c| *c = cell)
    }

    /// Applies `f` to the slot under its mutex; returns the previous one.
    pub fn update(&self, f: impl FnOnce(&mut Cell)) -> Cell {
        let mut c = self.cell.lock();
        let old = *c;
        f(&mut c);
        if c.state != State::Unborn {
            self.published.store(true, Ordering::Release);
        }
        old
    }

    /// Whether the head's insert completed (lock-free).
    #[inline]
    pub fn published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }
}
