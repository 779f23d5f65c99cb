//! Contiguous, aligned storage of fixed-size codes (f32, f16 or u8 elements)
//! with write-once slots.
//!
//! A slot holds `len` elements of `T`. Its stride is the code's byte size
//! rounded up to a multiple of 64 (or, for codes under 64 bytes, to the next
//! power of two), so no code straddles a cache line more than it must and a
//! code of 64 bytes or more starts on a cache line. The buffer comes from a
//! zeroed allocation of plain bytes (the allocator's `calloc` path), so the OS
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
use std::marker::PhantomData;

const LINE: usize = 64;

/// Bytes between consecutive slots for codes of `code_bytes` bytes.
fn stride_for(code_bytes: usize) -> usize {
    if code_bytes >= LINE {
        code_bytes.next_multiple_of(LINE)
    } else {
        code_bytes.next_power_of_two().max(4)
    }
}

/// Fixed-capacity aligned arena of codes of `len` elements of `T`.
///
/// `T` is a plain numeric type (f32, f16, u8) for which all-zero bytes are a
/// valid value and whose alignment is at most 4.
pub(crate) struct Arena<T> {
    cells: Box<[UnsafeCell<u8>]>,
    /// Index of the first 64-byte-aligned byte in `cells`.
    offset: usize,
    /// Elements per code.
    len: usize,
    /// Bytes per slot (a multiple of 4).
    stride: usize,
    capacity: usize,
    _elem: PhantomData<T>,
}

// SAFETY: slots are written once by their reserving thread before publication
// (see the module docs); all other access is shared reads of published slots.
unsafe impl<T: Sync> Sync for Arena<T> {}
// SAFETY: the arena owns its buffer; moving it between threads is sound.
unsafe impl<T: Send> Send for Arena<T> {}

/// A zeroed, lazily committed buffer of `n` bytes.
fn zeroed_cells(n: usize) -> Box<[UnsafeCell<u8>]> {
    let zeroed: Box<[u8]> = vec![0u8; n].into_boxed_slice();
    // SAFETY: `UnsafeCell<T>` has the same in-memory representation as `T`,
    // so a boxed slice of u8 is a valid boxed slice of `UnsafeCell<u8>` of
    // the same length (and is freed with the same layout).
    unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [UnsafeCell<u8>]) }
}

/// `n` zeroed atomics from a zeroed allocation (the allocator's `calloc`
/// path), so pages are committed only as entries are first written.
pub(crate) fn zeroed_atomic_u32s(n: usize) -> Box<[std::sync::atomic::AtomicU32]> {
    let zeroed: Box<[u32]> = vec![0u32; n].into_boxed_slice();
    // SAFETY: `AtomicU32` has the same size, alignment and bit validity as
    // `u32` (documented in std), so a boxed slice of u32 is a valid boxed
    // slice of `AtomicU32` of the same length, freed with the same layout.
    unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [std::sync::atomic::AtomicU32]) }
}

impl<T: bytemuck::Pod> Arena<T> {
    /// An arena of `capacity` zeroed codes of `len` elements.
    pub(crate) fn new(len: usize, capacity: usize) -> Self {
        const { assert!(std::mem::align_of::<T>() <= 4) };
        let stride = stride_for(len * std::mem::size_of::<T>());
        let cells = zeroed_cells(stride * capacity + LINE);
        let offset = (LINE - cells.as_ptr() as usize % LINE) % LINE;
        Self {
            cells,
            offset,
            len,
            stride,
            capacity,
            _elem: PhantomData,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Elements per code.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the arena (including alignment padding).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.cells.len()
    }

    /// Bytes of the arena the OS has committed once slots `0..len` are
    /// written: the buffer is a zeroed allocation whose pages are committed
    /// on first write, so a partly filled arena holds about `len` slots
    /// (rounded up to whole pages), not its capacity.
    pub(crate) fn committed_bytes(&self, len: usize) -> usize {
        const PAGE: usize = 4096;
        (self.offset + len.min(self.capacity) * self.stride)
            .next_multiple_of(PAGE)
            .min(self.cells.len())
    }

    /// The code in slot `id`. `id` must be below capacity.
    #[inline(always)]
    pub(crate) fn get(&self, id: u32) -> &[T] {
        let start = self.offset + id as usize * self.stride;
        let cells = &self.cells[start..start + self.len * std::mem::size_of::<T>()];
        // SAFETY: `cells` is an in-bounds range of `len * size_of::<T>()`
        // bytes; its start is aligned for `T` (the base is 64-byte aligned,
        // the stride a multiple of 4 and `align_of::<T>() <= 4`); every bit
        // pattern is a valid `T` (`Pod`); `UnsafeCell<u8>` has the layout of
        // u8. Slots are only read after publication, when no writer touches
        // them.
        unsafe { std::slice::from_raw_parts(cells.as_ptr() as *const T, self.len) }
    }

    /// Writes slot `id`.
    ///
    /// The caller must hold the slot exclusively: it was reserved by this
    /// thread and not yet published (or the caller holds `&mut` to the owner).
    pub(crate) fn write_unpublished(&self, id: u32, code: &[T]) {
        assert_eq!(code.len(), self.len);
        let start = self.offset + id as usize * self.stride;
        let cells = &self.cells[start..start + self.len * std::mem::size_of::<T>()];
        // SAFETY: in bounds (the slice above is checked) and aligned for `T`
        // (see `get`); writing through `UnsafeCell::get` is allowed, and the
        // slot is exclusive per the caller's contract, so no reader or other
        // writer aliases it now.
        let dst = unsafe { std::slice::from_raw_parts_mut(cells[0].get() as *mut T, self.len) };
        dst.copy_from_slice(code);
    }

    /// Grows the arena to `capacity` slots, keeping the contents.
    pub(crate) fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        let bigger = Arena::new(self.len, capacity);
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
        let mut s = Arena::<f32>::new(17, 3);
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

    #[test]
    fn small_codes_pack_without_straddling_lines() {
        assert_eq!(stride_for(384), 384);
        assert_eq!(stride_for(385), 448);
        assert_eq!(stride_for(64), 64);
        assert_eq!(stride_for(24), 32);
        assert_eq!(stride_for(1), 4);
        let s = Arena::<u8>::new(24, 100);
        assert!(s.bytes() <= 32 * 100 + 64);
        for i in 0..100u32 {
            let start = s.get(i).as_ptr() as usize;
            assert_eq!(start / 64, (start + 23) / 64, "slot {i} straddles a line");
        }
        let h = Arena::<half::f16>::new(5, 4);
        h.write_unpublished(3, &[half::f16::ONE; 5]);
        assert_eq!(h.get(3), &[half::f16::ONE; 5]);
        assert_eq!(h.get(2), &[half::f16::ZERO; 5]);
    }
}
