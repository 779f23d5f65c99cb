//! The SSD tier: a SPANN posting-list index (Chen et al., NeurIPS 2021),
//! updatable in place and concurrently with SPFresh's LIRE (Xu et al.,
//! SOSP 2023), crash-consistent through generations.
//!
//! Heads (about `head_ratio` of the vectors, picked by hierarchical balanced
//! k-means, [`cluster`]) live in memory in our own [`Hnsw`]. Every vector is
//! written to up to `replicas` postings chosen by the RNG rule ([`assign`]);
//! postings are runs of checksummed chunks in page-aligned extents of
//! `postings.dat` ([`posting`], [`file`], [`alloc`]). A query reads the
//! postings of its nearest heads in one parallel round ([`search`]).
//! Inserts, deletes, merges ([`update`]) and splits with reassignment
//! ([`split`]) run concurrently with each other and with searches, all
//! through `&self`. An index starts from a bulk build ([`Spann::build`]) or
//! empty ([`Spann::create`]).
//!
//! # Concurrency
//! - Each posting has a writer lock held across its I/O by the one update
//!   changing it (an append, a rewrite, a split); searches never take it.
//! - A posting's location (its *slot*) sits behind a tiny per-posting mutex
//!   that a search holds only to copy it. Bytes a slot covers are never
//!   changed while the slot can be read: an insert appends a chunk *after*
//!   them and then publishes the longer slot; a rewrite goes to a fresh
//!   extent and then swaps the slot. Freed extents are reused only after
//!   every search that could hold the old slot has finished ([`epoch`]).
//! - The version map and the deleted bits are atomics ([`versions`]); the
//!   head graph takes concurrent inserts itself and is behind a read-write
//!   lock only so its capacity can grow (a write lock held for a copy).
//!
//! What a search sees (with `nprobe` at least the live head count, so that
//! every posting is probed; with fewer it is approximate, as always):
//! - it returns no id whose delete returned before the search returned
//!   (results are checked against the deleted bits last);
//! - it returns every id whose insert returned before the search began and
//!   that was not deleted before the search returned;
//! - each id once, at the exact distance of its (immutable) vector.
//!
//! Splits, merges and reassignment keep this without a window:
//! - a split publishes both new postings before the old head is retired,
//!   and a retired posting's extent stays readable for searches that picked
//!   its head earlier;
//! - a reassigned vector's old copies stay on disk and visible while its
//!   new copies are written ([`versions`]: they only stop counting towards
//!   posting lengths); the new copies are published before its version is
//!   raised, and the raise is deferred until every search that began before
//!   then has finished, so no search sees the old copies turn stale while
//!   it could still miss the new ones;
//! - a merge places a posting's vectors elsewhere before retiring it, and
//!   leaves alone a posting holding a copy of a move still in flight.
//!
//! Concurrent splits make results differ run to run (which vectors become
//! heads depends on timing), not their correctness.
//!
//! # Lock order
//!
//! `Spann` holds six locks besides the per-posting ones. A thread holding
//! one takes others only further down this list, never up:
//!
//! 1. `checkpointing`: a whole [`Spann::checkpoint`] or
//!    [`Spann::release_before`].
//! 2. `ops` (the [`gate`]): entered shared by every update operation for its
//!    whole run (re-entrant per thread, for rayon's nested tasks); held
//!    exclusive by a checkpoint while it snapshots the in-memory state.
//! 3. `bootstrap`: the creation of a first head.
//! 4. The posting writer locks (`slots[h].write`, [`slots`]), held across a
//!    posting's I/O by the one update changing it. A thread holds one, except
//!    a split: it holds the old posting's and takes those of the heads it
//!    creates, which no other thread can hold yet (unpublished heads are
//!    never picked).
//! 5. `head_inserts`: shared by head inserts, exclusive while a checkpoint
//!    saves the head graph.
//! 6. `heads`: read for graph searches, inserts and deletes; written only to
//!    grow the graph's capacity.
//! 7. `alloc`: the extent allocator.
//! 8. Leaves, under which nothing is taken: `vectors_len`, a slot's cell
//!    mutex (held only to copy or publish it), the [`epoch`] queue's mutex
//!    and the head graph's own locks.
//!
//! Searches take only `heads` (read, released before any posting is read),
//! the slot cells and an epoch pin; they never wait for an update's I/O.
//!
//! # Durability
//! [`Spann::checkpoint`] writes generation G (`meta.<G>`, `heads.<G>.hnsw`;
//! see [`generation`]) without changing bytes that an older generation
//! references; [`Spann::open`] opens the newest generation,
//! [`Spann::open_generation`] a given one. Updates after the last
//! checkpoint are lost by a crash: the owner (a collection) replays them
//! from its WAL. Formats in docs/FORMAT.md. Every file is read and written
//! through the `quiver_storage` backend of [`OpenParams`].

