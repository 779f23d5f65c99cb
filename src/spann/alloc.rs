//! Extents of `postings.dat`: a first-fit free list of page runs, and the
//! rule that keeps every written generation readable.
//!
//! Generations (see [`super::generation`]): `open` is the number the next
//! checkpoint will write; every extent records the `open` generation it was
//! allocated in (`born`) and, when a posting stops using it, the `open`
//! generation at that moment (`tag`). Generations `born..tag` may reference
//! it; later ones cannot. So a freed extent is reusable at once when
//! `born == tag` (no checkpoint saw it), and otherwise only once every
//! generation before `tag` is gone from disk (`oldest >= tag`, raised by
//! `release_before`). Until then it waits in `pending`. Free runs at the
//! end of the file are trimmed off.

use std::collections::BTreeMap;

/// A run of pages of `postings.dat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Extent {
    /// First page (page 0 is the header).
    pub first_page: u64,
    /// Pages.
    pub pages: u32,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.first_page + u64::from(self.pages)
    }
}

/// A free extent as recorded in `meta`: reusable once the oldest
/// generation on disk is at least `tag` (0: reusable now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeExtent {
    pub extent: Extent,
    pub tag: u64,
}

/// The allocator of one index.
#[derive(Debug)]
pub(crate) struct Allocator {
    /// Pages in the file (header included): the end of the allocated space.
    file_pages: u64,
    /// Reusable runs, coalesced: first page → pages.
    free: BTreeMap<u64, u32>,
    /// Freed runs that an older generation on disk may still reference.
    pending: Vec<FreeExtent>,
    /// The generation the next checkpoint writes.
    open: u64,
    /// The oldest generation still on disk.
    oldest: u64,
}

/// Page counts of the allocator, for statistics.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    pub file_pages: u64,
    pub free_pages: u64,
    pub pending_pages: u64,
}

impl Allocator {
    /// The allocator of a file of `file_pages` pages with free runs `free`,
    /// opened at generation `generation` while `oldest` is the oldest on disk.
    pub(crate) fn new(
        file_pages: u64,
        free: impl IntoIterator<Item = FreeExtent>,
        generation: u64,
        oldest: u64,
    ) -> Self {
        let mut a = Self {
            file_pages: file_pages.max(1),
            free: BTreeMap::new(),
            pending: Vec::new(),
            open: generation + 1,
            oldest,
        };
        for f in free {
            a.put(f);
        }
        a.trim();
        a
    }

    /// The generation the next checkpoint writes.
    pub(crate) fn open_generation(&self) -> u64 {
        self.open
    }

    /// Starts the next generation (a checkpoint took its snapshot).
    pub(crate) fn advance(&mut self) -> u64 {
        let g = self.open;
        self.open += 1;
        g
    }

    /// `pages` pages, first fit (lowest address), else at the end of the file.
    pub(crate) fn alloc(&mut self, pages: u32) -> Extent {
        let hit = self
            .free
            .iter()
            .find(|(_, &n)| n >= pages)
            .map(|(&f, &n)| (f, n));
        if let Some((first, n)) = hit {
            self.free.remove(&first);
            if n > pages {
                self.free.insert(first + u64::from(pages), n - pages);
            }
            return Extent {
                first_page: first,
                pages,
            };
        }
        let e = Extent {
            first_page: self.file_pages,
            pages,
        };
        self.file_pages += u64::from(pages);
        e
    }

    /// Takes back an extent allocated in generation `born` and unlinked
    /// while generation `tag` was open.
    pub(crate) fn release(&mut self, extent: Extent, born: u64, tag: u64) {
        if extent.pages == 0 {
            return;
        }
        let tag = if born == tag { 0 } else { tag };
        self.put(FreeExtent { extent, tag });
        self.trim();
    }

    /// Generations before `oldest` are gone from disk: what only they
    /// referenced becomes reusable.
    pub(crate) fn set_oldest(&mut self, oldest: u64) {
        self.oldest = self.oldest.max(oldest);
        let pending = std::mem::take(&mut self.pending);
        for f in pending {
            self.put(f);
        }
        self.trim();
    }

