//! Contiguous, 64-byte-aligned vector storage with write-once slots.
//!
//! Every vector occupies `stride` floats (its dimension rounded up to 16), so
//! each one starts on a cache line. A slot is written exactly once, by the
//! inserter that reserved it, before the slot's id is published to any other
//! thread (through a release store into a link list or the entry point);
//! readers only see ids that were published, so they never observe a slot
//! while it is being written. That protocol is what makes the `unsafe` here
//! sound; it is upheld by [`super::Hnsw`], the only user.

use std::cell::UnsafeCell;

/// One cache line of floats; the unit of allocation.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([f32; 16]);

const LINE_FLOATS: usize = 16;

/// Fixed-capacity aligned vector arena.
pub(crate) struct VectorStore {
    lines: Box<[UnsafeCell<Line>]>,
    dim: usize,
    stride_lines: usize,
    capacity: usize,
}

// SAFETY: slots are written once by their reserving thread before publication
// (see the module docs); all other access is shared reads of published slots.
unsafe impl Sync for VectorStore {}
// SAFETY: the store owns its buffer; moving it between threads is sound.
unsafe impl Send for VectorStore {}

impl VectorStore {
    pub(crate) fn new(dim: usize, capacity: usize) -> Self {
        let stride_lines = dim.div_ceil(LINE_FLOATS).max(1);
        let total = stride_lines * capacity;
        // Zeroed allocation: the OS maps pages lazily, so memory is only
        // committed as slots are written (a bulk build that frees its source
        // while copying then peaks at about one copy of the data).
        let zeroed: Box<[Line]> = bytemuck::zeroed_slice_box(total);
        // SAFETY: `UnsafeCell<T>` has the same in-memory representation as
        // `T`, so a boxed slice of `Line` is a valid boxed slice of
        // `UnsafeCell<Line>` of the same length.
        let lines = unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [UnsafeCell<Line>]) };
        Self {
            lines,
            dim,
            stride_lines,
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the arena (including alignment padding).
    pub(crate) fn bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
    }

    /// The vector in slot `id`. `id` must be below capacity.
    #[inline(always)]
    pub(crate) fn get(&self, id: u32) -> &[f32] {
        let start = id as usize * self.stride_lines;
        assert!(start + self.stride_lines <= self.lines.len());
        // SAFETY: the range is in bounds (checked above); `Line` is repr(C)
        // `[f32; 16]`, so the lines of a slot are `stride_lines * 16`
        // contiguous floats of which the first `dim` are the vector. Slots are
        // only read after publication, when no writer touches them.
        unsafe { std::slice::from_raw_parts(self.lines[start].get() as *const f32, self.dim) }
    }

    /// Writes slot `id`.
    ///
    /// The caller must hold the slot exclusively: it was reserved by this
    /// thread and not yet published (or the caller holds `&mut` to the owner).
    pub(crate) fn write_unpublished(&self, id: u32, v: &[f32]) {
        assert_eq!(v.len(), self.dim);
        let start = id as usize * self.stride_lines;
        assert!(start + self.stride_lines <= self.lines.len());
        // SAFETY: in bounds (checked above); exclusive per the caller's
        // contract, so no reader or other writer aliases this slot now.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(self.lines[start].get() as *mut f32, self.dim)
        };
        dst.copy_from_slice(v);
    }

    /// Grows the arena to `capacity` slots, keeping the contents.
    pub(crate) fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        let total = self.stride_lines * capacity;
        let mut lines = Vec::with_capacity(total);
        for cell in std::mem::take(&mut self.lines).into_vec() {
            lines.push(cell);
        }
        lines.resize_with(total, || UnsafeCell::new(Line([0.0; LINE_FLOATS])));
        self.lines = lines.into_boxed_slice();
        self.capacity = capacity;
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
        assert_eq!(s.capacity(), 10);
    }
}
