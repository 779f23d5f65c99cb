//! Grace periods for readers. A search (or an update reading postings)
//! *pins* the current epoch for its whole duration. Actions that could
//! hurt a reader that started earlier are *deferred* into the current
//! epoch instead of done at once:
//! - reusing a posting extent a reader may still be reading (the slot it
//!   copied pointed there), and
//! - raising an id's version after a reassignment, which would turn copies
//!   an earlier reader relies on into garbage.
//!
//! [`Epochs::collect`] closes the current epoch (when it has deferred
//! items) and hands back the items of closed epochs whose readers, and the
//! readers of every older epoch, have all unpinned. Each epoch is an
//! `Arc<()>`: a pin is a clone, and a closed epoch is quiet once the queue
//! holds its only reference.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::alloc::Extent;

/// An action waiting for earlier readers to finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deferred {
    /// Free a posting extent: allocated in generation `born`, unlinked while
    /// generation `tag` was open (see [`super::alloc`]).
    Free { extent: Extent, born: u64, tag: u64 },
    /// Raise the version of `id` to `version`.
    Bump { id: u32, version: u32 },
}

/// Held by a reader for as long as it may use what it read.
pub(crate) struct Pin(#[allow(dead_code)] Arc<()>);

#[derive(Default)]
struct State {
    current: Arc<()>,
    items: Vec<Deferred>,
    closed: VecDeque<(Arc<()>, Vec<Deferred>)>,
}

/// The epochs of one index.
#[derive(Default)]
pub(crate) struct Epochs {
    state: Mutex<State>,
}

impl Epochs {
    /// Pins the current epoch.
    pub(crate) fn pin(&self) -> Pin {
        Pin(self.state.lock().current.clone())
    }

    /// Defers `items` until every reader pinned now has unpinned.
    pub(crate) fn defer(&self, items: impl IntoIterator<Item = Deferred>) {
        self.state.lock().items.extend(items);
    }

    /// Closes the current epoch if it holds items, and returns the items
    /// that no reader can be affected by any more, oldest first.
    pub(crate) fn collect(&self) -> Vec<Deferred> {
        let mut s = self.state.lock();
        if !s.items.is_empty() {
            let items = std::mem::take(&mut s.items);
            let old = std::mem::take(&mut s.current);
            s.closed.push_back((old, items));
        }
        let mut ready = Vec::new();
        while s
            .closed
            .front()
            .is_some_and(|(e, _)| Arc::strong_count(e) == 1)
        {
            if let Some((_, items)) = s.closed.pop_front() {
                ready.extend(items);
            }
        }
        ready
    }

    /// Every deferred item not yet collected (for a checkpoint's snapshot).
    pub(crate) fn pending(&self) -> Vec<Deferred> {
        let s = self.state.lock();
        s.closed
            .iter()
            .flat_map(|(_, items)| items.iter().copied())
            .chain(s.items.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(id: u32) -> Deferred {
        Deferred::Bump { id, version: 1 }
    }

    #[test]
    fn items_wait_for_earlier_readers_in_order() {
        let e = Epochs::default();
        let early = e.pin();
        e.defer([bump(1)]);
        assert!(e.collect().is_empty(), "a reader pinned before the item");
        let late = e.pin();
        e.defer([bump(2)]);
        assert!(e.collect().is_empty());
        drop(late);
        // Item 2's own readers are gone, but item 1 (older) still waits, and
        // items come out in order.
        assert!(e.collect().is_empty());
        drop(early);
        assert_eq!(e.collect(), vec![bump(1), bump(2)]);
        assert!(e.pending().is_empty());
        // No reader: ready at once.
        e.defer([bump(3)]);
        assert_eq!(e.pending(), vec![bump(3)]);
        assert_eq!(e.collect(), vec![bump(3)]);
        // A reader pinned after the item was deferred does not hold it up
        // once the epoch is closed.
        e.defer([bump(4)]);
        let p = e.pin();
        assert!(e.collect().is_empty(), "same epoch: must wait");
        e.defer([bump(5)]);
        let q = e.pin();
        drop(p);
        assert_eq!(e.collect(), vec![bump(4)]);
        drop(q);
        assert_eq!(e.collect(), vec![bump(5)]);
    }
}