    fn put(&mut self, f: FreeExtent) {
        if f.tag > self.oldest {
            self.pending.push(f);
            return;
        }
        let mut first = f.extent.first_page;
        let mut pages = u64::from(f.extent.pages);
        if let Some((&pf, &pn)) = self.free.range(..first).next_back() {
            if pf + u64::from(pn) == first && pages + u64::from(pn) <= u64::from(u32::MAX) {
                self.free.remove(&pf);
                first = pf;
                pages += u64::from(pn);
            }
        }
        let end = first + pages;
        if let Some(&nn) = self.free.get(&end) {
            if pages + u64::from(nn) <= u64::from(u32::MAX) {
                self.free.remove(&end);
                pages += u64::from(nn);
            }
        }
        self.free.insert(first, pages as u32);
    }

    /// Drops free runs that end the file.
    fn trim(&mut self) {
        while let Some((&f, &n)) = self.free.iter().next_back() {
            if f + u64::from(n) != self.file_pages {
                break;
            }
            self.free.remove(&f);
            self.file_pages = f;
        }
    }

    pub(crate) fn file_pages(&self) -> u64 {
        self.file_pages
    }

    pub(crate) fn usage(&self) -> Usage {
        Usage {
            file_pages: self.file_pages,
            free_pages: self.free.values().map(|&n| u64::from(n)).sum(),
            pending_pages: self.pending.iter().map(|f| u64::from(f.extent.pages)).sum(),
        }
    }

    /// The free list as `meta` records it.
    pub(crate) fn snapshot(&self) -> Vec<FreeExtent> {
        self.free
            .iter()
            .map(|(&first_page, &pages)| FreeExtent {
                extent: Extent { first_page, pages },
                tag: 0,
            })
            .chain(self.pending.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(first_page: u64, pages: u32) -> Extent {
        Extent { first_page, pages }
    }

    #[test]
    fn first_fit_split_coalesce_and_trim() {
        let mut a = Allocator::new(1, [], 1, 1);
        assert_eq!(a.open_generation(), 2);
        let x = a.alloc(4);
        let y = a.alloc(2);
        let z = a.alloc(3);
        assert_eq!((x, y, z), (ext(1, 4), ext(5, 2), ext(7, 3)));
        // Born in the open generation: reusable at once.
        a.release(x, 2, 2);
        assert_eq!(a.alloc(3), ext(1, 3));
        assert_eq!(a.alloc(2), ext(10, 2), "the 1-page hole is too small");
        a.release(y, 2, 2);
        assert_eq!(a.usage().free_pages, 3, "pages 4..7 coalesced");
        // Freeing the last extent trims the file.
        a.release(ext(10, 2), 2, 2);
        a.release(z, 2, 2);
        assert_eq!(a.file_pages(), 4);
        assert_eq!(a.usage().free_pages, 0);
    }

    #[test]
    fn extents_seen_by_a_generation_wait_for_its_release() {
        let mut a = Allocator::new(1, [], 1, 1);
        let x = a.alloc(4);
        let _keep = a.alloc(1);
        assert_eq!(a.advance(), 2); // checkpoint 2 references x
        a.release(x, 2, a.open_generation());
        assert_eq!(a.usage().pending_pages, 4);
        assert_eq!(a.alloc(2), ext(6, 2), "not reused before release");
        let snap = a.snapshot();
        assert_eq!(snap, vec![FreeExtent { extent: x, tag: 3 }]);
        a.set_oldest(2);
        assert_eq!(a.usage().pending_pages, 4, "generation 2 still needs it");
        a.set_oldest(3);
        assert_eq!(a.usage().pending_pages, 0);
        assert_eq!(a.alloc(4), x);
        // Reopening from a snapshot restores the same rule.
        let b = Allocator::new(8, snap.clone(), 3, 2);
        assert_eq!(b.usage().pending_pages, 4);
        let c = Allocator::new(8, snap, 3, 3);
        assert_eq!(c.usage().free_pages, 4);
    }
}