pub mod alloc;
pub mod assign;
mod build;
pub mod cluster;
mod epoch;
mod error;
pub mod file;
mod gate;
pub mod generation;
mod lookup;
pub mod meta;
pub mod params;
pub mod posting;
mod search;
mod segvec;
mod slots;
mod split;
mod update;
pub mod versions;

pub use error::{Result, SpannError};
pub use file::IoMode;
pub use params::{Encoding, SearchParams, SpannParams};
pub use posting::{decode_posting, Entry, PostingLayout, PostingView};
pub use search::{Hit, SearchStats};
pub use update::{SpaceStats, UpdateStats};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use quiver_storage::Backend;

use crate::distance::{DistanceKernel, Metric};
use crate::hnsw::Hnsw;
use crate::score::{Prepared, VectorCodec, VectorError};
use alloc::Allocator;
use epoch::Epochs;
use file::{FileHeader, PageFile};
use gate::Gate;
use meta::MetaInfo;
use segvec::SegVec;
use slots::{PostingCell, State};
use update::Counters;
use versions::VersionMap;

/// Where one posting lives in `postings.dat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostingSlot {
    /// First page (page 0 is the header).
    pub first_page: u64,
    /// Pages reserved; 0 for an empty posting or a deleted head.
    pub capacity: u32,
    /// Entries written (stale ones included).
    pub count: u32,
    /// Bytes written (all chunks), from `first_page`.
    pub bytes: u32,
}

/// How an index is opened (or built, or created).
#[derive(Clone, Debug)]
pub struct OpenParams {
    /// Buffered or `O_DIRECT` reads.
    pub io: IoMode,
    /// Threads issuing posting reads in parallel (and scanning them).
    pub io_threads: usize,
    /// What every file of the index is read and written through.
    /// Default: the real file system.
    pub backend: Arc<dyn Backend>,
}

impl Default for OpenParams {
    fn default() -> Self {
        Self {
            io: IoMode::Buffered,
            io_threads: 32,
            backend: quiver_storage::backend::default_backend(),
        }
    }
}

/// A SPANN index open on a directory. `Send + Sync`: share it (e.g. in an
/// `Arc`) between searching and updating threads.
pub struct Spann {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    params: SpannParams,
    dim: usize,
    metric: Metric,
    nonce: u64,
    dist: DistanceKernel,
    codec: VectorCodec,
    layout: PostingLayout,
    heads: RwLock<Hnsw>,
    /// Per head (node of `heads`): its posting's slot and writer lock.
    slots: SegVec<PostingCell>,
    versions: VersionMap,
    alloc: Mutex<Allocator>,
    epochs: Epochs,
    /// Update operations enter it; a checkpoint's snapshot pauses them.
    ops: Gate,
    /// Head inserts hold it shared; a checkpoint exclusive while it saves
    /// the head graph (so the graph saved is the one snapshotted).
    head_inserts: RwLock<()>,
    /// Serialises checkpoints and releases.
    checkpointing: Mutex<()>,
    /// Serialises the creation of a first head.
    bootstrap: Mutex<()>,
    /// Heads being merged away (excluded from assignment).
    draining: AtomicUsize,
    /// Newest generation written (or opened).
    written: AtomicU64,
    postings_file: PageFile,
    vectors_file: Option<PageFile>,
    /// Length of `vectors.f32`, grown (never shrunk) under this lock.
    vectors_len: Mutex<u64>,
    io: rayon::ThreadPool,
    stats: Counters,
}

