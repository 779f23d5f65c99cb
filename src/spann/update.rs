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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::MutexGuard;
use rayon::prelude::*;

use super::epoch::Deferred;
use super::posting::{PostingBuilder, PAGE};
use super::slots::{Cell, State};
use super::versions::{self, VERSION_MASK};
use super::{assign, PostingSlot, Result, Spann, SpannError};
use crate::hnsw::{HnswError, NodeId};

/// Counters of the updates applied since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct UpdateStats {
    pub inserted: u64,
    pub deleted: u64,
    pub splits: u64,
    pub merges: u64,
    pub reassigned: u64,
    /// Postings rewritten to a bigger extent because new entries did not fit.
    pub relocations: u64,
    /// Chunks appended in place.
    pub appends: u64,
    /// Postings rewritten to a fresh extent (relocations, garbage dropped).
    pub rewrites: u64,
}

/// The atomic form of [`UpdateStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub inserted: AtomicU64,
    pub deleted: AtomicU64,
    pub splits: AtomicU64,
    pub merges: AtomicU64,
    pub reassigned: AtomicU64,
    pub relocations: AtomicU64,
    pub appends: AtomicU64,
    pub rewrites: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> UpdateStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        UpdateStats {
            inserted: l(&self.inserted),
            deleted: l(&self.deleted),
            splits: l(&self.splits),
            merges: l(&self.merges),
            reassigned: l(&self.reassigned),
            relocations: l(&self.relocations),
            appends: l(&self.appends),
            rewrites: l(&self.rewrites),
        }
    }
}

/// Space use of `postings.dat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpaceStats {
    /// Bytes of the file in use (its allocated end).
    pub file_bytes: u64,
    /// Bytes of chunks written in live postings (stale entries included).
    pub live_bytes: u64,
    /// Bytes of the extents reserved by live postings.
    pub reserved_bytes: u64,
    /// Bytes free for reuse now.
    pub free_bytes: u64,
    /// Bytes freed but still referenced by an older generation on disk
    /// (reusable after `release_before`).
    pub pending_bytes: u64,
}

/// Most placement rounds of one batch (a safeguard: each round places
/// every vector or retries the few that met a concurrent split).
const MAX_ROUNDS: usize = 10_000;

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

impl Spann {
    /// Inserts one vector; returns its id.
    pub fn insert(&self, v: &[f32]) -> Result<u32> {
        Ok(self.insert_batch(v)?[0])
    }

    /// Inserts the rows of `data` (row-major); returns their ids, in order.
    /// Safe to call from many threads at once and alongside searches; the
    /// batch's vectors are placed in parallel. When it returns, every
    /// vector is searchable. On error no id of the batch stays live.
    pub fn insert_batch(&self, data: &[f32]) -> Result<Vec<u32>> {
        let dim = self.dim;
        if !data.len().is_multiple_of(dim) {
            return Err(SpannError::Dimension {
                what: "insert batch".into(),
                expected: dim,
                got: data.len() % dim,
            });
        }
        let n = data.len() / dim;
        if n == 0 {
            return Ok(Vec::new());
        }
        let _op = self.ops.enter();
        let mut batch = Batch {
            ids: Vec::with_capacity(n),
            vecs: Vec::with_capacity(data.len()),
            vers: vec![0; n],
        };
        let mut tmp = Vec::with_capacity(dim);
        for (i, v) in data.chunks_exact(dim).enumerate() {
            self.prepare(v, || format!("inserted vector {i}"), &mut tmp)?;
            batch.vecs.extend_from_slice(&tmp);
        }
        let first = self.versions.reserve(n)?;
        batch.ids.extend(first..first + n as u32);
        let ids = batch.ids.clone();
        let placed = self
            .write_rows(first, &batch.vecs)
            .and_then(|()| self.place(batch));
        if let Err(e) = placed {
            for &id in &ids {
                self.versions.delete(id);
            }
            return Err(e);
        }
        Counters::add(&self.stats.inserted, n as u64);
        self.maintain();
        Ok(ids)
    }

    /// Deletes `id` (a tombstone); returns `false` if it was already deleted.
    pub fn delete(&self, id: u32) -> Result<bool> {
        let _op = self.ops.enter();
        let fresh = self.versions.delete(id).ok_or(SpannError::UnknownId(id))?;
        if fresh {
            Counters::add(&self.stats.deleted, 1);
        }
        Ok(fresh)
    }

