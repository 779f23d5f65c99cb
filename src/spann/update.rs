//! Updating in place, SPFresh's LIRE protocol:
//! - insert: postings chosen by the RNG rule ([`super::assign`]), appended to
//!   (read, drop stale entries, add, write back; relocated to the end of the
//!   file with room to grow when it no longer fits);
//! - delete: a tombstone bit in the version map, stale copies dropped lazily;
//! - split: a posting over its limit is cut by balanced 2-means into two new
//!   heads, the old head is deleted, and only vectors that LIRE's two
//!   conditions flag are reassigned (new version, insert path again);
//! - merge ([`Spann::compact`]): postings under `min_posting_len` live entries
//!   are dissolved and their vectors reassigned.
//!
//! Updates take `&mut self`: searches never see a half-applied split.

use std::collections::HashSet;

use rayon::prelude::*;

use super::posting::{decode_posting, PostingBuilder, PAGE};
use super::{assign, cluster, PostingSlot, Result, Spann, SpannError, DELETED, VERSION_MASK};
use crate::hnsw::NodeId;

/// Counters of the updates applied since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct UpdateStats {
    pub inserted: u64,
    pub deleted: u64,
    pub splits: u64,
    pub merges: u64,
    pub reassigned: u64,
    pub relocations: u64,
}

/// Members tried, nearest the centre first, as a split's new head.
const MEDOID_TRIES: usize = 8;
/// Distance under which a member counts as the same point as a head.
const SAME_POINT: f32 = 1e-6;

/// Vectors waiting to be placed: ids and rows (normalised).
#[derive(Default)]
struct Batch {
    ids: Vec<u32>,
    vecs: Vec<f32>,
}

impl Spann {
    /// Inserts one vector; returns its id.
    pub fn insert(&mut self, v: &[f32]) -> Result<u32> {
        Ok(self.insert_batch(v)?[0])
    }

    /// Inserts the rows of `data` (row-major); returns their ids, in order.
    /// Each touched posting is rewritten once per batch.
    pub fn insert_batch(&mut self, data: &[f32]) -> Result<Vec<u32>> {
        let dim = self.info.dim;
        if !data.len().is_multiple_of(dim) {
            return Err(SpannError::Dimension {
                what: "insert batch".into(),
                expected: dim,
                got: data.len() % dim,
            });
        }
        let n = data.len() / dim;
        if self.versions.len() + n >= u32::MAX as usize {
            return Err(SpannError::InvalidParam("vector ids exhausted".into()));
        }
        let mut batch = Batch {
            ids: Vec::with_capacity(n),
            vecs: Vec::with_capacity(data.len()),
        };
        let mut tmp = Vec::with_capacity(dim);
        for (i, v) in data.chunks_exact(dim).enumerate() {
            self.prepare(v, &format!("inserted vector {i}"), &mut tmp)?;
            batch.vecs.extend_from_slice(&tmp);
        }
        let first = self.versions.len() as u32;
        batch.ids.extend(first..first + n as u32);
        if let Some(vf) = &self.vectors_file {
            let off = PAGE as u64 + u64::from(first) * (dim * 4) as u64;
            let bytes: &[u8] = bytemuck::cast_slice(&batch.vecs);
            vf.write_bytes(off, bytes)?;
            // Keep the file whole pages long (O_DIRECT reads of the last rows).
            let end = off + bytes.len() as u64;
            let pad = (PAGE as u64 - end % PAGE as u64) % PAGE as u64;
            vf.write_bytes(end, &vec![0u8; pad as usize])?;
        }
        self.versions.resize(self.versions.len() + n, 0);
        self.stats.inserted += n as u64;
        let ids = batch.ids.clone();
        self.place(batch)?;
        Ok(ids)
    }

    /// Deletes `id` (a tombstone); returns `false` if it was already deleted.
    pub fn delete(&mut self, id: u32) -> Result<bool> {
        let v = self
            .versions
            .get_mut(id as usize)
            .ok_or(SpannError::UnknownId(id))?;
        if *v & DELETED != 0 {
            return Ok(false);
        }
        *v |= DELETED;
        self.stats.deleted += 1;
        Ok(true)
    }

