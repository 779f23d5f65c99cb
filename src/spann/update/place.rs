//! Placing vectors: rounds of assignment (RNG rule, skipping drained and
//! unpublished heads) and per-posting appends, a first head when none can
//! take vectors, and the insertion of new heads into the graph.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;
use rayon::prelude::*;

use super::{Batch, Counters, Posting};
use crate::hnsw::{HnswError, NodeId};
use crate::spann::epoch::Deferred;
use crate::spann::posting::{PostingBuilder, PAGE};
use crate::spann::slots::{Cell, State};
use crate::spann::versions::{self, VERSION_MASK};
use crate::spann::{assign, PostingSlot, Result, Spann, SpannError};

/// Most placement rounds of one batch (a safeguard: each round places
/// every vector or retries the few that met a concurrent split).
const MAX_ROUNDS: usize = 10_000;

impl Spann {
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
    /// the caller publishes it. The writer lock is taken once the graph's
    /// locks are released (posting writer locks come before them in the lock
    /// order); no other thread can hold it yet, as no writer picks an
    /// unpublished head.
    pub(in crate::spann) fn insert_head(&self, v: &[f32]) -> Result<(u32, MutexGuard<'_, ()>)> {
        let id = {
            let _graph = self.head_inserts.read_recursive();
            loop {
                {
                    let heads = self.heads.read();
                    match heads.insert(v) {
                        Ok(id) => break id.0,
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
        };
        let w = self.slots.get(id as usize).write.lock();
        Ok((id, w))
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
                self.codec.encode_bytes(batch.row(i, dim), &mut code);
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
}
