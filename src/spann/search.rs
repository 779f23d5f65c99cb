//! Queries: nearest heads from the in-memory graph (or all live heads,
//! scanned, when `nprobe` covers them), query-aware pruning (ε₂), every kept
//! posting read and scanned in parallel in one I/O round, replicas
//! deduplicated, and for compressed postings (unless `rerank` is 0) a second
//! round that re-ranks the best candidates with full-precision vectors. A search takes no lock
//! across I/O: it pins the epoch (so the extents it reads stay intact),
//! copies each posting's slot, and checks the deleted bits again last.

use std::collections::BinaryHeap;
use std::time::Instant;

use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::posting::{decode_posting, PostingView, PAGE};
use super::slots::State;
use super::versions;
use super::{assign, PostingSlot, Result, SearchParams, Spann, SpannError};
use crate::hnsw::{Neighbor, NodeId};
use crate::limits;
use crate::score::{CodeQuery, Prepared};

/// One result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Vector id.
    pub id: u32,
    /// Distance under the index's metric (lower is closer).
    pub distance: f32,
}

/// What one query cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SearchStats {
    /// Heads returned by the head graph before pruning.
    pub heads: usize,
    /// Postings read.
    pub postings: usize,
    /// Bytes read from disk (or the page cache), re-ranking included.
    pub bytes: u64,
    /// Read requests issued.
    pub ios: usize,
    /// Dependent rounds of reads (1, or 2 with re-ranking).
    pub rounds: usize,
    /// Entries scanned (stale and duplicate ones included).
    pub scanned: usize,
    /// Wall time of the whole query, microseconds.
    pub latency_us: f64,
}

/// (distance, id) ordered by distance then id, for bounded max-heaps.
#[derive(Clone, Copy, PartialEq)]
struct Cand(f32, u32);
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

fn push_bounded(heap: &mut BinaryHeap<Cand>, c: Cand, cap: usize) {
    if heap.len() < cap {
        heap.push(c);
    } else if heap.peek().is_some_and(|top| c < *top) {
        heap.pop();
        heap.push(c);
    }
}

