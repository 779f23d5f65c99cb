//! Posting extents: rewriting a posting to a fresh extent, retiring a head,
//! and the frees and version raises deferred past earlier readers.

use super::{Batch, Counters};
use crate::hnsw::NodeId;
use crate::spann::alloc::Extent;
use crate::spann::epoch::Deferred;
use crate::spann::posting::{PostingBuilder, PAGE};
use crate::spann::slots::{Cell, State};
use crate::spann::{PostingSlot, Result, Spann};

impl Spann {
    /// Writes `entries` (each with its own version) as posting `h` into a
    /// fresh extent with room up to the length limit, publishes it and
    /// defers freeing the old extent. The caller holds `h`'s writer lock.
    pub(in crate::spann) fn rewrite(&self, h: u32, entries: &Batch) -> Result<()> {
        let dim = self.dim;
        let mut pb = PostingBuilder::default();
        let mut code = Vec::with_capacity(self.layout.code_bytes());
        for i in 0..entries.len() {
            code.clear();
            self.codec.encode_bytes(entries.row(i, dim), &mut code);
            pb.push(entries.ids[i], entries.vers[i], &code);
        }
        let mut bytes = Vec::new();
        pb.finish(h, self.layout, &mut bytes);
        let pages = ((bytes.len() / PAGE) as u32).max(self.params.max_posting_pages);
        let (extent, born) = self.alloc_extent(pages)?;
        if let Err(e) = self.postings_file.write_pages(extent.first_page, &bytes) {
            self.alloc.lock().release(extent, born, born);
            return Err(e);
        }
        let pc = self.slots.get(h as usize);
        let old = pc.set(Cell {
            slot: PostingSlot {
                first_page: extent.first_page,
                capacity: pages,
                count: entries.len() as u32,
                bytes: self.layout.bytes(entries.len()) as u32,
            },
            born,
            state: State::Live,
        });
        Counters::add(&self.stats.rewrites, 1);
        self.unlink(old);
        Ok(())
    }

    /// Allocates `pages` pages; a new end of the file is materialised at
    /// once (zeros), so `postings.dat` always spans every extent.
    fn alloc_extent(&self, pages: u32) -> Result<(Extent, u64)> {
        let mut a = self.alloc.lock();
        let before = a.file_pages();
        let extent = a.alloc(pages);
        let born = a.open_generation();
        if a.file_pages() > before {
            if let Err(e) = self.postings_file.set_len(a.file_pages() * PAGE as u64) {
                a.release(extent, born, born);
                return Err(e);
            }
        }
        Ok((extent, born))
    }

    /// Retires head `h` (its writer lock held by the caller): the slot keeps
    /// its extent for searches that already picked `h`, the head leaves the
    /// graph, and the extent is freed once those searches are done.
    pub(in crate::spann) fn retire(&self, h: u32) -> Result<()> {
        let old = self
            .slots
            .get(h as usize)
            .update(|c| c.state = State::Retired);
        self.heads.read().delete(NodeId(h))?;
        self.unlink(old);
        Ok(())
    }

    /// Defers freeing the extent of a slot no posting uses any more.
    fn unlink(&self, old: Cell) {
        if old.slot.capacity == 0 {
            return;
        }
        let tag = self.alloc.lock().open_generation();
        self.epochs.defer([Deferred::Free {
            extent: Extent {
                first_page: old.slot.first_page,
                pages: old.slot.capacity,
            },
            born: old.born,
            tag,
        }]);
    }

    /// Applies what earlier readers no longer hold up: version raises and
    /// extent frees (trimming the file when its end became free).
    pub(super) fn maintain(&self) {
        let items = self.epochs.collect();
        if items.is_empty() {
            return;
        }
        let mut a = self.alloc.lock();
        let before = a.file_pages();
        for d in items {
            match d {
                Deferred::Bump { id, version } => self.versions.raise(id, version),
                Deferred::Free { extent, born, tag } => a.release(extent, born, tag),
            }
        }
        if a.file_pages() < before {
            if let Err(e) = self.postings_file.set_len(a.file_pages() * PAGE as u64) {
                tracing::warn!("postings.dat not trimmed: {e}");
            }
        }
    }
}