const POSTINGS_MAGIC: [u8; 8] = *b"QVSPPOST";
const VECTORS_MAGIC: [u8; 8] = *b"QVSPVECS";

fn header(magic: [u8; 8], info: &MetaInfo) -> FileHeader {
    FileHeader {
        magic,
        dim: info.dim as u32,
        encoding: info.params.encoding.code(),
        metric: info.metric.code(),
        nonce: info.nonce,
    }
}

impl Spann {
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn params(&self) -> &SpannParams {
        &self.params
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The backend the index's files go through.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Vector ids issued (deleted ones included).
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.len() == 0
    }

    /// Live heads (postings).
    pub fn heads(&self) -> usize {
        self.heads.read().live_len()
    }

    /// The head graph, read-locked: drop the guard soon (head inserts that
    /// must grow the graph wait for it).
    pub fn head_index(&self) -> RwLockReadGuard<'_, Hnsw> {
        self.heads.read()
    }

    /// Whether `id` exists and is not deleted.
    pub fn contains(&self, id: u32) -> bool {
        self.versions
            .word(id)
            .is_some_and(|w| w & versions::DELETED == 0)
    }

    /// Resident bytes: head graph and vectors, posting table, version map,
    /// quantizer (the page cache is not counted).
    pub fn memory_bytes(&self) -> usize {
        self.heads.read().memory_bytes()
            + self.slots.bytes()
            + self.versions.bytes()
            + self.codec.sq8().map_or(0, |q| q.serialized_len())
            + std::mem::size_of::<Self>()
    }

    /// Entry counts of the live postings (stale entries included).
    pub fn posting_lengths(&self) -> Vec<u32> {
        let n = self.heads.read().len();
        (0..n)
            .map(|h| self.slots.get(h).get())
            .filter(|c| c.state == State::Live && c.slot.capacity > 0)
            .map(|c| c.slot.count)
            .collect()
    }

    /// Bytes of `postings.dat` in use (the allocated end of the file).
    pub fn disk_bytes(&self) -> u64 {
        self.alloc.lock().file_pages() * posting::PAGE as u64
    }

    /// Statistics of the updates applied since open.
    pub fn update_stats(&self) -> UpdateStats {
        self.stats.load()
    }

    /// The newest generation written (by a checkpoint) or opened.
    pub fn generation(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Checks and normalises a vector (a copy) for this index's metric.
    fn prepare<'a>(
        &self,
        v: &[f32],
        what: impl Fn() -> String,
        out: &'a mut Vec<f32>,
    ) -> Result<Prepared<'a>> {
        prepare(v, self.dim, self.metric, what, out)
    }
}

/// Checks that postings of `max_posting_pages` hold a few vectors of this
/// dimension and encoding (a split needs something to split).
pub(crate) fn check_posting_room(dim: usize, params: &SpannParams) -> Result<()> {
    let layout = PostingLayout {
        dim,
        encoding: params.encoding,
    };
    let fit = layout.max_entries(params.max_posting_pages as usize);
    if fit < 4 {
        return Err(SpannError::param(
            "max_posting_pages",
            format!(
                "{} holds {fit} vectors of dimension {dim} ({:?}); at least 4 are needed",
                params.max_posting_pages, params.encoding
            ),
        ));
    }
    Ok(())
}

/// Checks a vector's length and values; normalises a copy for cosine.
/// `what` names the vector in errors.
pub(crate) fn prepare<'a>(
    v: &[f32],
    dim: usize,
    metric: Metric,
    what: impl Fn() -> String,
    out: &'a mut Vec<f32>,
) -> Result<Prepared<'a>> {
    crate::score::prepare(v, dim, metric, out).map_err(|e| match e {
        VectorError::Dimension { expected, got } => SpannError::Dimension {
            what: what(),
            expected,
            got,
        },
        VectorError::NonFinite { index } => SpannError::NonFinite {
            what: what(),
            index,
        },
        VectorError::ZeroNorm => SpannError::ZeroNorm { what: what() },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn spann_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Spann>();
    }
}
