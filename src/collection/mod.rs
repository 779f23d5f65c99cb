//! Collections: the unit users create, write and search.
//!
//! A collection lives in one directory: `config.json` (its settings), a
//! write-ahead log (`wal/`), a manifest, and the files of its checkpointed
//! segments. Each write is validated, appended to the WAL (durable under
//! the collection's fsync policy), applied to the active memory tier (an HNSW
//! segment: stored in a node, not yet linked into the graph), then
//! acknowledged, so a search issued after an acknowledged write sees it:
//! a segment's unlinked nodes (its *unindexed buffer*) are scanned exactly
//! by every search, and a background indexer (`indexer.rs`) links them into
//! the graph at low priority. Writers wait while the buffer holds more than
//! `index_buffer_points` (with 0, a write links its points itself). When the active segment is full it is frozen (still
//! searchable, deletes only) and a fresh one takes writes; a background
//! checkpoint writes frozen segments to disk, commits a new manifest and
//! truncates the WAL. Reopening loads the checkpointed segments and replays
//! the WAL after the checkpoint.
//!
//! Concurrency: writers queue their WAL record and apply it under one mutex
//! (WAL order = apply order) and wait for the fsync outside it, so
//! concurrent writers share fsyncs (group commit); searches take no lock for
//! their duration, only brief read locks to snapshot the segment list and to
//! check candidates against the id map.
//!
//! # Lock order
//!
//! A thread holding one of `Collection`'s locks takes others only further
//! down this list, never up:
//!
//! 1. `checkpointing`: held for a whole checkpoint (one at a time).
//! 2. `writer`: held while a write is logged and applied, while the active
//!    segment rotates, and while a checkpoint picks its LSN and frozen set.
//! 3. `map`: written by the write path (which drops replaced copies under
//!    it) and by a merge's switch to SSD copies; read by `get`, `scroll`,
//!    `count` and a search's currency check.
//! 4. `segments`: the list snapshot; held only to read or swap it.
//! 5. `store`: held while a checkpoint writes files and commits the manifest.
//! 6. `ssd`: held only to clone the tier's `Arc` (or to install it once).
//! 7. `merges`, `background`, `schema`: leaves (`schema` is written only
//!    under `writer`).
//!
//! The WAL's and the tiers' own locks (`Segment`, `SsdTier`, `Hnsw`,
//! `Spann`) come after all of these: they are taken under them and never
//! call back into the collection. No lock of the collection is held while
//! waiting for a WAL acknowledgement or joining a background checkpoint.
//!
//! A segment's batch lock (`Segment::index_batch`, one linking batch at a
//! time) is taken by the indexer thread holding no collection lock, by a
//! checkpoint holding only `checkpointing`, and by a writer under `writer`
//! (an SQ8 re-encode, or `index_buffer_points` 0); under it only the HNSW's
//! own locks are taken, and it is always taken outside the background pool,
//! so no pool thread waits for it. The indexer's condition variables are
//! leaves: a writer waits for buffer room before it takes `writer`.
//!
//! The code lives by job: `write.rs` (upsert, delete, rotation),
//! `indexer.rs` (the background graph build of the buffer),
//! `background.rs` (the low-priority pool), `replay.rs` (the WAL at open),
//! `checkpoint.rs` and `merge.rs` (into the SSD tier), `search.rs`,
//! `read.rs` (`get`, `scroll`), `stats.rs`; this file holds the state, open
//! and create.

mod activity;
mod background;
mod checkpoint;
mod config;
mod error;
mod fields;
mod filtered;
mod indexer;
mod merge;
mod point;
mod point_table;
#[doc(hidden)]
pub use point_table::fuzz_decode as fuzz_point_table;
mod read;
mod record;
mod replay;
mod search;
mod segment;
mod ssd;
mod stats;
#[doc(hidden)]
pub mod workload;
mod write;

pub use activity::CheckpointStats;
pub use config::{
    CollectionConfig, CollectionConfigBuilder, FsyncPolicy, RerankVectors, SsdConfig, CONFIG_FILE,
};
pub use error::{CollectionError, Result};
pub use fields::FieldIndexInfo;
pub(crate) use point::check_vector;
pub use point::{Payload, Point, PointId, Value};
pub use read::Record;
pub use search::SearchRequest;
pub use stats::Stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::hnsw::NodeId;
use activity::CheckpointCounters;
use quiver_storage::backend::default_backend;
use quiver_storage::store::Store;
use quiver_storage::{Backend, Lsn, Wal, WalOptions};
use segment::Segment;
use ssd::SsdTier;

