//! A growable array that never moves its elements: chunk `k` holds
//! `BASE << k` elements and is allocated (default-initialised) the first
//! time an index inside it is touched. Lookups take no lock (one `OnceLock`
//! load), so the version map and the posting table can grow while searches
//! read them.

use std::sync::OnceLock;

/// Elements of chunk 0.
const BASE: usize = 1024;
/// Chunks: enough for every `u32` index (`BASE · (2^23 − 1) > 2^32`).
const CHUNKS: usize = 23;

/// Chunked array of `T`; element addresses are stable for its lifetime.
pub(crate) struct SegVec<T> {
    chunks: [OnceLock<Box<[T]>>; CHUNKS],
}

/// Chunk and offset of element `i`.
#[inline]
fn locate(i: usize) -> (usize, usize) {
    let x = i / BASE + 1;
    let k = (usize::BITS - 1 - x.leading_zeros()) as usize;
    (k, i - BASE * ((1 << k) - 1))
}

impl<T: Default> SegVec<T> {
    pub(crate) fn new() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Element `i`, allocating its chunk if needed. `i` must be below 2^32.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &T {
        let (k, off) = locate(i);
        &self.chunks[k].get_or_init(|| (0..BASE << k).map(|_| T::default()).collect())[off]
    }

    /// Bytes held by the allocated chunks.
    pub(crate) fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .filter_map(OnceLock::get)
            .map(|c| c.len() * std::mem::size_of::<T>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn chunks_tile_the_index_space() {
        let mut expect = (0usize, 0usize);
        for i in 0..BASE * 40 {
            let (k, off) = locate(i);
            if (k, off) != expect {
                assert_eq!((k, off), (expect.0 + 1, 0), "index {i}");
            }
            assert!(off < BASE << k);
            expect = (k, off + 1);
        }
        let (k, off) = locate(u32::MAX as usize);
        assert!(k < CHUNKS && off < BASE << k);
    }

    #[test]
    fn elements_are_stable_and_shared() {
        let v: SegVec<AtomicU32> = SegVec::new();
        assert_eq!(v.bytes(), 0);
        v.get(5).store(7, Ordering::Relaxed);
        let p = v.get(5) as *const _;
        v.get(100_000).store(9, Ordering::Relaxed);
        assert_eq!(p, v.get(5) as *const _);
        assert_eq!(v.get(5).load(Ordering::Relaxed), 7);
        assert_eq!(v.get(100_000).load(Ordering::Relaxed), 9);
        assert_eq!(v.get(100_001).load(Ordering::Relaxed), 0);
        assert_eq!(v.bytes(), (BASE + (BASE << 6)) * 4, "only touched chunks");
    }
}
