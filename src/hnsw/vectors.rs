//! Contiguous, 64-byte-aligned vector storage with write-once slots.
//!
//! Every vector occupies `stride` floats (its dimension rounded up to 16), so
//! each one starts on a cache line. The buffer comes from a zeroed
//! allocation of plain f32 (the allocator's `calloc` path), so the OS
//! commits pages only as slots are written: a bulk build that frees its
//! source while copying peaks at about one copy of the data.
//!
//! A slot is written exactly once, by the inserter that reserved it, before
//! the slot's id is published to any other thread (through a release store
//! into a link list or the entry point); readers only see ids that were
//! published, so they never observe a slot while it is being written. That
//! protocol is what makes the `unsafe` here sound; it is upheld by
//! [`super::Hnsw`], the only user.

use std::cell::UnsafeCell;

const LINE_FLOATS: usize = 16;

/// Fixed-capacity aligned vector arena.
pub(crate) struct VectorStore {
    cells: Box<[UnsafeCell<f32>]>,
    /// Index of the first 64-byte-aligned float in `cells`.
    offset: usize,
    dim: usize,
    stride: usize,
    capacity: usize,
}

// SAFETY: slots are written once by their reserving thread before publication
// (see the module docs); all other access is shared reads of published slots.
unsafe impl Sync for VectorStore {}
// SAFETY: the store owns its buffer; moving it between threads is sound.
unsafe impl Send for VectorStore {}

/// A zeroed, lazily committed buffer of `n` floats.
fn zeroed_cells(n: usize) -> Box<[UnsafeCell<f32>]> {
    let zeroed: Box<[f32]> = vec![0f32; n].into_boxed_slice();
    // SAFETY: `UnsafeCell<T>` has the same in-memory representation as `T`,
    // so a boxed slice of f32 is a valid boxed slice of `UnsafeCell<f32>` of
    // the same length (and is freed with the same layout).
    unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [UnsafeCell<f32>]) }
}

impl VectorStore {
    pub(crate) fn new(dim: usize, capacity: usize) -> Self {
        let stride = dim.div_ceil(LINE_FLOATS).max(1) * LINE_FLOATS;
        let cells = zeroed_cells(stride * capacity + LINE_FLOATS);
        let misalign = (cells.as_ptr() as usize % 64) / 4;
        let offset = (LINE_FLOATS - misalign) % LINE_FLOATS;
        Self {
            cells,
            offset,
            dim,
            stride,
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the arena (including alignment padding).
    pub(crate) fn bytes(&self) -> usize {
        self.cells.len() * 4
    }

    /// The vector in slot `id`. `id` must be below capacity.
    #[inline(always)]
    pub(crate) fn get(&self, id: u32) -> &[f32] {
        let start = self.offset + id as usize * self.stride;
        let cells = &self.cells[start..start + self.dim];
        // SAFETY: `cells` is an in-bounds range of `dim` contiguous
        // `UnsafeCell<f32>`, which have the layout of f32. Slots are only read
        // after publication, when no writer touches them.
        unsafe { std::slice::from_raw_parts(cells.as_ptr() as *const f32, self.dim) }
    }

    /// Writes slot `id`.
    ///
    /// The caller must hold the slot exclusively: it was reserved by this
    /// thread and not yet published (or the caller holds `&mut` to the owner).
    pub(crate) fn write_unpublished(&self, id: u32, v: &[f32]) {
        assert_eq!(v.len(), self.dim);
        let start = self.offset + id as usize * self.stride;
        let cells = &self.cells[start..start + self.dim];
        // SAFETY: in bounds (the slice above is checked); writing through
        // `UnsafeCell::get` is allowed, and the slot is exclusive per the
        // caller's contract, so no reader or other writer aliases it now.
        let dst = unsafe { std::slice::from_raw_parts_mut(cells[0].get(), self.dim) };
        dst.copy_from_slice(v);
    }

    /// Grows the arena to `capacity` slots, keeping the contents.
    pub(crate) fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        let bigger = VectorStore::new(self.dim, capacity);
        for id in 0..self.capacity as u32 {
            bigger.write_unpublished(id, self.get(id));
        }
        *self = bigger;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_round_trip() {
        let mut s = VectorStore::new(17, 3);
        for i in 0..3u32 {
            let v: Vec<f32> = (0..17).map(|j| (i * 100 + j) as f32).collect();
            s.write_unpublished(i, &v);
        }
        for i in 0..3u32 {
            assert_eq!(s.get(i).as_ptr() as usize % 64, 0);
            assert_eq!(s.get(i)[16], (i * 100 + 16) as f32);
        }
        s.grow(10);
        assert_eq!(s.get(2)[0], 200.0);
        assert_eq!(s.get(9).as_ptr() as usize % 64, 0);
        assert_eq!(s.capacity(), 10);
    }
}