/// Largest `k` a search may ask for.
pub use crate::limits::MAX_K;

/// Where a point's current version lives: a memory segment's node, or
/// (`seg == SSD`) a vector id of the SSD tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    seg: u32,
    node: NodeId,
}

/// `Loc::seg` of points in the SSD tier (segment ids count up from 1).
const SSD: u32 = u32::MAX;

/// The write path's state, behind `Collection::writer`.
struct Writer {
    next_segment: u32,
    /// Last WAL record fully applied.
    applied: Lsn,
    /// `applied` when the active segment was started: every record up to it
    /// lives entirely in frozen segments (a batch can straddle a rotation, so
    /// later records may be partly in the active one). Checkpoints claim this.
    frozen: Lsn,
}

/// An open collection. Share it as `Arc<Collection>`.
pub struct Collection {
    dir: PathBuf,
    config: CollectionConfig,
    store: Mutex<Store>,
    wal: Wal,
    writer: Mutex<Writer>,
    /// Every segment, oldest first; the last one is active (shared with
    /// the indexer thread, which must not hold the collection).
    segments: indexer::SegmentList,
    map: RwLock<BTreeMap<PointId, Loc>>,
    /// The SSD tier, once the first merge created it (or the manifest names one).
    ssd: RwLock<Option<Arc<SsdTier>>>,
    merges: Mutex<(u64, f64)>,
    checkpointing: Mutex<()>,
    /// The manifest's checkpoint LSN (read by `stats` without the store
    /// lock, which a checkpoint holds while it writes files).
    checkpoint_lsn: AtomicU64,
    /// Background checkpoints, joined by [`Collection::close`].
    background: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Checkpoints committed since open, for [`Collection::checkpoint_stats`].
    checkpoints: CheckpointCounters,
    /// Indexed payload fields (as in `config.json`), applied to every
    /// segment and the SSD tier.
    schema: RwLock<BTreeMap<String, crate::filter::FieldType>>,
    /// Links the unindexed buffer into the graph in the background (idle
    /// when `index_buffer_points` is 0: writes then link their points).
    indexer: Arc<indexer::Indexer>,
    me: Weak<Collection>,
}

impl Drop for Collection {
    fn drop(&mut self) {
        self.indexer.stop();
    }
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("dir", &self.dir)
            .field("points", &self.count())
            .finish_non_exhaustive()
    }
}

impl Collection {
    /// Creates a collection in `dir` (which must not hold one) and opens it.
    pub fn create(dir: impl AsRef<Path>, config: CollectionConfig) -> Result<Arc<Collection>> {
        Self::create_with(dir, config, default_backend())
    }