    /// Rewrites every posting holding stale entries and dissolves postings
    /// under `min_posting_len` live entries (their vectors are reassigned).
    pub fn compact(&mut self) -> Result<()> {
        let mut pending = Batch::default();
        for h in 0..self.postings.len() as u32 {
            let slot = self.postings[h as usize];
            if slot.capacity == 0 {
                continue;
            }
            let live = self.read_live(h)?;
            if live.ids.len() < self.info.params.min_posting_len && self.heads.live_len() > 1 {
                self.drop_head(h)?;
                self.stats.merges += 1;
                self.requeue(live, &mut pending);
            } else if live.ids.len() < slot.count as usize {
                self.write_posting(h, &live)?;
            }
        }
        self.place(pending)
    }

    /// Live copies of every vector id across all postings (0 for deleted
    /// ids): the replica-count distribution. Reads every posting.
    pub fn replica_counts(&self) -> Result<Vec<u16>> {
        let mut counts = vec![0u16; self.versions.len()];
        for h in 0..self.postings.len() as u32 {
            for id in self.read_live(h)?.ids {
                counts[id as usize] = counts[id as usize].saturating_add(1);
            }
        }
        Ok(counts)
    }

    /// Assigns and appends `batch`, then splits what overflowed, until no
    /// vector is left to (re)place.
    fn place(&mut self, mut batch: Batch) -> Result<()> {
        let dim = self.info.dim;
        let limit = self
            .layout
            .max_entries(self.info.params.max_posting_pages as usize);
        while !batch.ids.is_empty() {
            let (heads, dist, params) = (&self.heads, &self.dist, &self.info.params);
            let chosen: Vec<Vec<(u32, f32)>> = batch
                .vecs
                .par_chunks(dim)
                .map_init(
                    || (Vec::new(), Vec::new()),
                    |(c, out), v| {
                        assign::assign(heads, dist, params, v, c, out).map(|_| out.clone())
                    },
                )
                .collect::<Result<_>>()?;
            let mut by_head: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
            for (i, c) in chosen.iter().enumerate() {
                for &(h, _) in c {
                    by_head.entry(h).or_default().push(i);
                }
            }
            let mut over = Vec::new();
            for (h, rows) in by_head {
                let mut live = self.read_live(h)?;
                for i in rows {
                    live.ids.push(batch.ids[i]);
                    live.vecs
                        .extend_from_slice(&batch.vecs[i * dim..(i + 1) * dim]);
                }
                if live.ids.len() > limit {
                    over.push(h);
                }
                self.write_posting(h, &live)?;
            }
            batch = Batch::default();
            for h in over {
                let moved = self.split(h, limit)?;
                batch.ids.extend(moved.ids);
                batch.vecs.extend(moved.vecs);
            }
        }
        Ok(())
    }