impl Spann {
    /// The `k` nearest live vectors to `query`, with what the query cost.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        sp: &SearchParams,
    ) -> Result<(Vec<Hit>, SearchStats)> {
        let started = Instant::now();
        let mut buf = Vec::with_capacity(self.dim);
        let q = self.prepare(query, || "query".into(), &mut buf)?;
        self.search_from(q, k, sp, started)
    }

    /// [`Spann::search`] with a query its caller prepared (checked and
    /// normalised once, e.g. for every tier of a collection).
    pub fn search_prepared(
        &self,
        query: Prepared<'_>,
        k: usize,
        sp: &SearchParams,
    ) -> Result<(Vec<Hit>, SearchStats)> {
        self.search_from(query, k, sp, Instant::now())
    }

    /// [`Spann::search_prepared`] admitting only ids in `allow`: postings
    /// are scanned with the filter, so every returned hit is allowed.
    pub fn search_allowed(
        &self,
        query: Prepared<'_>,
        k: usize,
        sp: &SearchParams,
        allow: &RoaringBitmap,
    ) -> Result<(Vec<Hit>, SearchStats)> {
        self.search_from_allowed(query, k, sp, Instant::now(), Some(allow))
    }

    fn search_from(
        &self,
        query: Prepared<'_>,
        k: usize,
        sp: &SearchParams,
        started: Instant,
    ) -> Result<(Vec<Hit>, SearchStats)> {
        self.search_from_allowed(query, k, sp, started, None)
    }

    fn search_from_allowed(
        &self,
        query: Prepared<'_>,
        k: usize,
        sp: &SearchParams,
        started: Instant,
        allow: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Hit>, SearchStats)> {
        if query.as_slice().len() != self.dim {
            return Err(SpannError::Dimension {
                what: "query".into(),
                expected: self.dim,
                got: query.as_slice().len(),
            });
        }
        if query.metric() != self.metric {
            return Err(SpannError::param(
                "query",
                format!(
                    "prepared for {}, the index uses {}",
                    query.metric(),
                    self.metric
                ),
            ));
        }
        let q = query.as_slice();
        let mut stats = SearchStats::default();
        if k == 0 || sp.nprobe == 0 {
            return Ok((Vec::new(), stats));
        }
        let _pin = self.epochs.pin();
        let mut exhaustive = false;
        let heads = {
            let g = self.heads.read();
            if sp.nprobe >= g.live_len() {
                exhaustive = true;
                // Every posting is probed: take all live heads by a scan
                // (exact, and cheaper than a graph walk with that beam).
                let mut all = Vec::with_capacity(g.live_len());
                let published = |id: NodeId| self.slots.get(id.0 as usize).published();
                assign::scan_heads(&g, &self.dist, q, sp.nprobe, Some(&published), &mut all);
                all
            } else {
                // The beam scales with nprobe: a beam of nprobe misses heads
                // whose postings hold true neighbours (docs/BENCHMARKS.md).
                let ef = sp
                    .head_ef
                    .max(sp.nprobe.saturating_mul(limits::SPANN_HEAD_EF_PER_NPROBE));
                g.search(q, sp.nprobe, ef)?
            }
        };
        stats.heads = heads.len();
        let kept: Vec<(u32, PostingSlot)> = self
            .prune(&heads, sp)
            .iter()
            .filter_map(|h| {
                let c = self.slots.get(h.id.0 as usize).get();
                (c.state != State::Unborn && c.slot.bytes > 0).then_some((h.id.0, c.slot))
            })
            .collect();
        // Re-rank (a second round of reads) only for lossy codes and when
        // asked: f16 codes rank about as f32 do, so `rerank` 0 keeps one
        // round. An exhaustive search re-ranks anyway, so it stays exact.
        let rerank = if exhaustive {
            sp.rerank.max(limits::DEFAULT_SQ8_RERANK)
        } else {
            sp.rerank
        };
        let lossy = self.codec.lossy() && rerank > 0;
        let r = if lossy { rerank.max(k) } else { k };
        let cd = CodeQuery::new(&self.codec, query);

        // Round 1: read and scan every kept posting: those in the page cache
        // here, the rest in parallel on the I/O pool.
        let per: Vec<(Vec<Cand>, usize, u64)> = self.fan_out(&kept, |&(h, slot), cached| {
            self.scan_posting(h, slot, &cd, r, cached, allow)
        })?;
        let mut all: Vec<Cand> = Vec::with_capacity(per.iter().map(|p| p.0.len()).sum());
        for (c, scanned, bytes) in per {
            all.extend(c);
            stats.scanned += scanned;
            stats.bytes += bytes;
            stats.postings += usize::from(bytes > 0);
        }
        stats.ios = stats.postings;
        stats.rounds = usize::from(stats.postings > 0);
        // Replicas of one id carry the same code, hence the same distance:
        // sorting then dropping repeated ids keeps each id once.
        all.sort_unstable();
        let mut seen = std::collections::HashSet::with_capacity(all.len());
        all.retain(|c| seen.insert(c.1) && self.contains(c.1));
        all.truncate(r);

        if lossy && !all.is_empty() {
            // Round 2: exact distances from the full vectors.
            let vf = self.full_vectors()?;
            let (exact, bytes) = self.exact_round(vf, q, &all)?;
            stats.ios += all.len();
            stats.rounds += 1;
            stats.bytes += bytes;
            all = exact;
            all.sort_unstable();
        }
        // Deletes that landed while the postings were scanned.
        Ok(self.finish(all, k, stats, started))
    }

    /// The `k` nearest of the sorted candidates `all` still live (deletes
    /// may have landed while they were read), as hits, with the query's time.
    fn finish(
        &self,
        mut all: Vec<Cand>,
        k: usize,
        mut stats: SearchStats,
        started: Instant,
    ) -> (Vec<Hit>, SearchStats) {
        all.retain(|c| self.contains(c.1));
        all.truncate(k);
        stats.latency_us = started.elapsed().as_secs_f64() * 1e6;
        let hits = all
            .into_iter()
            .map(|c| Hit {
                id: c.1,
                distance: c.0,
            })
            .collect();
        (hits, stats)
    }

    /// The full-precision vectors file (lossy indexes keep one for re-ranking).
    fn full_vectors(&self) -> Result<&super::file::PageFile> {
        self.vectors_file.as_ref().ok_or_else(|| {
            SpannError::corrupt(
                self.dir.join("vectors.f32"),
                0,
                "an index with lossy postings has no full-precision vectors file",
            )
        })
    }

    /// Exact distances from `q` to the full vectors of `cands`' ids, read in
    /// one round (cached rows inline, the rest on the I/O pool); also the
    /// bytes of the pages read.
    fn exact_round(
        &self,
        vf: &super::file::PageFile,
        q: &[f32],
        cands: &[Cand],
    ) -> Result<(Vec<Cand>, u64)> {
        let row = self.dim * 4;
        let exact: Vec<Cand> = self.fan_out(cands, |c, cached| {
            let off = PAGE as u64 + u64::from(c.1) * row as u64;
            let exact = |b: &[u8]| {
                Cand(
                    crate::score::with_f32s(b, |v| self.dist.distance(q, v)),
                    c.1,
                )
            };
            if cached {
                Ok(vf.read_bytes_cached(off, row, exact))
            } else {
                vf.read_bytes(off, row, exact).map(Some)
            }
        })?;
        let bytes = cands
            .iter()
            .map(|c| {
                let off = PAGE as u64 + u64::from(c.1) * row as u64;
                let skip = off % PAGE as u64;
                (skip + row as u64).div_ceil(PAGE as u64) * PAGE as u64
            })
            .sum::<u64>();
        Ok((exact, bytes))
    }

    /// The `k` nearest live ids among `ids`, by reading each one's full
    /// vector (one round of reads): an exact answer for small sets.
    pub fn search_among(
        &self,
        query: Prepared<'_>,
        k: usize,
        ids: &RoaringBitmap,
    ) -> Result<(Vec<Hit>, SearchStats)> {
        let started = Instant::now();
        let q = query.as_slice();
        let mut stats = SearchStats::default();
        let _pin = self.epochs.pin();
        let live: Vec<Cand> = ids
            .iter()
            .filter(|&id| self.contains(id))
            .map(|id| Cand(0.0, id))
            .collect();
        let vf = self.full_vectors()?;
        let (mut all, bytes) = self.exact_round(vf, q, &live)?;
        stats.ios = live.len();
        stats.scanned = live.len();
        stats.rounds = usize::from(!live.is_empty());
        stats.bytes = bytes;
        all.sort_unstable();
        Ok(self.finish(all, k, stats, started))
    }

    /// Heads kept after query-aware pruning.
    fn prune<'a>(&self, heads: &'a [Neighbor], sp: &SearchParams) -> &'a [Neighbor] {
        let (Some(ratio), Some(first)) = (sp.max_dist_ratio, heads.first()) else {
            return heads;
        };
        if first.distance <= 0.0 {
            return heads;
        }
        let limit = ratio * first.distance;
        let n = heads.iter().take_while(|h| h.distance <= limit).count();
        &heads[..n.max(1)]
    }

    /// Decodes the posting of head `h` that `slot` points at from `buf`
    /// (its pages) and checks that it is that head's, with the slot's entry
    /// count: anything else is a `Corrupt` error naming file and offset.
    pub(super) fn checked_posting<'b>(
        &self,
        h: u32,
        slot: PostingSlot,
        buf: &'b [u8],
    ) -> Result<PostingView<'b>> {
        let file = self.postings_file.path();
        let offset = slot.first_page * PAGE as u64;
        let view = decode_posting(&buf[..slot.bytes as usize], self.layout, file, offset)?;
        if view.head != h || view.len() != slot.count as usize {
            return Err(SpannError::corrupt(
                file,
                offset,
                format!(
                    "posting of head {} with {} entries where head {h} with {} was expected",
                    view.head,
                    view.len(),
                    slot.count
                ),
            ));
        }
        Ok(view)
    }

    /// The version word of the id of entry `i` of the posting at `slot`;
    /// an id the version map does not know is a `Corrupt` error.
    pub(super) fn entry_word(&self, slot: PostingSlot, i: usize, id: u32) -> Result<u32> {
        self.versions.word(id).ok_or_else(|| {
            SpannError::corrupt(
                self.postings_file.path(),
                slot.first_page * PAGE as u64,
                format!("entry {i} names unknown id {id}"),
            )
        })
    }

    /// Runs `read(item, cached)` for every item, results in any order.
    /// First, on this thread, with `cached` set: `read` answers only from
    /// the page cache (`None` for a miss), which costs no thread hand-off
    /// and no device wait. Then the misses in parallel on the I/O pool with
    /// `cached` unset, so reads that reach the device overlap (one round).
    fn fan_out<T: Sync, R: Send>(
        &self,
        items: &[T],
        read: impl Fn(&T, bool) -> Result<Option<R>> + Sync,
    ) -> Result<Vec<R>> {
        let mut out = Vec::with_capacity(items.len());
        let mut misses = Vec::new();
        for item in items {
            match read(item, true)? {
                Some(r) => out.push(r),
                None => misses.push(item),
            }
        }
        if !misses.is_empty() {
            let rest: Vec<R> = self.io.install(|| {
                misses
                    .par_iter()
                    .filter_map(|&item| read(item, false).transpose())
                    .collect::<Result<_>>()
            })?;
            out.extend(rest);
        }
        Ok(out)
    }

    /// Reads posting `h` at `slot` and returns its best `r` live entries,
    /// the entries scanned and the bytes read; with `cached`, only from the
    /// page cache (`None` if it is not all there).
    fn scan_posting(
        &self,
        h: u32,
        slot: PostingSlot,
        cd: &CodeQuery<'_>,
        r: usize,
        cached: bool,
        allow: Option<&RoaringBitmap>,
    ) -> Result<Option<(Vec<Cand>, usize, u64)>> {
        let pages = (slot.bytes as usize).div_ceil(PAGE);
        let file = &self.postings_file;
        let scan = |buf: &[u8]| {
            let view = self.checked_posting(h, slot, buf)?;
            let mut heap = BinaryHeap::with_capacity(r.min(view.len()) + 1);
            for (i, e) in view.iter().enumerate() {
                let w = self.entry_word(slot, i, e.id)?;
                if versions::garbage(e.version, w) {
                    continue; // deleted or stale: dropped when the posting is rewritten
                }
                if allow.is_some_and(|a| !a.contains(e.id)) {
                    continue;
                }
                push_bounded(&mut heap, Cand(cd.distance(e.code), e.id), r);
            }
            Ok((heap.into_vec(), view.len(), (pages * PAGE) as u64))
        };
        if cached {
            file.read_pages_cached(slot.first_page, pages, scan)
                .transpose()
        } else {
            file.read_pages(slot.first_page, pages, scan)?.map(Some)
        }
    }
}