    /// [`Collection::create`] with every file read and written through `backend`.
    pub fn create_with(
        dir: impl AsRef<Path>,
        config: CollectionConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<Collection>> {
        let dir = dir.as_ref();
        config.validate()?;
        let io = |source| CollectionError::Io {
            file: dir.to_path_buf(),
            source,
        };
        if backend.exists(&dir.join(CONFIG_FILE)).map_err(io)? {
            return Err(CollectionError::AlreadyExists(dir.to_path_buf()));
        }
        backend.create_dir_all(dir).map_err(io)?;
        config.store(&*backend, dir)?;
        Self::open_with(dir, backend)
    }

    /// Opens the collection in `dir`: loads checkpointed segments and replays the WAL.
    pub fn open(dir: impl AsRef<Path>) -> Result<Arc<Collection>> {
        Self::open_with(dir, default_backend())
    }

    /// [`Collection::open`] with every file read and written through `backend`.
    pub fn open_with(dir: impl AsRef<Path>, backend: Arc<dyn Backend>) -> Result<Arc<Collection>> {
        let dir = dir.as_ref().to_path_buf();
        let config = CollectionConfig::load(&*backend, &dir)?;
        let store = Store::open_with(&dir, backend)?;
        let wal = store.open_wal(WalOptions::default().fsync(config.fsync.to_storage()))?;
        let checkpoint = store.manifest().checkpoint_lsn;

        let mut segments = Vec::new();
        let mut ssd = None;
        for f in &store.manifest().files {
            if let Some(id) = segment::parse_del_name(&f.name) {
                segments.push(Arc::new(Segment::open(
                    &store,
                    id,
                    &f.name,
                    config.rerank_vectors,
                )?));
            } else if ssd::parse_table_name(&f.name).is_some() {
                let settings = config.ssd.unwrap_or_default();
                ssd = Some(Arc::new(SsdTier::open(&store, &f.name, settings)?));
            }
        }
        segments.sort_by_key(|s| s.id);
        for s in &segments {
            s.table().create_indexes(&config.payload_indexes);
        }
        if let Some(t) = &ssd {
            t.table().create_indexes(&config.payload_indexes);
        }
        let mut map = BTreeMap::new();
        if let Some(t) = &ssd {
            for (id, slot) in t.live_points() {
                map.insert(
                    id,
                    Loc {
                        seg: SSD,
                        node: NodeId(slot),
                    },
                );
            }
        }
        // A committed state has one live copy per id; should an id be in
        // both tiers, the segment (newer data) wins.
        for s in &segments {
            for (id, node) in s.live_points() {
                map.insert(id, Loc { seg: s.id, node });
            }
        }
        let next = segments.last().map_or(1, |s| s.id + 1);
        let col = Arc::new_cyclic(|me| Collection {
            dir,
            store: Mutex::new(store),
            wal,
            writer: Mutex::new(Writer {
                next_segment: next,
                applied: checkpoint,
                frozen: checkpoint,
            }),
            segments: Arc::new(RwLock::new(Arc::new(segments))),
            map: RwLock::new(map),
            ssd: RwLock::new(ssd),
            merges: Mutex::new((0, 0.0)),
            checkpointing: Mutex::new(()),
            checkpoint_lsn: AtomicU64::new(checkpoint.0),
            background: Mutex::new(Vec::new()),
            checkpoints: CheckpointCounters::default(),
            schema: RwLock::new(config.payload_indexes.clone()),
            indexer: Arc::default(),
            me: me.clone(),
            config,
        });
        {
            let mut w = col.writer.lock();
            col.push_fresh(&mut w)?;
            let replayed = col.replay(&mut w, Lsn(checkpoint.0 + 1))?;
            // Replayed points beyond the buffer's bound are linked now, as
            // writes would have waited for them.
            col.index_down_to(col.config.index_buffer_points)?;
            tracing::info!(dir = %col.dir.display(), points = col.count(), replayed, "collection opened");
        }
        if col.config.index_buffer_points > 0 {
            col.indexer
                .start(col.segments.clone(), col.dir.display().to_string());
        }
        if col.config.ssd.is_some() && col.segments.read().len() > 1 {
            // Segments written by `flush` (or by a checkpoint without an SSD
            // merge) wait in memory: merge them now rather than at the next
            // rotation, so restarts cannot pile them up.
            col.spawn_checkpoint();
        }
        Ok(col)
    }

    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Points acknowledged (and searchable) but not yet linked into the
    /// graph: the unindexed buffer, scanned exactly by every search.
    pub fn unindexed(&self) -> usize {
        indexer::unindexed(&self.segments)
    }

    /// Links buffered points, oldest first, on the calling thread's pool
    /// until at most `bound` remain.
    fn index_down_to(&self, bound: usize) -> Result<()> {
        while self.unindexed() > bound {
            let segs = self.segments.read().clone();
            for s in segs.iter() {
                s.index_all(false)?;
            }
        }
        Ok(())
    }

    /// Links every buffered point into the graph now (the background
    /// indexer would, later). For tests and benchmarks that want a caught-up
    /// graph.
    pub fn index_now(&self) -> Result<()> {
        self.index_down_to(0)
    }

    /// Waits for background checkpoints and makes every write durable. The
    /// directory is unlocked when the last `Arc` of the collection drops.
    pub fn close(&self) -> Result<()> {
        let handles: Vec<_> = std::mem::take(&mut *self.background.lock());
        for h in handles {
            let _ = h.join();
        }
        self.sync()
    }

    /// Makes every acknowledged write durable (whatever the fsync policy).
    pub fn sync(&self) -> Result<()> {
        Ok(self.wal.sync()?)
    }
}

#[cfg(test)]
mod buffer_tests;
#[cfg(test)]
mod tests;