    /// Rewrites every posting holding stale entries and dissolves postings
    /// under `min_posting_len` live entries (their vectors are reassigned
    /// first, then the head is retired). Runs alongside inserts and searches.
    pub fn compact(&self) -> Result<()> {
        let _op = self.ops.enter();
        let n = self.heads.read().len();
        for h in 0..n as u32 {
            let pc = self.slots.get(h as usize);
            let cell = pc.get();
            if cell.state != State::Live {
                continue;
            }
            let p = {
                let _pin = self.epochs.pin();
                self.read_posting(h, cell.slot)?
            };
            let small = p.live.len() < self.params.min_posting_len
                && p.leaving.is_empty()
                && self.heads.read().live_len() > 1;
            if small {
                self.merge(h)?;
            } else if p.live.len() + p.leaving.len() < cell.slot.count as usize {
                let _w = pc.write.lock();
                let cell = pc.get();
                if cell.state == State::Live {
                    let p = self.read_posting(h, cell.slot)?;
                    self.rewrite(h, &p.kept())?;
                }
            }
        }
        self.maintain();
        Ok(())
    }

    /// Drains head `h`: new assignments and appends avoid it, its live
    /// vectors are placed elsewhere with new versions, then it is retired.
    /// (Concurrent compactions may drain the same head; one retires it.)
    fn merge(&self, h: u32) -> Result<()> {
        let pc = self.slots.get(h as usize);
        pc.draining.fetch_add(1, Ordering::AcqRel);
        self.draining.fetch_add(1, Ordering::AcqRel);
        let res = (|| -> Result<bool> {
            let moved = {
                let _pin = self.epochs.pin();
                let _w = pc.write.lock();
                let cell = pc.get();
                if cell.state != State::Live {
                    return Ok(false);
                }
                let p = self.read_posting(h, cell.slot)?;
                if !p.leaving.is_empty() {
                    // Its leaving copies may be the last ones searches can
                    // see until their moves complete: merge it next time.
                    return Ok(false);
                }
                match self.requeue(p.live) {
                    Some(moved) => moved,
                    None => return Ok(false),
                }
            };
            self.place(moved)?;
            let _w = pc.write.lock();
            if pc.get().state != State::Live {
                return Ok(false);
            }
            self.retire(h)?;
            Ok(true)
        })();
        self.draining.fetch_sub(1, Ordering::AcqRel);
        if !matches!(res, Ok(true)) {
            pc.draining.fetch_sub(1, Ordering::AcqRel);
        }
        if res? {
            Counters::add(&self.stats.merges, 1);
        }
        Ok(())
    }

    /// Starts moving every vector of `live` that is not deleted, each with
    /// the version its new copies get. `None` (and nothing moved) if one is
    /// already being moved by a split: its copy here may be its last one
    /// visible until that move completes, so the posting must stay.
    pub(super) fn requeue(&self, live: Batch) -> Option<Batch> {
        let dim = self.dim;
        let mut out = Batch::default();
        for i in 0..live.len() {
            let id = live.ids[i];
            match self.versions.start_move(id) {
                Some(to) => out.push(id, live.row(i, dim), to),
                None if self.contains(id) => {
                    for j in 0..out.len() {
                        self.versions.cancel_move(out.ids[j], out.vers[j]);
                    }
                    return None;
                }
                None => {}
            }
        }
        Counters::add(&self.stats.reassigned, out.len() as u64);
        Some(out)
    }

    /// Live copies of every vector id across all live postings (0 for
    /// deleted ids; copies left behind by a move in progress not counted):
    /// the replica-count distribution. Reads every posting.
    pub fn replica_counts(&self) -> Result<Vec<u16>> {
        let _pin = self.epochs.pin();
        let mut counts = vec![0u16; self.versions.len()];
        let n = self.heads.read().len();
        for h in 0..n as u32 {
            let cell = self.slots.get(h as usize).get();
            if cell.state != State::Live {
                continue;
            }
            for id in self.read_posting(h, cell.slot)?.live.ids {
                if let Some(c) = counts.get_mut(id as usize) {
                    *c = c.saturating_add(1);
                }
            }
        }
        Ok(counts)
    }

