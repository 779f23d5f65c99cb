//! Updating in place, concurrently, with SPFresh's LIRE protocol:
//! - insert: postings chosen by the RNG rule ([`super::assign`]); the new
//!   entries are appended to each as one chunk when they fit its extent and
//!   length limit, else the posting is rewritten (stale entries dropped) to
//!   a fresh extent, or split ([`super::split`]) when still over the limit;
//! - delete: a tombstone bit in the version map; stale copies are dropped
//!   when their posting is next rewritten;
//! - merge ([`Spann::compact`]): postings under `min_posting_len` live
//!   entries are drained (their vectors reassigned elsewhere first) and
//!   then retired; postings holding stale entries are rewritten.
//!
//! `insert_batch` places its vectors in rounds: assign every vector (in
//! parallel), append to every touched posting (in parallel, one writer per
//! posting), then place again what splits moved or what hit a posting that
//! a concurrent split retired meanwhile. A reassigned vector's version is
//! raised (deferred past earlier readers) only once a new copy is published.
//!
//! By job: [`insert`] (insert, delete, and the rows of lossy indexes),
//! [`place`] (assignment rounds, appends, new heads), [`compact`] (merges
//! and garbage rewrites), [`extent`] (rewrites, retirement and the deferred
//! frees), [`read`] (a posting's entries as updates see them), [`stats`].

mod compact;
mod extent;
mod insert;
mod place;
mod read;
mod stats;
#[cfg(test)]
mod tests;

pub(crate) use stats::Counters;
pub use stats::{SpaceStats, UpdateStats};

/// Vectors waiting to be placed: ids, rows (normalised) and the version
/// each copy is written with.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch {
    pub ids: Vec<u32>,
    pub vecs: Vec<f32>,
    pub vers: Vec<u32>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn row(&self, i: usize, dim: usize) -> &[f32] {
        &self.vecs[i * dim..(i + 1) * dim]
    }

    pub fn push(&mut self, id: u32, v: &[f32], version: u32) {
        self.ids.push(id);
        self.vecs.extend_from_slice(v);
        self.vers.push(version);
    }

    pub fn append(&mut self, other: Batch) {
        self.ids.extend(other.ids);
        self.vecs.extend(other.vecs);
        self.vers.extend(other.vers);
    }
}

/// A posting's entries as updates see them: members, and *leaving* copies
/// of vectors being moved elsewhere (kept on disk until the move completes,
/// but not counted towards the length limit).
#[derive(Clone, Debug, Default)]
pub(crate) struct Posting {
    pub live: Batch,
    pub leaving: Batch,
}

impl Posting {
    /// Every entry to keep when the posting is rewritten.
    pub fn kept(&self) -> Batch {
        let mut all = self.live.clone();
        all.append(self.leaving.clone());
        all
    }
}