    /// Splits posting `h` by balanced 2-means; returns the vectors LIRE says
    /// to reassign (their versions already bumped).
    fn split(&mut self, h: u32, limit: usize) -> Result<Batch> {
        let dim = self.info.dim;
        let live = self.read_live(h)?;
        if live.ids.len() <= limit {
            self.write_posting(h, &live)?;
            return Ok(Batch::default());
        }
        let old: Vec<f32> = self
            .heads
            .vector(NodeId(h))
            .expect("live head has a vector")
            .to_vec();
        let local: Vec<u32> = (0..live.ids.len() as u32).collect();
        let seed = self.info.params.seed ^ u64::from(h) ^ self.stats.splits;
        let (mut side, centres) = cluster::balanced_kmeans(
            &live.vecs,
            dim,
            &local,
            2,
            self.info.metric,
            self.info.params.balance,
            seed,
        );
        let ones = side.iter().filter(|&&s| s == 1).count();
        if ones == 0 || ones == side.len() || ones.max(side.len() - ones) > limit {
            // Too uneven (or duplicates): cut at the median of d(v, c0) − d(v, c1),
            // so each side holds half and repeated splits terminate.
            let c0 = &centres[..dim];
            let c1 = &centres[dim..];
            let mut order: Vec<(f32, usize)> = (0..side.len())
                .map(|i| {
                    let v = &live.vecs[i * dim..(i + 1) * dim];
                    (self.dist.distance(v, c0) - self.dist.distance(v, c1), i)
                })
                .collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let half = order.len() / 2;
            for (rank, &(_, i)) in order.iter().enumerate() {
                side[i] = u32::from(rank >= half);
            }
        }
        // The new heads are real members, as in the bulk build: each side's
        // member nearest its 2-means centre. Centroids sit inside the data,
        // close to each other and to every head around, so the RNG rule
        // pruned most of a vector's other replicas (3.1 copies per vector
        // against 5.5 for the bulk build). A member that coincides with a
        // live head (the old head itself, an earlier split's head, a
        // duplicate row) is skipped: exact duplicates in the head graph link
        // only to each other, and once deleted such islands answer searches
        // with nothing.
        let mut centres = centres;
        if self.heads.len() + 2 > self.heads.capacity() {
            let cap = (self.heads.capacity() * 2).max(self.heads.len() + 64);
            self.heads.reserve(cap);
        }
        let mut new_heads = [0u32; 2];
        let mut parts = [Batch::default(), Batch::default()];
        for (j, nh) in new_heads.iter_mut().enumerate() {
            let mut members: Vec<(f32, usize)> = {
                let c = &centres[j * dim..(j + 1) * dim];
                (0..side.len())
                    .filter(|&i| side[i] as usize == j)
                    .map(|i| (self.dist.distance(&live.vecs[i * dim..(i + 1) * dim], c), i))
                    .collect()
            };
            let c = &mut centres[j * dim..(j + 1) * dim];
            members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, i) in members.iter().take(MEDOID_TRIES) {
                let v = &live.vecs[i * dim..(i + 1) * dim];
                let taken = self
                    .heads
                    .search(v, 1, 16)?
                    .first()
                    .is_some_and(|n| n.distance <= SAME_POINT);
                if !taken {
                    c.copy_from_slice(v);
                    break;
                }
            }
            // (else the centre itself, as before)
            debug_assert_eq!(self.heads.len(), self.postings.len());
            *nh = self.heads.insert(&*c)?.0;
            self.postings.push(PostingSlot::default());
        }
        for (i, &s) in side.iter().enumerate() {
            parts[s as usize].ids.push(live.ids[i]);
            parts[s as usize]
                .vecs
                .extend_from_slice(&live.vecs[i * dim..(i + 1) * dim]);
        }
        for j in 0..2 {
            self.write_posting(new_heads[j], &parts[j])?;
        }
        self.drop_head(h)?;
        self.stats.splits += 1;
        let mut moved = Batch::default();
        for (j, part) in parts.iter().enumerate() {
            if part.ids.len() > limit {
                let m = self.split(new_heads[j], limit)?;
                moved.ids.extend(m.ids);
                moved.vecs.extend(m.vecs);
            }
        }