    /// Space use of `postings.dat`: file, live and reserved bytes, and what
    /// is free now or after the next release.
    pub fn space_stats(&self) -> SpaceStats {
        let n = self.heads.read().len();
        let (mut live, mut reserved) = (0u64, 0u64);
        for h in 0..n {
            let c = self.slots.get(h).get();
            if c.state == State::Live {
                live += u64::from(c.slot.bytes);
                reserved += u64::from(c.slot.capacity) * PAGE as u64;
            }
        }
        let u = self.alloc.lock().usage();
        SpaceStats {
            file_bytes: u.file_pages * PAGE as u64,
            live_bytes: live,
            reserved_bytes: reserved,
            free_bytes: u.free_pages * PAGE as u64,
            pending_bytes: u.pending_pages * PAGE as u64,
        }
    }

    /// Writes rows of ids `first..` to `vectors.f32` (lossy postings only).
    fn write_rows(&self, first: u32, vecs: &[f32]) -> Result<()> {
        let Some(vf) = &self.vectors_file else {
            return Ok(());
        };
        let off = PAGE as u64 + u64::from(first) * (self.dim * 4) as u64;
        let bytes: &[u8] = bytemuck::cast_slice(vecs);
        // Grow the file to whole pages first (O_DIRECT reads of the last
        // rows stay inside it); it only ever grows here, so concurrent
        // batches never cut each other's rows.
        let end = (off + bytes.len() as u64).div_ceil(PAGE as u64) * PAGE as u64;
        {
            let mut len = self.vectors_len.lock();
            if end > *len {
                vf.set_len(end)?;
                *len = end;
            }
        }
        vf.write_bytes(off, bytes)
    }

    /// Assigns and appends `batch`, then places what splits moved and what
    /// met a retired posting, until nothing is left. Moves whose new copies
    /// were never published are cancelled if it fails.
    pub(super) fn place(&self, batch: Batch) -> Result<()> {
        let mut pending = batch;
        let res = self.place_rounds(&mut pending);
        if res.is_err() {
            for i in 0..pending.len() {
                self.versions.cancel_move(pending.ids[i], pending.vers[i]);
            }
        }
        res
    }

