//! Collections: the unit users create, write and search.
//!
//! A collection lives in one directory: `config.json` (its settings), a
//! write-ahead log (`wal/`), a manifest, and the files of its checkpointed
//! segments. Each write is validated, appended to the WAL (durable under
//! the collection's fsync policy), applied to the active memory tier (an HNSW
//! segment), then acknowledged, so a search issued after an acknowledged
//! write sees it. When the active segment is full it is frozen (still
//! searchable, deletes only) and a fresh one takes writes; a background
//! checkpoint writes frozen segments to disk, commits a new manifest and
//! truncates the WAL. Reopening loads the checkpointed segments and replays
//! the WAL after the checkpoint.
//!
//! Concurrency: writers queue their WAL record and apply it under one mutex
//! (WAL order = apply order) and wait for the fsync outside it, so
//! concurrent writers share fsyncs (group commit); searches take no lock for their duration, only brief read locks
//! to snapshot the segment list and to check candidates against the id map.

mod activity;
mod config;
mod error;
mod point;
mod point_table;
mod record;
mod segment;
mod ssd;
#[doc(hidden)]
pub mod workload;

pub use activity::CheckpointStats;
pub use config::{CollectionConfig, FsyncPolicy, SsdConfig, CONFIG_FILE};
pub use error::{CollectionError, Result};
pub use point::{Payload, Point, PointId, Value};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::hnsw::{Hnsw, NodeId};
use activity::CheckpointCounters;
use point::{check_vector, encode_payload};
use quiver_storage::backend::default_backend;
use quiver_storage::store::Store;
use quiver_storage::{Backend, Lsn, Wal, WalOptions};
use record::{LoggedPoint, Op, KIND_DELETE, KIND_UPSERT};
use segment::Segment;
use ssd::SsdTier;

/// Largest `k` a search may ask for.
pub const MAX_K: usize = 10_000;

/// Most points re-applied as one batch while replaying the WAL.
const REPLAY_BATCH: usize = 4096;

/// Where a point's current version lives: a memory segment's node, or
/// (`seg == SSD`) a vector id of the SSD tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    seg: u32,
    node: NodeId,
}

/// `Loc::seg` of points in the SSD tier (segment ids count up from 1).
const SSD: u32 = u32::MAX;

/// A search request.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub vector: Vec<f32>,
    pub k: usize,
    /// Beam width of the memory tier; the collection's `ef_search` when `None`.
    pub ef: Option<usize>,
    /// Postings read in the SSD tier; the collection's `ssd.nprobe` when `None`.
    pub nprobe: Option<usize>,
    pub with_payload: bool,
    pub with_vector: bool,
}

/// A point as returned by `get`, `scroll` and `search`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub id: PointId,
    /// Distance to the query (lower is closer; `1 - dot` for ip/cosine,
    /// squared L2 for l2); 0 outside search.
    pub distance: f32,
    pub payload: Option<Payload>,
    /// The stored vector (unit length for cosine collections).
    pub vector: Option<Vec<f32>>,
}

struct Writer {
    next_segment: u32,
    /// Last WAL record fully applied.
    applied: Lsn,
    /// `applied` when the active segment was started: every record up to it
    /// lives entirely in frozen segments (a batch can straddle a rotation, so
    /// later records may be partly in the active one). Checkpoints claim this.
    frozen: Lsn,
}

/// Counts describing a collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub points: usize,
    pub segments: usize,
    /// Points in the active memory tier (not yet frozen).
    pub active_points: usize,
    /// Points in the SSD tier.
    pub ssd_points: usize,
    /// Bytes of the SSD tier's files.
    pub ssd_bytes: u64,
    /// Frozen segments merged into the SSD tier since open.
    pub merges: u64,
    /// Seconds the last merge into the SSD tier took.
    pub last_merge_seconds: f64,
    pub index_memory_bytes: usize,
    pub checkpoint_lsn: u64,
    pub last_lsn: u64,
}

