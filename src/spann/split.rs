//! Splitting a posting over its length limit (SPFresh's LIRE): balanced
//! 2-means cuts it in two, each side gets a new head (a real member, as in
//! the bulk build) and a fresh posting, both are published, and only then
//! is the old head retired. Vectors that LIRE's two conditions flag are
//! returned to be placed again with their next version.
//!
//! A split runs under the old posting's writer lock and takes the new
//! heads' writer locks as it creates them, so appends to the new postings
//! wait until they are published. It never calls into rayon while holding
//! them (the 2-means runs on the calling thread).

use std::collections::HashSet;

use parking_lot::MutexGuard;

use super::slots::State;
use super::update::{Batch, Counters, Posting};
use super::{cluster, Result, Spann, SpannError};
use crate::hnsw::NodeId;

/// Members tried, nearest the centre first, as a split's new head.
const MEDOID_TRIES: usize = 8;
/// Distance under which a member counts as the same point as a head.
const SAME_POINT: f32 = 1e-6;

impl Spann {
    /// Splits posting `h`, whose writer lock the caller holds and whose
    /// members (plus the ones being added) are `posting.live`, over `limit`.
    /// Leaving copies go with the nearer new head. Returns the vectors LIRE
    /// says to reassign (their moves started), each with its next version.
    pub(super) fn split(&self, h: u32, posting: Posting, limit: usize) -> Result<Batch> {
        let mut created: Vec<(u32, MutexGuard<'_, ()>)> = Vec::new();
        let res = self.split_into(h, posting, limit, &mut created);
        if res.is_err() {
            // Heads created but never published would stall every writer
            // that picks them: take them out again.
            for (nh, _) in &created {
                let pc = self.slots.get(*nh as usize);
                if pc.get().state == State::Unborn {
                    pc.update(|c| c.state = State::Retired);
                    let _ = self.heads.read().delete(NodeId(*nh));
                }
            }
        }
        res
    }

    fn split_into<'a>(
        &'a self,
        h: u32,
        posting: Posting,
        limit: usize,
        created: &mut Vec<(u32, MutexGuard<'a, ()>)>,
    ) -> Result<Batch> {
        let dim = self.dim;
        let Posting { live, leaving } = posting;
        let old: Vec<f32> = self
            .heads
            .read()
            .vector(NodeId(h))
            .map(std::borrow::Cow::into_owned)
            .ok_or_else(|| SpannError::param("head", format!("split of unknown head {h}")))?;
        let local: Vec<u32> = (0..live.len() as u32).collect();
        let seed = self.params.seed
            ^ u64::from(h)
            ^ self.stats.splits.load(std::sync::atomic::Ordering::Relaxed);
        let (mut side, centres) = cluster::balanced_kmeans_sequential(
            &live.vecs,
            dim,
            &local,
            2,
            self.metric,
            self.params.balance,
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
                    let v = live.row(i, dim);
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
        let mut new_heads = [0u32; 2];
        let mut parts = [Batch::default(), Batch::default()];
        for (i, &s) in side.iter().enumerate() {
            parts[s as usize].push(live.ids[i], live.row(i, dim), live.vers[i]);
        }
        for (j, nh) in new_heads.iter_mut().enumerate() {
            let mut members: Vec<(f32, usize)> = {
                let c = &centres[j * dim..(j + 1) * dim];
                (0..parts[j].len())
                    .map(|i| (self.dist.distance(parts[j].row(i, dim), c), i))
                    .collect()
            };
            let c = &mut centres[j * dim..(j + 1) * dim];
            members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, i) in members.iter().take(MEDOID_TRIES) {
                let v = parts[j].row(i, dim);
                let taken = self
                    .heads
                    .read()
                    .search(v, 1, 16)?
                    .first()
                    .is_some_and(|n| n.distance <= SAME_POINT);
                if !taken {
                    c.copy_from_slice(v);
                    break;
                }
            }
            // (else the centre itself)
            let (id, guard) = self.insert_head(c)?;
            *nh = id;
            created.push((id, guard));
        }
        let mut gone = [Batch::default(), Batch::default()];
        for i in 0..leaving.len() {
            let v = leaving.row(i, dim);
            let j = usize::from(
                self.dist.distance(v, &centres[dim..]) < self.dist.distance(v, &centres[..dim]),
            );
            gone[j].push(leaving.ids[i], v, leaving.vers[i]);
        }
        for j in 0..2 {
            let mut all = parts[j].clone();
            all.append(gone[j].clone());
            self.rewrite(new_heads[j], &all)?;
        }
        self.retire(h)?;
        Counters::add(&self.stats.splits, 1);
        let mut moved = Batch::default();
        for j in 0..2 {
            if parts[j].len() > limit {
                // Still over (a side kept more than the limit): split again,
                // under the lock `created` holds.
                let again = Posting {
                    live: parts[j].clone(),
                    leaving: std::mem::take(&mut gone[j]),
                };
                moved.append(self.split(new_heads[j], again, limit)?);
            }
        }

        // LIRE condition 1: a member moves only if the old head was at least
        // as close to it as the new head it was given.
        let d = self.dist;
        let cen = |j: usize| &centres[j * dim..(j + 1) * dim];
        let nested = moved.len();
        let mut taken: HashSet<u32> = moved.ids.iter().copied().collect();
        let mut flag = |id: u32, v: &[f32], moved: &mut Batch| {
            if !taken.insert(id) {
                return;
            }
            if let Some(to) = self.versions.start_move(id) {
                moved.push(id, v, to);
            }
        };
        for (j, part) in parts.iter().enumerate() {
            for i in 0..part.len() {
                let v = part.row(i, dim);
                if d.distance(v, &old) <= d.distance(v, cen(j)) {
                    flag(part.ids[i], v, &mut moved);
                }
            }
        }
        // Condition 2: a vector of a nearby posting moves only if a new head
        // is closer to it than both the old head and its current head.
        let k = self.params.reassign_neighbors;
        let mut neighbours = || -> Result<()> {
            if k == 0 {
                return Ok(());
            }
            let near = self.heads.read().search(&old, k + 2, (k + 2).max(64))?;
            for nb in near.iter().filter(|n| !new_heads.contains(&n.id.0)) {
                let p = nb.id.0;
                let Some(pv) = self
                    .heads
                    .read()
                    .vector(nb.id)
                    .map(std::borrow::Cow::into_owned)
                else {
                    continue;
                };
                let lp = {
                    let _pin = self.epochs.pin();
                    let cell = self.slots.get(p as usize).get();
                    if cell.state != State::Live {
                        continue;
                    }
                    self.read_posting(p, cell.slot)?.live
                };
                for i in 0..lp.len() {
                    let v = lp.row(i, dim);
                    let dn = d.distance(v, cen(0)).min(d.distance(v, cen(1)));
                    if dn < d.distance(v, &old) && dn < d.distance(v, &pv) {
                        flag(lp.ids[i], v, &mut moved);
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = neighbours() {
            // The moves started here (and by nested splits) will not happen.
            for i in 0..moved.len() {
                self.versions.cancel_move(moved.ids[i], moved.vers[i]);
            }
            return Err(e);
        }
        Counters::add(&self.stats.reassigned, (moved.len() - nested) as u64);
        Ok(moved)
    }
}