    /// The rounds of [`Spann::place`]; on error `batch` holds what is
    /// still unplaced.
    fn place_rounds(&self, batch: &mut Batch) -> Result<()> {
        let dim = self.dim;
        let limit = self
            .layout
            .max_entries(self.params.max_posting_pages as usize);
        let mut rounds = 0;
        while !batch.is_empty() {
            rounds += 1;
            if rounds > MAX_ROUNDS {
                return Err(SpannError::param(
                    "placement",
                    format!("placement did not settle after {MAX_ROUNDS} rounds"),
                ));
            }
            // No pin here: a writer reads its own posting under its lock,
            // and a split pins only while it reads its neighbours.
            let chosen: Vec<Vec<u32>> = batch
                .vecs
                .par_chunks(dim)
                .map_init(
                    || (Vec::new(), Vec::new()),
                    |(c, out), v| {
                        self.assign_heads(v, c, out)?;
                        Ok(out.iter().map(|&(h, _)| h).collect())
                    },
                )
                .collect::<Result<_>>()?;
            if let Some(i) = chosen.iter().position(Vec::is_empty) {
                self.bootstrap(batch.row(i, dim))?;
            }
            let mut by_head: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for (i, c) in chosen.iter().enumerate() {
                for &h in c {
                    by_head.entry(h).or_default().push(i);
                }
            }
            let groups: Vec<(u32, Vec<usize>)> = by_head.into_iter().collect();
            let outcomes: Vec<Result<Option<Batch>>> = groups
                .par_iter()
                .map(|(h, rows)| self.append(*h, rows, batch, limit))
                .collect();
            let mut failed = vec![0usize; batch.len()];
            let mut next = Batch::default();
            let mut error = None;
            for ((_, rows), out) in groups.iter().zip(outcomes) {
                match out {
                    Ok(Some(moved)) => next.append(moved),
                    Ok(None) => rows.iter().for_each(|&i| failed[i] += 1),
                    Err(e) => error = Some(e),
                }
            }
            let mut bumps = Vec::new();
            for i in 0..batch.len() {
                let id = batch.ids[i];
                if chosen[i].len() == failed[i] {
                    next.push(id, batch.row(i, dim), batch.vers[i]);
                } else if self
                    .versions
                    .word(id)
                    .is_some_and(|w| versions::newer(batch.vers[i], w & VERSION_MASK))
                {
                    bumps.push(Deferred::Bump {
                        id,
                        version: batch.vers[i],
                    });
                }
            }
            // Published: the raises wait only for readers pinned before now,
            // and apply right away if there are none.
            self.epochs.defer(bumps);
            self.maintain();
            *batch = next;
            if let Some(e) = error {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Picks the heads of `v`, skipping heads being drained by a merge.
    fn assign_heads(
        &self,
        v: &[f32],
        cands: &mut Vec<crate::hnsw::Neighbor>,
        out: &mut Vec<(u32, f32)>,
    ) -> Result<()> {
        let heads = self.heads.read();
        let published = |id: NodeId| self.slots.get(id.0 as usize).published();
        let not_draining = |id: NodeId| {
            self.slots
                .get(id.0 as usize)
                .draining
                .load(Ordering::Acquire)
                == 0
        };
        let filter = assign::HeadFilter {
            allow: (self.draining.load(Ordering::Acquire) > 0)
                .then_some(&not_draining as &dyn Fn(NodeId) -> bool),
            published: Some(&published),
        };
        assign::assign(&heads, &self.dist, &self.params, v, filter, cands, out)
    }

    /// Creates a head at `v` if no head can take vectors (an empty index,
    /// or every head draining).
    fn bootstrap(&self, v: &[f32]) -> Result<()> {
        let _one = self.bootstrap.lock();
        let (mut c, mut out) = (Vec::new(), Vec::new());
        self.assign_heads(v, &mut c, &mut out)?;
        if !out.is_empty() {
            return Ok(());
        }
        let (h, _w) = self.insert_head(v)?;
        let born = self.alloc.lock().open_generation();
        self.slots.get(h as usize).set(Cell {
            slot: PostingSlot::default(),
            born,
            state: State::Live,
        });
        Ok(())
    }

    /// Inserts a head at `v` into the graph (growing it if full) and returns
    /// its id with its posting's writer lock held; its slot is unborn until
    /// the caller publishes it.
    pub(super) fn insert_head(&self, v: &[f32]) -> Result<(u32, MutexGuard<'_, ()>)> {
        let _graph = self.head_inserts.read_recursive();
        loop {
            {
                let heads = self.heads.read();
                match heads.insert(v) {
                    Ok(id) => {
                        let w = self.slots.get(id.0 as usize).write.lock();
                        return Ok((id.0, w));
                    }
                    Err(HnswError::Full { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut heads = self.heads.write();
            if heads.len() >= heads.capacity() {
                let cap = (heads.capacity() * 2).max(heads.len() + 64);
                heads.reserve(cap);
            }
        }
    }

    /// Appends rows `rows` of `batch` to posting `h`. `None`: the posting is
    /// not live (a split or merge got there first); place the rows again.
    /// Otherwise the vectors a split of `h` moved (to be placed again).
    fn append(&self, h: u32, rows: &[usize], batch: &Batch, limit: usize) -> Result<Option<Batch>> {
        let dim = self.dim;
        let pc = self.slots.get(h as usize);
        let _w = pc.write.lock();
        let cell = pc.get();
        if cell.state != State::Live || pc.draining.load(Ordering::Acquire) > 0 {
            return Ok(None);
        }
        let s = cell.slot;
        let chunk_bytes = self.layout.bytes(rows.len());
        if s.capacity > 0
            && s.count as usize + rows.len() <= limit
            && u64::from(s.bytes) + chunk_bytes as u64 <= u64::from(s.capacity) * PAGE as u64
        {
            let mut pb = PostingBuilder::default();
            let mut code = Vec::with_capacity(self.layout.code_bytes());
            for &i in rows {
                code.clear();
                self.codec.encode(batch.row(i, dim), &mut code);
                pb.push(batch.ids[i], batch.vers[i], &code);
            }
            let mut bytes = Vec::with_capacity(chunk_bytes);
            pb.chunk(h, self.layout, &mut bytes);
            self.postings_file
                .write_bytes(s.first_page * PAGE as u64 + u64::from(s.bytes), &bytes)?;
            pc.update(|c| {
                c.slot.count += rows.len() as u32;
                c.slot.bytes += chunk_bytes as u32;
            });
            Counters::add(&self.stats.appends, 1);
            return Ok(Some(Batch::default()));
        }
        let Posting { mut live, leaving } = self.read_posting(h, s)?;
        // A reassigned vector may land back in a posting that holds its
        // previous copy: one entry per id, the newer.
        let mut at: HashMap<u32, usize> = live
            .ids
            .iter()
            .enumerate()
            .map(|(j, &id)| (id, j))
            .collect();
        for &i in rows {
            match at.get(&batch.ids[i]) {
                Some(&j) => {
                    if versions::newer(batch.vers[i], live.vers[j]) {
                        live.vers[j] = batch.vers[i];
                    }
                }
                None => {
                    at.insert(batch.ids[i], live.len());
                    live.push(batch.ids[i], batch.row(i, dim), batch.vers[i]);
                }
            }
        }
        // A leaving copy is redundant where its new copy now is.
        let mut gone = Batch::default();
        for j in 0..leaving.len() {
            if !at.contains_key(&leaving.ids[j]) {
                gone.push(leaving.ids[j], leaving.row(j, dim), leaving.vers[j]);
            }
        }
        if live.len() > limit {
            return self
                .split(
                    h,
                    Posting {
                        live,
                        leaving: gone,
                    },
                    limit,
                )
                .map(Some);
        }
        if s.capacity > 0 {
            Counters::add(&self.stats.relocations, 1);
        }
        live.append(gone);
        self.rewrite(h, &live)?;
        Ok(Some(Batch::default()))
    }

    /// Writes `entries` (each with its own version) as posting `h` into a
    /// fresh extent with room up to the length limit, publishes it and
    /// defers freeing the old extent. The caller holds `h`'s writer lock.
    pub(super) fn rewrite(&self, h: u32, entries: &Batch) -> Result<()> {
        let dim = self.dim;
        let mut pb = PostingBuilder::default();
        let mut code = Vec::with_capacity(self.layout.code_bytes());
        for i in 0..entries.len() {
            code.clear();
            self.codec.encode(entries.row(i, dim), &mut code);
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
    fn alloc_extent(&self, pages: u32) -> Result<(super::alloc::Extent, u64)> {
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
    pub(super) fn retire(&self, h: u32) -> Result<()> {
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
            extent: super::alloc::Extent {
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

    /// The entries of posting `h` at `slot` that are not garbage, one per
    /// id (the newest copy), split into members and leaving copies, with
    /// their full vectors (decoded from f32 codes, else read from
    /// `vectors.f32`). The caller holds a pin or `h`'s writer lock.
    pub(super) fn read_posting(&self, h: u32, slot: PostingSlot) -> Result<Posting> {
        let mut out = Posting::default();
        if slot.bytes == 0 {
            return Ok(out);
        }
        let dim = self.dim;
        let file = &self.postings_file;
        let offset = slot.first_page * PAGE as u64;
        let pages = (slot.bytes as usize).div_ceil(PAGE);
        let mut tmp = Vec::with_capacity(dim);
        let lossy = self.codec.lossy();
        file.read_pages(slot.first_page, pages, |buf| -> Result<()> {
            let view = self.checked_posting(h, slot, buf)?;
            // id -> (is leaving, index)
            let mut at: HashMap<u32, (bool, usize)> = HashMap::with_capacity(view.len());
            for (i, e) in view.iter().enumerate() {
                let Some(w) = self.versions.word(e.id) else {
                    return Err(SpannError::corrupt(
                        file.path(),
                        offset,
                        format!("entry {i} names unknown id {}", e.id),
                    ));
                };
                if versions::garbage(e.version, w) {
                    continue;
                }
                let leaving = versions::leaving(e.version, w);
                match at.get(&e.id).copied() {
                    // Two copies in one posting (a move landed where the id
                    // was): keep the newer; a member beats a leaving copy.
                    Some((false, j)) => {
                        if !leaving && versions::newer(e.version, out.live.vers[j]) {
                            out.live.vers[j] = e.version;
                        }
                        continue;
                    }
                    Some((true, j)) if leaving => {
                        if versions::newer(e.version, out.leaving.vers[j]) {
                            out.leaving.vers[j] = e.version;
                        }
                        continue;
                    }
                    Some((true, j)) => {
                        // Promote: drop the leaving copy, keep this member.
                        out.leaving.ids[j] = u32::MAX;
                    }
                    None => {}
                }
                let b = if leaving {
                    &mut out.leaving
                } else {
                    &mut out.live
                };
                at.insert(e.id, (leaving, b.len()));
                b.ids.push(e.id);
                b.vers.push(e.version);
                if !lossy {
                    self.codec.decode(e.code, &mut tmp);
                    b.vecs.extend_from_slice(&tmp);
                }
            }
            Ok(())
        })??;
        if out.leaving.ids.contains(&u32::MAX) {
            let mut kept = Batch::default();
            for j in 0..out.leaving.len() {
                if out.leaving.ids[j] != u32::MAX {
                    if lossy {
                        kept.ids.push(out.leaving.ids[j]);
                        kept.vers.push(out.leaving.vers[j]);
                    } else {
                        kept.push(
                            out.leaving.ids[j],
                            out.leaving.row(j, dim),
                            out.leaving.vers[j],
                        );
                    }
                }
            }
            out.leaving = kept;
        }
        if let Some(vf) = &self.vectors_file {
            let row = dim * 4;
            for b in [&mut out.live, &mut out.leaving] {
                for &id in &b.ids {
                    vf.read_bytes(PAGE as u64 + u64::from(id) * row as u64, row, |r| {
                        b.vecs.extend(
                            r.chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                        )
                    })?;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset;
    use crate::distance::Metric;
    use crate::spann::{OpenParams, SearchParams, SpannParams};

    /// One id reassigned far more often than a 7-bit version could count:
    /// none of its hundreds of stale copies may count as live again.
    #[test]
    fn versions_do_not_wrap_under_many_reassignments() {
        let dim = 8;
        let data = dataset::synthetic::clustered(400, dim, 3);
        let dir = tempfile::tempdir().unwrap();
        let params = SpannParams {
            head_ratio: 0.05,
            max_posting_pages: 64,
            ..SpannParams::default()
        };
        let index = Spann::build(
            dir.path(),
            data.clone(),
            Metric::L2,
            params,
            OpenParams::default(),
            false,
        )
        .unwrap();
        let x = 7u32;
        let entries = |index: &Spann| index.posting_lengths().iter().sum::<u32>();
        let first = index.replica_counts().unwrap()[x as usize];
        let before = entries(&index);
        let rounds = 300;
        for _ in 0..rounds {
            let to = index.versions.start_move(x).unwrap();
            let mut b = Batch::default();
            b.push(x, data.row(x as usize), to);
            index.place(b).unwrap();
            index.maintain();
            let c = index.replica_counts().unwrap()[x as usize];
            assert!(c >= 1 && c as usize <= params.replicas, "{c} live copies");
        }
        assert_eq!(index.versions.word(x), Some(rounds));
        let stale = entries(&index) - before;
        // Appends leave the old copies in place (one rewrite dropped those
        // made before it): more than the 128 a 7-bit version tells apart.
        assert!(stale > 200, "stale copies in the postings: {stale}");
        let sp = SearchParams {
            nprobe: usize::MAX,
            ..SearchParams::default()
        };
        let hits = index.search(data.row(x as usize), 5, &sp).unwrap().0;
        assert_eq!(hits.iter().filter(|h| h.id == x).count(), 1);
        assert_eq!(hits[0].distance, 0.0);
        // Compaction drops every stale copy; a reopen agrees.
        index.compact().unwrap();
        let copies = index.replica_counts().unwrap()[x as usize] as u32;
        assert!(entries(&index) <= before - first as u32 + copies);
        index.flush().unwrap();
        drop(index);
        let index = Spann::open(dir.path(), OpenParams::default()).unwrap();
        assert_eq!(index.replica_counts().unwrap()[x as usize] as u32, copies);
        assert_eq!(index.versions.word(x), Some(rounds));
    }
}