/// An open collection. Share it as `Arc<Collection>`.
pub struct Collection {
    dir: PathBuf,
    config: CollectionConfig,
    store: Mutex<Store>,
    wal: Wal,
    writer: Mutex<Writer>,
    /// Every segment, oldest first; the last one is active.
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
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
    me: Weak<Collection>,
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
                segments.push(Arc::new(Segment::open(&store, id, &f.name)?));
            } else if ssd::parse_table_name(&f.name).is_some() {
                let settings = config.ssd.unwrap_or_default();
                ssd = Some(Arc::new(SsdTier::open(&store, &f.name, settings)?));
            }
        }
        segments.sort_by_key(|s| s.id);
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
            segments: RwLock::new(Arc::new(segments)),
            map: RwLock::new(map),
            ssd: RwLock::new(ssd),
            merges: Mutex::new((0, 0.0)),
            checkpointing: Mutex::new(()),
            checkpoint_lsn: AtomicU64::new(checkpoint.0),
            background: Mutex::new(Vec::new()),
            checkpoints: CheckpointCounters::default(),
            me: me.clone(),
            config,
        });
        {
            let mut w = col.writer.lock();
            col.push_fresh(&mut w)?;
            let replayed = col.replay(&mut w, Lsn(checkpoint.0 + 1))?;
            tracing::info!(dir = %col.dir.display(), points = col.count(), replayed, "collection opened");
        }
        if col.config.ssd.is_some() && col.segments.read().len() > 1 {
            // Segments written by `flush` (or by a checkpoint without an SSD
            // merge) wait in memory: merge them now rather than at the next
            // rotation, so restarts cannot pile them up.
            col.spawn_checkpoint();
        }
        Ok(col)
    }

    /// Re-applies the WAL from `from` (at open; the caller holds the writer
    /// lock). Consecutive upsert records are applied as one batch of up to
    /// [`REPLAY_BATCH`] points, so their graph inserts run in parallel even
    /// when clients wrote one point at a time; a delete ends a batch. The
    /// result equals applying record by record: within a batch the id map is
    /// updated in WAL order, so a repeated id ends with its last version.
    /// Returns the number of records replayed.
    fn replay(&self, w: &mut Writer, from: Lsn) -> Result<usize> {
        let mut pending: Vec<(PointId, Vec<f32>, Option<Payload>)> = Vec::new();
        let mut pending_lsn = w.applied;
        let mut records = 0usize;
        let started = std::time::Instant::now();
        let mut last_log = started;
        let flush = |w: &mut Writer, pending: &mut Vec<_>, lsn: Lsn| -> Result<()> {
            if !pending.is_empty() {
                self.apply(w, Op::Upsert(std::mem::take(pending)))?;
            }
            w.applied = lsn;
            Ok(())
        };
        for rec in self.wal.replay(from)? {
            let rec = rec?;
            let op = record::decode(rec.kind, &rec.payload, self.config.dim).map_err(
                |(offset, reason)| CollectionError::Corrupt {
                    file: self.dir.join("wal"),
                    offset: offset as u64,
                    reason: format!("record {}: {reason}", rec.lsn.0),
                },
            )?;
            records += 1;
            match op {
                Op::Upsert(points) => {
                    pending.extend(points);
                    pending_lsn = rec.lsn;
                    if pending.len() >= REPLAY_BATCH {
                        flush(w, &mut pending, pending_lsn)?;
                    }
                }
                Op::Delete(ids) => {
                    flush(w, &mut pending, pending_lsn)?;
                    self.apply(w, Op::Delete(ids))?;
                    w.applied = rec.lsn;
                }
            }
            if last_log.elapsed().as_secs() >= 5 {
                last_log = std::time::Instant::now();
                tracing::info!(
                    dir = %self.dir.display(),
                    records,
                    lsn = rec.lsn.0,
                    last_lsn = self.wal.last_lsn().0,
                    seconds = started.elapsed().as_secs_f64(),
                    "replaying the write-ahead log"
                );
            }
        }
        flush(w, &mut pending, pending_lsn)?;
        Ok(records)
    }

    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Inserts or replaces `points` (by id). Returns the WAL position once
    /// the batch is durable under the fsync policy and visible to searches.
    pub fn upsert(&self, points: Vec<Point>) -> Result<Lsn> {
        let dim = self.config.dim;
        let norm = self.config.metric.normalizes();
        let mut payloads = Vec::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            check_vector(&p.vector, dim, norm, &format!("points[{i}].vector"))?;
            payloads.push(match &p.payload {
                Some(pl) => Some(encode_payload(
                    pl,
                    &format!("points[{i}].payload"),
                    self.config.max_payload_bytes,
                )?),
                None => None,
            });
        }
        let logged: Vec<LoggedPoint<'_>> = points
            .iter()
            .zip(&payloads)
            .map(|(p, b)| LoggedPoint {
                id: p.id,
                vector: &p.vector,
                payload: b.as_deref(),
            })
            .collect();
        let bytes = record::encode_upsert(dim, &logged);
        let ops = Op::Upsert(
            points
                .into_iter()
                .map(|p| (p.id, p.vector, p.payload))
                .collect(),
        );
        Ok(self.log_and_apply(KIND_UPSERT, &bytes, ops)?.0)
    }

    /// Queues `bytes` in the WAL and applies `op` under the writer lock (so
    /// WAL order = apply order), then waits for the WAL acknowledgement
    /// outside the lock, where concurrent writers' fsyncs merge into one
    /// (group commit). A write is visible to searches slightly before it
    /// is acknowledged; if its WAL write fails the caller gets the error and
    /// the write's fate is unknown (it may survive a restart), as for any
    /// unacknowledged write.
    /// Returns the LSN and how many points the write removed (for deletes).
    fn log_and_apply(&self, kind: u8, bytes: &[u8], op: Op) -> Result<(Lsn, usize)> {
        let (ticket, removed) = {
            let mut w = self.writer.lock();
            let ticket = self.wal.enqueue(&[(kind, bytes)])?;
            let lsn = ticket.lsn();
            let before = self.count();
            self.apply(&mut w, op)?;
            w.applied = lsn;
            (ticket, before.saturating_sub(self.count()))
        };
        Ok((ticket.wait()?, removed))
    }

    /// Deletes `ids` (unknown ids are ignored). Returns the WAL position and
    /// how many points were deleted.
    pub fn delete(&self, ids: &[PointId]) -> Result<(Lsn, usize)> {
        let (lsn, removed) = self.log_and_apply(
            KIND_DELETE,
            &record::encode_delete(ids),
            Op::Delete(ids.to_vec()),
        )?;
        Ok((lsn, removed))
    }

    /// Applies a logged operation to the in-memory state; the caller holds the writer lock.
    fn apply(&self, w: &mut Writer, op: Op) -> Result<()> {
        match op {
            Op::Upsert(points) => {
                // Graph inserts run in parallel (HNSW takes concurrent
                // inserts); the id map is then updated in batch order, so a
                // repeated id ends with its last version.
                let mut rest = &points[..];
                while !rest.is_empty() {
                    let mut active = self.active();
                    if active.is_full() {
                        self.rotate(w)?;
                        active = self.active();
                    }
                    let room = active.hnsw.capacity() - active.hnsw.len();
                    let (chunk, tail) = rest.split_at(room.min(rest.len()));
                    let insert = |(id, vector, payload): &(PointId, Vec<f32>, Option<Payload>)| {
                        active.insert(*id, vector, payload.clone())
                    };
                    // Even two points are worth splitting: one graph insert
                    // costs far more than handing it to another thread.
                    let nodes: Vec<NodeId> = if chunk.len() >= 2 {
                        chunk.par_iter().map(insert).collect::<Result<_>>()?
                    } else {
                        chunk.iter().map(insert).collect::<Result<_>>()?
                    };
                    let mut map = self.map.write();
                    for ((id, _, _), node) in chunk.iter().zip(nodes) {
                        if let Some(old) = map.insert(
                            *id,
                            Loc {
                                seg: active.id,
                                node,
                            },
                        ) {
                            self.drop_copy(old)?;
                        }
                    }
                    rest = tail;
                }
            }
            Op::Delete(ids) => {
                for id in ids {
                    let old = self.map.write().remove(&id);
                    if let Some(old) = old {
                        self.drop_copy(old)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes the copy of a point at `loc` (replaced or deleted).
    fn drop_copy(&self, loc: Loc) -> Result<()> {
        if loc.seg == SSD {
            if let Some(t) = self.ssd.read().as_ref() {
                t.delete(loc.node.0)?;
            }
        } else if let Some(s) = self.segment(loc.seg) {
            s.hnsw.delete(loc.node)?;
        }
        Ok(())
    }

    fn active(&self) -> Arc<Segment> {
        let segs = self.segments.read();
        segs.last()
            .cloned()
            .expect("a collection always has an active segment")
    }

    fn segment(&self, id: u32) -> Option<Arc<Segment>> {
        self.segments.read().iter().find(|s| s.id == id).cloned()
    }

    /// Freezes the active segment (if it holds anything) and starts a fresh
    /// one. Returns whether a segment was frozen.
    fn push_fresh(&self, w: &mut Writer) -> Result<bool> {
        let cap = self.config.memory_tier_points;
        let hnsw = Hnsw::new(self.config.dim, self.config.metric, self.config.hnsw, cap)?;
        let fresh = Arc::new(Segment::new(w.next_segment, hnsw));
        w.next_segment += 1;
        w.frozen = w.applied;
        let mut segs = self.segments.write();
        let mut list: Vec<Arc<Segment>> = segs.iter().cloned().collect();
        let froze = list.last().is_some_and(|s| !s.hnsw.is_empty());
        if !froze {
            list.pop();
        }
        list.push(fresh);
        *segs = Arc::new(list);
        Ok(froze)
    }

    /// [`Collection::push_fresh`], then a background checkpoint of what was frozen.
    fn rotate(&self, w: &mut Writer) -> Result<()> {
        if self.push_fresh(w)? {
            self.spawn_checkpoint();
        }
        Ok(())
    }

    /// Starts a checkpoint on a background thread (joined by `close`).
    fn spawn_checkpoint(&self) {
        if let Some(me) = self.me.upgrade() {
            let handle = std::thread::spawn(move || {
                if let Err(e) = me.checkpoint() {
                    tracing::error!(dir = %me.dir.display(), error = %e, "background checkpoint failed");
                }
            });
            let mut bg = self.background.lock();
            bg.retain(|h| !h.is_finished());
            bg.push(handle);
        }
    }

    /// Freezes the active segment, then checkpoints: afterwards every point
    /// is in a segment file and the WAL is (nearly) empty.
    pub fn checkpoint_all(&self) -> Result<()> {
        self.push_fresh(&mut self.writer.lock())?;
        self.checkpoint()
    }

    /// Merges the frozen segments into the SSD tier (when the collection has
    /// one), writes what stays in memory, and commits a checkpoint (see
    /// [`Collection::checkpoint_all`]).
    pub fn checkpoint(&self) -> Result<()> {
        self.commit_checkpoint(self.config.ssd)
    }

    /// Freezes the active segment and writes every memory segment to a
    /// file without merging into the SSD tier, then commits: a reopen loads
    /// the files instead of replaying the WAL (the server does this on a
    /// graceful shutdown). Segments written this way are merged into the
    /// SSD tier by a background checkpoint after the next open.
    pub fn flush(&self) -> Result<()> {
        self.push_fresh(&mut self.writer.lock())?;
        self.commit_checkpoint(None)
    }

    /// Merges frozen segments into the SSD tier when `merge` is set, writes
    /// the remaining frozen segments, and commits a new manifest.
    fn commit_checkpoint(&self, merge: Option<SsdConfig>) -> Result<()> {
        let _one = self.checkpointing.lock();
        let started = std::time::Instant::now();
        if let Some(settings) = merge {
            self.merge_frozen(settings)?;
        }
        let (lsn, frozen): (Lsn, Vec<(Arc<Segment>, RoaringBitmap)>) = {
            let w = self.writer.lock();
            // Frozen segments with no live point left are dropped: nothing maps to them.
            let segs = {
                let mut segs = self.segments.write();
                let n = segs.len();
                let kept: Vec<Arc<Segment>> = segs
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| *i + 1 == n || s.hnsw.live_len() > 0)
                    .map(|(_, s)| s.clone())
                    .collect();
                *segs = Arc::new(kept);
                segs.clone()
            };
            let frozen = segs[..segs.len() - 1]
                .iter()
                .map(|s| (s.clone(), s.hnsw.deleted()))
                .collect();
            // Everything applied is in the WAL; make it durable before files
            // that reflect it can be committed.
            self.wal.sync()?;
            (w.frozen, frozen)
        };
        let mut store = self.store.lock();
        let generation = store.manifest().generation + 1;
        let mut files = Vec::new();
        for (seg, deleted) in &frozen {
            files.extend(seg.persist(&store, generation, deleted)?);
        }
        // The SSD snapshot is taken after `lsn` was chosen, so it holds
        // every write up to `lsn` (and maybe later deletes, which replaying
        // the WAL after `lsn` repeats harmlessly).
        let tier = self.ssd.read().clone();
        let ssd_generation = match &tier {
            Some(t) => {
                let (g, entry) = t.persist(&store)?;
                files.push(entry);
                Some(g)
            }
            None => None,
        };
        store.commit(lsn, files)?;
        drop(store);
        self.checkpoint_lsn.store(lsn.0, Ordering::Release);
        if let (Some(t), Some(g)) = (&tier, ssd_generation) {
            t.committed(g)?;
        }
        let removed = self.wal.truncate_before(Lsn(lsn.0 + 1))?;
        self.checkpoints.record(started.elapsed());
        tracing::info!(
            dir = %self.dir.display(),
            lsn = lsn.0,
            segments = frozen.len(),
            wal_segments_removed = removed,
            seconds = started.elapsed().as_secs_f64(),
            "checkpoint committed"
        );
        Ok(())
    }

    /// Moves the points of every frozen segment into the SSD tier (created
    /// on first use), one segment at a time. Writes and searches continue:
    /// the SPANN inserts run without the writer lock; then, under one brief
    /// id-map write lock, each point whose current copy is still that
    /// segment's node is pointed at its SSD copy (SSD copies of points
    /// replaced or deleted meanwhile are deleted), and the segment leaves
    /// the segment list.
    fn merge_frozen(&self, settings: SsdConfig) -> Result<()> {
        let frozen: Vec<Arc<Segment>> = {
            let segs = self.segments.read();
            segs[..segs.len() - 1].to_vec()
        };
        if frozen.is_empty() {
            return Ok(());
        }
        for seg in frozen {
            let started = std::time::Instant::now();
            let live = seg.live_points();
            let mut ids = Vec::with_capacity(live.len());
            let mut nodes = Vec::with_capacity(live.len());
            let mut vectors = Vec::with_capacity(live.len() * self.config.dim);
            let mut payloads = Vec::with_capacity(live.len());
            for (id, node) in live {
                if let Some(v) = seg.hnsw.vector(node) {
                    ids.push(id);
                    nodes.push(node);
                    vectors.extend_from_slice(&v);
                    payloads.push(seg.payload(node));
                }
            }
            let existing = self.ssd.read().clone();
            let slots: Vec<u32> = match existing {
                _ if ids.is_empty() => Vec::new(),
                Some(t) => t.insert(&ids, &vectors, payloads)?,
                None => {
                    // The first merge builds the tier in bulk from this segment.
                    let n = ids.len() as u32;
                    let backend = self.store.lock().backend().clone();
                    let t = SsdTier::build(
                        &self.dir,
                        backend,
                        &self.config,
                        settings,
                        &ids,
                        vectors,
                        payloads,
                    )?;
                    *self.ssd.write() = Some(Arc::new(t));
                    (0..n).collect()
                }
            };
            let tier = self.ssd.read().clone();
            seg.mark_merged(&nodes, &slots);
            let mut stale = Vec::new();
            {
                let mut map = self.map.write();
                for ((id, &node), &slot) in ids.iter().zip(&nodes).zip(&slots) {
                    let here = Loc { seg: seg.id, node };
                    if map.get(id) == Some(&here) {
                        map.insert(
                            *id,
                            Loc {
                                seg: SSD,
                                node: NodeId(slot),
                            },
                        );
                    } else {
                        stale.push(slot);
                    }
                }
            }
            if let Some(t) = &tier {
                for slot in stale {
                    t.delete(slot)?;
                }
            }
            {
                let mut segs = self.segments.write();
                let kept: Vec<Arc<Segment>> =
                    segs.iter().filter(|s| s.id != seg.id).cloned().collect();
                *segs = Arc::new(kept);
            }
            let seconds = started.elapsed().as_secs_f64();
            {
                let mut m = self.merges.lock();
                m.0 += 1;
                m.1 = seconds;
            }
            tracing::info!(
                dir = %self.dir.display(),
                segment = seg.id,
                points = slots.len(),
                seconds,
                "merged frozen segment into the SSD tier"
            );
        }
        Ok(())
    }

    /// Number of live points.
    pub fn count(&self) -> usize {
        self.map.read().len()
    }

    /// Live statistics.
    pub fn stats(&self) -> Stats {
        let segs = self.segments.read().clone();
        let tier = self.ssd.read().clone();
        let (merges, last_merge_seconds) = *self.merges.lock();
        Stats {
            points: self.count(),
            segments: segs.len(),
            active_points: segs.last().map_or(0, |s| s.hnsw.live_len()),
            ssd_points: tier.as_ref().map_or(0, |t| t.len()),
            ssd_bytes: tier.as_ref().map_or(0, |t| t.disk_bytes()),
            merges,
            last_merge_seconds,
            index_memory_bytes: segs.iter().map(|s| s.hnsw.memory_bytes()).sum::<usize>()
                + tier.as_ref().map_or(0, |t| t.memory_bytes()),
            checkpoint_lsn: self.checkpoint_lsn.load(Ordering::Acquire),
            last_lsn: self.wal.last_lsn().0,
        }
    }

    /// Checkpoints committed since the collection was opened, and their time.
    pub fn checkpoint_stats(&self) -> CheckpointStats {
        self.checkpoints.snapshot()
    }

    /// Bytes in the write-ahead log's files (shrinks when a checkpoint truncates it).
    pub fn wal_bytes(&self) -> u64 {
        self.wal.size_bytes()
    }

    fn record(
        &self,
        id: PointId,
        loc: Loc,
        distance: f32,
        with_payload: bool,
        with_vector: bool,
    ) -> Option<Record> {
        if loc.seg == SSD {
            let tier = self.ssd.read().clone()?;
            let slot = loc.node.0;
            return Some(Record {
                id,
                distance,
                payload: if with_payload {
                    tier.payload(slot).map(|p| (*p).clone())
                } else {
                    None
                },
                vector: if with_vector {
                    // A read error surfaces as a missing vector rather than failing the request.
                    tier.vector(slot).ok().flatten()
                } else {
                    None
                },
            });
        }
        let seg = self.segment(loc.seg)?;
        Some(Record {
            id,
            distance,
            payload: if with_payload {
                seg.payload(loc.node).map(|p| (*p).clone())
            } else {
                None
            },
            vector: if with_vector {
                seg.hnsw.vector(loc.node).map(std::borrow::Cow::into_owned)
            } else {
                None
            },
        })
    }

    /// The points with these ids (`None` for unknown ids), in request order.
    pub fn get(
        &self,
        ids: &[PointId],
        with_payload: bool,
        with_vector: bool,
    ) -> Vec<Option<Record>> {
        ids.iter()
            .map(|&id| {
                let loc = self.map.read().get(&id).copied()?;
                self.record(id, loc, 0.0, with_payload, with_vector)
            })
            .collect()
    }

    /// Up to `limit` points in id order, starting after `after`; also returns
    /// the id to continue from (`None` at the end).
    pub fn scroll(
        &self,
        after: Option<PointId>,
        limit: usize,
        with_payload: bool,
        with_vector: bool,
    ) -> (Vec<Record>, Option<PointId>) {
        let page: Vec<(PointId, Loc)> = {
            let map = self.map.read();
            let range = match after {
                Some(a) => map.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
                None => map.range(..),
            };
            range
                .take(limit.saturating_add(1))
                .map(|(&id, &l)| (id, l))
                .collect()
        };
        let more = page.len() > limit;
        let records: Vec<Record> = page
            .iter()
            .take(limit)
            .filter_map(|&(id, loc)| self.record(id, loc, 0.0, with_payload, with_vector))
            .collect();
        let next = if more {
            records.last().map(|r| r.id)
        } else {
            None
        };
        (records, next)
    }

    /// The `k` nearest live points to the request's vector, nearest first.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Record>> {
        check_vector(
            &req.vector,
            self.config.dim,
            self.config.metric.normalizes(),
            "vector",
        )?;
        if req.k == 0 || req.k > MAX_K {
            return Err(CollectionError::invalid(
                "k",
                format!("must be in 1..={MAX_K}, got {}", req.k),
            ));
        }
        let ef = req.ef.unwrap_or(self.config.ef_search);
        if ef == 0 || ef > 100_000 {
            return Err(CollectionError::invalid(
                "ef",
                format!("must be in 1..=100000, got {ef}"),
            ));
        }
        let nprobe = req.nprobe.or(self.config.ssd.map(|c| c.nprobe));
        if let Some(n) = req.nprobe {
            if n == 0 || n > 100_000 {
                return Err(CollectionError::invalid(
                    "nprobe",
                    format!("must be in 1..=100000, got {n}"),
                ));
            }
        }
        let segs = self.segments.read().clone();
        let tier = self.ssd.read().clone();
        let mut cands: Vec<(f32, u32, NodeId)> = Vec::with_capacity(req.k * (segs.len() + 1));
        for s in segs.iter() {
            for n in s.hnsw.search(&req.vector, req.k, ef)? {
                cands.push((n.distance, s.id, n.id));
            }
        }
        if let Some(t) = &tier {
            for (distance, slot) in self.ssd_candidates(t, &req.vector, req.k, nprobe)? {
                cands.push((distance, SSD, NodeId(slot)));
            }
        }
        cands.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Keep candidates that are the current copy of their id (one read
        // of the id map for all of them), each id once. A segment being
        // merged still answers for points already moved to the SSD tier, so
        // a search that raced the move finds them in one tier or the other.
        let current: Vec<(PointId, f32, Loc)> = {
            let map = self.map.read();
            let mut seen = std::collections::HashSet::with_capacity(req.k);
            let mut current = Vec::with_capacity(req.k);
            for (dist, seg, node) in cands {
                if current.len() == req.k {
                    break;
                }
                let here = Loc { seg, node };
                let (id, copy) = if seg == SSD {
                    match tier.as_ref().and_then(|t| t.point_id(node.0)) {
                        Some(id) => (id, None),
                        None => continue,
                    }
                } else {
                    let Some(s) = segs.iter().find(|s| s.id == seg) else {
                        continue;
                    };
                    let Some(id) = s.point_id(node) else { continue };
                    let copy = s.merged_slot(node).map(|slot| Loc {
                        seg: SSD,
                        node: NodeId(slot),
                    });
                    (id, copy)
                };
                let is_current = map.get(&id).is_some_and(|l| *l == here || Some(*l) == copy);
                if is_current && seen.insert(id) {
                    current.push((id, dist, here));
                }
            }
            current
        };
        let out = current
            .into_iter()
            .filter_map(|(id, distance, loc)| {
                if loc.seg == SSD {
                    return self.record(id, loc, distance, req.with_payload, req.with_vector);
                }
                let s = segs.iter().find(|s| s.id == loc.seg)?;
                Some(Record {
                    id,
                    distance,
                    payload: if req.with_payload {
                        s.payload(loc.node).map(|p| (*p).clone())
                    } else {
                        None
                    },
                    vector: if req.with_vector {
                        s.hnsw.vector(loc.node).map(std::borrow::Cow::into_owned)
                    } else {
                        None
                    },
                })
            })
            .collect();
        Ok(out)
    }

    /// The SSD tier's nearest copies, enough of them that at least `k` are
    /// current (or all it has). SPANN also returns copies the id map does
    /// not point at: those a merge inserted but has not switched to yet
    /// (their points are current in a memory segment), and replaced or
    /// deleted ones whose delete is still in flight. Asking it for exactly
    /// `k` let such copies crowd current ones out of the top `k`, so the
    /// request doubles until `k` current copies are in hand.
    fn ssd_candidates(
        &self,
        t: &SsdTier,
        vector: &[f32],
        k: usize,
        nprobe: Option<usize>,
    ) -> Result<Vec<(f32, u32)>> {
        let mut want = k;
        loop {
            let hits = t.search(vector, want, nprobe)?;
            let current = {
                let map = self.map.read();
                hits.iter()
                    .filter(|&&(_, slot)| {
                        t.point_id(slot).is_some_and(|id| {
                            map.get(&id)
                                == Some(&Loc {
                                    seg: SSD,
                                    node: NodeId(slot),
                                })
                        })
                    })
                    .count()
            };
            if current >= k || hits.len() < want || want >= MAX_K * 4 {
                return Ok(hits);
            }
            want = (want * 2).max(want + 16);
        }
    }

    /// Runs several searches in parallel.
    pub fn search_batch(&self, reqs: &[SearchRequest]) -> Vec<Result<Vec<Record>>> {
        reqs.par_iter().map(|r| self.search(r)).collect()
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
mod tests;