        // LIRE condition 1: a member moves only if the old head was at least
        // as close to it as the new head it was given.
        let d = self.dist;
        let cen = |j: usize| &centres[j * dim..(j + 1) * dim];
        let nested = moved.ids.len();
        let mut taken: HashSet<u32> = moved.ids.iter().copied().collect();
        for (i, &s) in side.iter().enumerate() {
            let v = &live.vecs[i * dim..(i + 1) * dim];
            if d.distance(v, &old) <= d.distance(v, cen(s as usize)) && taken.insert(live.ids[i]) {
                moved.ids.push(live.ids[i]);
                moved.vecs.extend_from_slice(v);
            }
        }
        // Condition 2: a vector of a nearby posting moves only if a new head
        // is closer to it than both the old head and its current head.
        let k = self.info.params.reassign_neighbors;
        if k > 0 {
            let near = self.heads.search(&old, k + 2, (k + 2).max(64))?;
            for nb in near.iter().filter(|n| !new_heads.contains(&n.id.0)) {
                let p = nb.id.0;
                let pv = self
                    .heads
                    .vector(nb.id)
                    .expect("live head has a vector")
                    .to_vec();
                let lp = self.read_live(p)?;
                for (i, &id) in lp.ids.iter().enumerate() {
                    let v = &lp.vecs[i * dim..(i + 1) * dim];
                    let dn = d.distance(v, cen(0)).min(d.distance(v, cen(1)));
                    if dn < d.distance(v, &old) && dn < d.distance(v, &pv) && taken.insert(id) {
                        moved.ids.push(id);
                        moved.vecs.extend_from_slice(v);
                    }
                }
            }
        }
        for &id in &moved.ids[nested..] {
            let v = &mut self.versions[id as usize];
            *v = (*v & VERSION_MASK).wrapping_add(1) & VERSION_MASK;
        }
        self.stats.reassigned += (moved.ids.len() - nested) as u64;
        Ok(moved)
    }

    /// Removes head `h` and frees its posting's pages.
    fn drop_head(&mut self, h: u32) -> Result<()> {
        self.heads.delete(NodeId(h))?;
        let slot = &mut self.postings[h as usize];
        self.info.dead_pages += u64::from(slot.capacity);
        *slot = PostingSlot::default();
        Ok(())
    }

    /// Bumps the versions of `live`'s vectors and queues them for placement.
    fn requeue(&mut self, live: Batch, pending: &mut Batch) {
        for &id in &live.ids {
            let v = &mut self.versions[id as usize];
            if *v & DELETED == 0 {
                *v = (*v & VERSION_MASK).wrapping_add(1) & VERSION_MASK;
            }
        }
        self.stats.reassigned += live.ids.len() as u64;
        pending.ids.extend(live.ids);
        pending.vecs.extend(live.vecs);
    }

    /// The live entries of posting `h` with their full vectors (decoded from
    /// f32 codes, else read from `vectors.f32`).
    fn read_live(&self, h: u32) -> Result<Batch> {
        let slot = self.postings[h as usize];
        let mut out = Batch::default();
        if slot.capacity == 0 || slot.count == 0 {
            return Ok(out);
        }
        let dim = self.info.dim;
        let pages = self.layout.pages(slot.count as usize);
        let file = &self.postings_file;
        let offset = slot.first_page * PAGE as u64;
        let mut tmp = Vec::with_capacity(dim);
        file.read_pages(slot.first_page, pages, |buf| -> Result<()> {
            let view = decode_posting(buf, self.layout, file.path(), offset)?;
            if view.head != h {
                return Err(SpannError::corrupt(
                    file.path(),
                    offset,
                    format!("posting of head {} where {h} was expected", view.head),
                ));
            }
            for i in 0..view.len() {
                let id = view.id(i);
                let Some(&v) = self.versions.get(id as usize) else {
                    return Err(SpannError::corrupt(
                        file.path(),
                        offset,
                        format!("entry {i} names unknown id {id}"),
                    ));
                };
                if v & DELETED != 0 || v != view.version(i) {
                    continue;
                }
                out.ids.push(id);
                if !self.codec.lossy() {
                    self.codec.decode(view.code(i), &mut tmp);
                    out.vecs.extend_from_slice(&tmp);
                }
            }
            Ok(())
        })??;
        if let Some(vf) = &self.vectors_file {
            let row = dim * 4;
            for &id in &out.ids {
                vf.read_bytes(PAGE as u64 + u64::from(id) * row as u64, row, |b| {
                    out.vecs.extend(
                        b.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    )
                })?;
            }
        }
        Ok(out)
    }

    /// Writes `entries` as posting `h` (current versions), in place when it
    /// fits, else at the end of the file with room up to the length limit.
    fn write_posting(&mut self, h: u32, entries: &Batch) -> Result<()> {
        let dim = self.info.dim;
        let mut pb = PostingBuilder::default();
        let mut code = Vec::with_capacity(self.layout.code_bytes());
        for (i, &id) in entries.ids.iter().enumerate() {
            code.clear();
            self.codec
                .encode(&entries.vecs[i * dim..(i + 1) * dim], &mut code);
            pb.push(id, self.versions[id as usize] & VERSION_MASK, &code);
        }
        let mut bytes = Vec::new();
        pb.finish(h, self.layout, &mut bytes);
        let pages = (bytes.len() / PAGE) as u32;
        let mut slot = self.postings[h as usize];
        if pages > slot.capacity {
            self.info.dead_pages += u64::from(slot.capacity);
            if slot.capacity > 0 {
                self.stats.relocations += 1;
            }
            slot.capacity = pages.max(self.info.params.max_posting_pages);
            slot.first_page = self.info.file_pages;
            self.info.file_pages += u64::from(slot.capacity);
        }
        self.postings_file.write_pages(slot.first_page, &bytes)?;
        slot.count = entries.ids.len() as u32;
        self.postings[h as usize] = slot;
        Ok(())
    }
}
