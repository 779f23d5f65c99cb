//! Inserting nodes: level assignment, the neighbour-selection heuristic
//! (algorithm 4 of Malkov & Yashunin), bidirectional linking with shrinking,
//! and the parallel bulk build.

use std::sync::atomic::Ordering;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::codes::{with_space, Codes, Dist, QueryTmp, Space};
use super::{Candidate, Entry, Hnsw, HnswError, HnswParams, NodeId, Result};
use crate::distance::Metric;

/// Highest layer a node may be assigned.
pub(crate) const MAX_LEVEL: usize = 16;

/// SplitMix64: a deterministic per-node random stream for level assignment.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Hnsw {
    /// Builds an index over `data` (row-major, `data.len() / dim` rows) with
    /// all cores; node `i` is row `i`. Shows a progress bar if `progress`.
    pub fn build(
        data: &[f32],
        dim: usize,
        metric: Metric,
        params: HnswParams,
        progress: bool,
    ) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(HnswError::param(
                "data",
                format!(
                    "data length {} is not a multiple of dimension {dim}",
                    data.len()
                ),
            ));
        }
        let n = data.len() / dim;
        let index = Self::new(dim, metric, params, n)?;
        data.par_chunks(dim)
            .enumerate()
            .try_for_each(|(i, row)| index.write_slot(i as u32, row, "data row"))?;
        index.link_all(n, progress);
        Ok(index)
    }

    /// Publishes the `n` pre-written slots and links them all, in parallel.
    fn link_all(&self, n: usize, progress: bool) {
        /// Nodes a build thread links per turn.
        const LINK_RUN: usize = 16;
        self.len.store(n, Ordering::Release);
        let bar = if progress {
            let b = ProgressBar::new(n as u64);
            b.set_style(
                ProgressStyle::with_template("building HNSW {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        with_space!(&self.codes, space => {
            if n > 0 {
                self.link(space, 0, self.random_level(0), None);
            }
            // Nodes go in in id order, each thread taking the next small
            // run (as hnswlib does): the graph grows as in a sequential
            // build. Splitting the id range instead (rayon's default) had
            // each thread start far apart, and cost about 0.005 recall@10.
            let next = std::sync::atomic::AtomicUsize::new(1);
            rayon::broadcast(|_| loop {
                let start = next.fetch_add(LINK_RUN, Ordering::Relaxed);
                if start >= n {
                    break;
                }
                for i in start..(start + LINK_RUN).min(n) {
                    self.link(space, i as u32, self.random_level(i as u32), None);
                }
                bar.inc(LINK_RUN.min(n - start) as u64);
            });
        });
        bar.finish_and_clear();
    }

    /// Like [`Hnsw::build`], but takes the data by value and frees it while
    /// copying (from the back, in chunks), so the build peaks at about one copy
    /// of the vectors instead of two.
    pub fn build_owned(
        mut data: Vec<f32>,
        dim: usize,
        metric: Metric,
        params: HnswParams,
        progress: bool,
    ) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(HnswError::param(
                "data",
                format!(
                    "data length {} is not a multiple of dimension {dim}",
                    data.len()
                ),
            ));
        }
        let n = data.len() / dim;
        let index = Self::new(dim, metric, params, n)?;
        let chunk_rows = ((64 << 20) / (4 * dim)).max(1);
        let mut end = n;
        while end > 0 {
            let start = end.saturating_sub(chunk_rows);
            data[start * dim..end * dim]
                .par_chunks(dim)
                .enumerate()
                .try_for_each(|(i, row)| index.write_slot((start + i) as u32, row, "data row"))?;
            data.truncate(start * dim);
            data.shrink_to_fit();
            end = start;
        }
        drop(data);
        index.link_all(n, progress);
        Ok(index)
    }

    /// Inserts one vector (concurrently with other inserts and searches);
    /// returns its node id. In an SQ8 index, values outside the quantiser's
    /// trained range are clamped to it.
    pub fn insert(&self, v: &[f32]) -> Result<NodeId> {
        let (id, q) = self.store(v)?;
        with_space!(&self.codes, space => self.link(space, id.0, self.random_level(id.0), Some(&q)));
        Ok(id)
    }

    /// Stores one vector in a fresh slot without linking it into the graph
    /// (concurrently with inserts and searches); returns its node id. The
    /// node is unreachable by graph searches until [`Hnsw::link_appended`];
    /// the caller tracks which slots are written and scans them exactly
    /// meanwhile (the collection's unindexed buffer).
    pub fn append(&self, v: &[f32]) -> Result<NodeId> {
        Ok(self.store(v)?.0)
    }

    /// Checks and prepares `v`, takes a fresh slot and writes its codes (and
    /// full vector) there, unlinked; returns the slot and the prepared vector.
    fn store(&self, v: &[f32]) -> Result<(NodeId, Vec<f32>)> {
        let mut q = Vec::with_capacity(self.dim);
        self.prepare_vector(v, "vector", &mut q)?;
        if self.exact_source() == super::ExactSource::Mapped {
            return Err(HnswError::param(
                "exact_vectors",
                "the index's full vectors are a read-only file: it takes no inserts",
            ));
        }
        let cap = self.capacity();
        let id = self
            .len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                (l < cap).then_some(l + 1)
            })
            .map_err(|_| HnswError::Full { capacity: cap })? as u32;
        self.codes.write_unpublished(id, &q);
        if let Some(e) = &self.exact {
            e.write_unpublished(id, &q)?;
        }
        Ok((NodeId(id), q))
    }

    /// Links a node stored by [`Hnsw::append`] into the graph (concurrently
    /// with other links, inserts and searches), searching with its full
    /// vector when the index keeps one. Each appended node is linked once.
    pub fn link_appended(&self, id: NodeId) -> Result<()> {
        if id.0 as usize >= self.len() {
            return Err(HnswError::UnknownNode(id.0));
        }
        let exact = self.exact_vector(id);
        with_space!(&self.codes, space => self.link(space, id.0, self.random_level(id.0), exact));
        Ok(())
    }

    /// Links the appended nodes `start..end` (see [`Hnsw::link_appended`])
    /// on the current rayon pool, in id order: each task takes the next
    /// small run, so the graph grows as in a sequential build
    /// (as [`Hnsw::build`] does). Concurrent searches see the nodes as they
    /// are linked.
    pub fn link_appended_range(&self, start: usize, end: usize) -> Result<()> {
        /// Nodes a thread links per turn.
        const RUN: usize = 8;
        if end > self.len() {
            return Err(HnswError::UnknownNode(end.saturating_sub(1) as u32));
        }
        if end.saturating_sub(start) <= RUN {
            for i in start..end {
                self.link_appended(NodeId(i as u32))?;
            }
            return Ok(());
        }
        // One task per run, each taking the next run in id order: no thread
        // has to join (a broadcast would wait for every thread of the pool,
        // and one may be blocked on a lock the caller holds).
        let next = std::sync::atomic::AtomicUsize::new(start);
        (0..(end - start).div_ceil(RUN))
            .into_par_iter()
            .for_each(|_| {
                let from = next.fetch_add(RUN, Ordering::Relaxed);
                for i in from..(from + RUN).min(end) {
                    let exact = self.exact_vector(NodeId(i as u32));
                    with_space!(&self.codes, space => self.link(space, i as u32, self.random_level(i as u32), exact));
                }
            });
        Ok(())
    }

    /// Checks `v` and copies it into `out`, normalised for cosine.
    fn prepare_vector(&self, v: &[f32], what: &str, out: &mut Vec<f32>) -> Result<()> {
        crate::score::prepare(v, self.dim, self.metric, out)
            .map(|_| ())
            .map_err(|e| super::vector_error(e, what))
    }

    /// Writes slot `id` (normalised for cosine) before it is published.
    fn write_slot(&self, id: u32, v: &[f32], what: &str) -> Result<()> {
        if self.metric.normalizes() || !matches!(self.codes, Codes::F32(_)) {
            let mut copy = Vec::with_capacity(self.dim);
            self.prepare_vector(v, what, &mut copy)?;
            self.codes.write_unpublished(id, &copy);
        } else {
            self.check_vector(v, what)?;
            self.codes.write_unpublished(id, v);
        }
        Ok(())
    }

    /// `floor(-ln(U) * mL)` with `mL = 1/ln(M)`, from a per-node stream.
    fn random_level(&self, id: u32) -> usize {
        let r = splitmix64(self.params.seed ^ (id as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let u = ((r >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        let ml = 1.0 / (self.params.m as f64).ln();
        ((-u.ln() * ml) as usize).min(MAX_LEVEL)
    }

    /// Connects the already-written node `id` into the graph on layers
    /// `0..=level`. The insert searches with `v` (the vector as given,
    /// normalised) when known, else with the node's stored vector.
    fn link<S: Space>(&self, space: &S, id: u32, level: usize, v: Option<&[f32]>) {
        self.links.init_node(id, level);

        let current = *self.entry.read();
        let raises_top = current.is_none_or(|e| level > e.level);
        let _top = raises_top.then(|| self.top_lock.lock());
        let Some(entry) = *self.entry.read() else {
            self.links.mark_ready(id, 0);
            *self.entry.write() = Some(Entry { node: id, level });
            return;
        };

        let mut s = self.pool.take(self.capacity());
        let mut query_tmp = std::mem::take(&mut s.query_tmp);
        let mut link_tmp = std::mem::take(&mut s.link_tmp);
        let q = match v {
            Some(v) => space.query(v, &mut query_tmp),
            None => space.node(id, &mut query_tmp),
        };
        let raise = level > entry.level;
        let mut ep = self.greedy_descent(&q, entry.node, entry.level, level.min(entry.level));
        let mut chosen = Vec::with_capacity(self.links.max_degree(0));
        for l in (0..=level.min(entry.level)).rev() {
            s.reset(self.capacity());
            self.search_layer(
                &q,
                &[ep],
                self.params.ef_construction,
                l,
                &mut s,
                None::<&fn(u32) -> bool>,
            );
            // A concurrent insert may already have linked `id` on this layer.
            let mut found: Vec<Candidate> = s.results.drain().filter(|c| c.id != id).collect();
            found.sort_unstable();
            // The next layer starts from the nearest node already linked
            // there (the entry point always is).
            if l > 0 {
                ep = match found.iter().find(|c| self.links.is_ready(c.id, l - 1)) {
                    Some(&c) => c,
                    None => Candidate {
                        dist: q.dist(entry.node),
                        id: entry.node,
                    },
                };
            }
            self.select_neighbors(space, &mut link_tmp[1], &found, self.params.m, &mut chosen);
            self.set_own_links(space, &mut link_tmp, id, l, &mut chosen);
            self.links.mark_ready(id, l);
            for &n in &chosen {
                self.add_backlink(space, &mut link_tmp, n, id, l);
            }
        }
        drop(q);
        s.query_tmp = query_tmp;
        s.link_tmp = link_tmp;
        self.pool.give(s);

        if raise {
            *self.entry.write() = Some(Entry { node: id, level });
        }
    }

    /// The heuristic of algorithm 4: walk `sorted` nearest first and keep a
    /// candidate only if it is closer to the base than to every kept one.
    fn select_neighbors<S: Space>(
        &self,
        space: &S,
        tmp: &mut QueryTmp,
        sorted: &[Candidate],
        m: usize,
        out: &mut Vec<u32>,
    ) {
        out.clear();
        if sorted.len() <= m {
            out.extend(sorted.iter().map(|c| c.id));
            return;
        }
        for c in sorted {
            if out.len() >= m {
                break;
            }
            let v = space.node(c.id, tmp);
            let good = out.iter().all(|&r| v.dist(r) >= c.dist);
            if good {
                out.push(c.id);
            }
        }
    }

    /// Writes the new node's list on `level`. A concurrent insert may already
    /// have added itself there (it found `id` through an upper layer), so
    /// existing entries are merged in rather than overwritten.
    fn set_own_links<S: Space>(
        &self,
        space: &S,
        [base_tmp, cand_tmp]: &mut [QueryTmp; 2],
        id: u32,
        level: usize,
        chosen: &mut Vec<u32>,
    ) {
        let g = self.links.lock(id);
        let mut existing = Vec::new();
        self.links.read(id, level, &mut existing);
        existing.retain(|n| !chosen.contains(n));
        if !existing.is_empty() {
            let base = space.node(id, base_tmp);
            let mut cands: Vec<Candidate> = chosen
                .iter()
                .chain(&existing)
                .map(|&n| Candidate {
                    dist: base.dist(n),
                    id: n,
                })
                .collect();
            cands.sort_unstable();
            self.select_neighbors(
                space,
                cand_tmp,
                &cands,
                self.links.max_degree(level),
                chosen,
            );
        }
        self.links.write(&g, id, level, chosen);
    }

    /// Adds `new` to `node`'s list on `level`, shrinking with the heuristic if full.
    fn add_backlink<S: Space>(
        &self,
        space: &S,
        [base_tmp, cand_tmp]: &mut [QueryTmp; 2],
        node: u32,
        new: u32,
        level: usize,
    ) {
        let max = self.links.max_degree(level);
        let g = self.links.lock(node);
        let mut current = Vec::with_capacity(max + 1);
        self.links.read(node, level, &mut current);
        if current.contains(&new) {
            return;
        }
        if current.len() < max {
            current.push(new);
            self.links.write(&g, node, level, &current);
            return;
        }
        let base = space.node(node, base_tmp);
        let mut cands: Vec<Candidate> = current
            .iter()
            .chain(std::iter::once(&new))
            .map(|&n| Candidate {
                dist: base.dist(n),
                id: n,
            })
            .collect();
        cands.sort_unstable();
        let mut kept = Vec::with_capacity(max);
        self.select_neighbors(space, cand_tmp, &cands, max, &mut kept);
        self.links.write(&g, node, level, &kept);
    }
}

impl Hnsw {
    /// Builds a fresh index from the live (not deleted) nodes, dropping
    /// deleted ones and repairing the links they held. Returns the new index
    /// and, for each new node id, the old node id it came from. The new index
    /// keeps this one's encoding (and SQ8 quantiser).
    pub fn rebuild(&self, progress: bool) -> Result<(Hnsw, Vec<NodeId>)> {
        let live: Vec<NodeId> = (0..self.len() as u32)
            .map(NodeId)
            .filter(|&id| !self.is_deleted(id))
            .collect();
        let mut data = Vec::with_capacity(live.len() * self.dim);
        for &id in &live {
            data.extend_from_slice(&self.codes.vector(id.0));
        }
        let index = Hnsw::build_owned(data, self.dim, self.metric, self.params, progress)?
            .reencode_with(self.codec())?;
        Ok((index, live))
    }
}
