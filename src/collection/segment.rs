//! A segment: one HNSW graph with the point id and payload of every node.
//!
//! The newest segment is the *active* memory tier and takes inserts; older
//! ones are frozen (no inserts, only deletes) and, once checkpointed, live in
//! three files of the collection's data directory:
//! `seg-NNNNNN.graph.qvf` (the HNSW file, docs/FORMAT.md), `seg-NNNNNN.meta.qvf`
//! (ids and payloads, a quiver-storage data file), `seg-NNNNNN.del-G.qvf`
//! (the deleted set at checkpoint generation G) and, for a graph on f16 or
//! SQ8 codes, `seg-NNNNNN.vec.qvf` (the f32 vectors that re-rank searches).
//!
//! A search on a lossy segment walks the codes and re-ranks the best
//! `max(k, rerank × k)` candidates exactly ([`Segment::search`]).
//!
//! The unindexed buffer: writes [`Segment::append`] points (vector, id and
//! payload stored, node not linked) and [`Segment::publish`] them; a
//! background indexer links them in node order ([`Segment::index_batch`]).
//! Nodes `indexed..visible` are the buffer: every search scans them exactly
//! beside its graph search, so a point is searchable as soon as it is
//! published and exactly found until it is linked.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use roaring::RoaringBitmap;

use super::config::RerankVectors;
use super::error::{CollectionError, Result};
use super::point::{Payload, PointId};
use super::point_table::PointTable;
use crate::hnsw::{FilterStats, Hnsw, Neighbor, NodeId, VectorCodec};
use crate::score::Prepared;
use quiver_storage::manifest::FileEntry;
use quiver_storage::mmap::Verify;
use quiver_storage::store::Store;

/// Data-file kind of a segment's meta file.
const META_KIND: u32 = 0x5153_4d31; // "QSM1"
/// Data-file kind of a vector file (f32 rows for re-ranking).
const VEC_KIND: u32 = crate::hnsw::EXACT_VECTORS_KIND;
/// Data-file kind of a deleted-set file.
const DEL_KIND: u32 = 0x5153_4431; // "QSD1"

fn graph_name(id: u32) -> String {
    format!("seg-{id:06}.graph.qvf")
}

/// Parses `seg-NNNNNN.del-G.qvf` into the segment id.
pub(crate) fn parse_del_name(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("seg-")?;
    let (id, tail) = rest.split_once('.')?;
    tail.starts_with("del-").then_some(())?;
    id.parse().ok()
}

/// One graph and its node → point mapping.
pub(crate) struct Segment {
    pub id: u32,
    pub hnsw: Hnsw,
    /// Shared with a re-encoded copy of this segment ([`Segment::reencoded`]).
    points: Arc<PointTable>,
    /// Graph and meta files are on disk (only the deleted set changes now).
    persisted: AtomicBool,
    /// Once its points are copied into the SSD tier: node → SSD vector id.
    /// The segment leaves the segment list once the id map points at them.
    merged: std::sync::OnceLock<std::collections::HashMap<u32, u32>>,
    /// Nodes below this are linked into the graph.
    indexed: AtomicUsize,
    /// Nodes below this are written (vector, id, payload) and searchable;
    /// `indexed..visible` is the unindexed buffer, scanned exactly.
    visible: AtomicUsize,
    /// Held while nodes are linked ([`Segment::index_batch`]), so batches
    /// run one at a time and in node order.
    index_lock: Mutex<()>,
}

impl Segment {
    /// A segment over `hnsw`, whose nodes (if any) are all linked.
    pub fn new(id: u32, hnsw: Hnsw) -> Self {
        let len = hnsw.len();
        Segment {
            id,
            hnsw,
            points: Arc::default(),
            persisted: AtomicBool::new(false),
            merged: std::sync::OnceLock::new(),
            indexed: AtomicUsize::new(len),
            visible: AtomicUsize::new(len),
            index_lock: Mutex::new(()),
        }
    }

    /// Stores a point in a fresh node without linking it (the caller
    /// serialises writers, then calls [`Segment::publish`]).
    pub fn append(&self, id: PointId, vector: &[f32], payload: Option<Payload>) -> Result<NodeId> {
        let node = self.hnsw.append(vector)?;
        self.points.set(node.0 as usize, id, payload.map(Arc::new));
        Ok(node)
    }

    /// Makes every appended node searchable (by the exact scan of the
    /// buffer). Called by the writer after its appends completed.
    pub fn publish(&self) {
        self.visible.store(self.hnsw.len(), Ordering::Release);
    }

    /// Nodes below this are published: searchable, and mapped by the id
    /// map unless replaced or deleted since.
    pub fn published(&self) -> u32 {
        self.visible.load(Ordering::Acquire) as u32
    }

    /// Whether `node` is published (searchable); a write that is still
    /// being applied has appended it, and maybe mapped its id to it.
    pub fn is_published(&self, node: NodeId) -> bool {
        (node.0 as usize) < self.visible.load(Ordering::Acquire)
    }

    /// Points appended and published but not linked yet.
    pub fn unindexed(&self) -> usize {
        let indexed = self.indexed.load(Ordering::Acquire);
        self.visible.load(Ordering::Acquire).saturating_sub(indexed)
    }

    /// The nodes of the unindexed buffer as a set, or `None` when it is
    /// empty. Read before a graph search: nodes linked meanwhile are then
    /// found twice (see [`merge_hits`]), never missed.
    pub fn unindexed_nodes(&self) -> Option<RoaringBitmap> {
        let indexed = self.indexed.load(Ordering::Acquire) as u32;
        let visible = self.visible.load(Ordering::Acquire) as u32;
        (indexed < visible).then(|| {
            let mut set = RoaringBitmap::new();
            set.insert_range(indexed..visible);
            set
        })
    }

    /// Links up to `max` buffered nodes into the graph, oldest first, in
    /// parallel: on the low-priority background pool when `background`,
    /// else on the caller's rayon pool. Returns how many. A segment being
    /// linked stays searchable (HNSW takes concurrent inserts). The batch
    /// lock is taken outside the pool, so no pool thread ever blocks on it.
    pub fn index_batch(&self, max: usize, background: bool) -> Result<usize> {
        let _one = self.index_lock.lock();
        let start = self.indexed.load(Ordering::Acquire);
        let end = self
            .visible
            .load(Ordering::Acquire)
            .min(start.saturating_add(max));
        if end <= start {
            return Ok(0);
        }
        let link = || -> Result<()> { Ok(self.hnsw.link_appended_range(start, end)?) };
        if background {
            super::background::run(link)?;
        } else {
            link()?;
        }
        self.indexed.store(end, Ordering::Release);
        Ok(end - start)
    }

    /// Links every buffered node (see [`Segment::index_batch`]).
    pub fn index_all(&self, background: bool) -> Result<()> {
        while self.index_batch(usize::MAX, background)? > 0 {}
        Ok(())
    }

    /// Records that `nodes[i]` was copied to SSD vector id `slots[i]`.
    pub fn mark_merged(&self, nodes: &[NodeId], slots: &[u32]) {
        let copies = nodes
            .iter()
            .map(|n| n.0)
            .zip(slots.iter().copied())
            .collect();
        let _ = self.merged.set(copies);
    }

    /// The SSD vector id `node` was copied to, once merged.
    pub fn merged_slot(&self, node: NodeId) -> Option<u32> {
        self.merged.get()?.get(&node.0).copied()
    }

    pub fn graph_name(&self) -> String {
        graph_name(self.id)
    }

    pub fn meta_name(&self) -> String {
        format!("seg-{:06}.meta.qvf", self.id)
    }

    pub fn vec_name(&self) -> String {
        format!("seg-{:06}.vec.qvf", self.id)
    }

    /// The `k` nearest live nodes: on the graph's codes with beam `ef`, the
    /// best `max(k, rerank × k)` re-scored with the f32 vectors when the
    /// codes are lossy (see [`Hnsw::search_rerank`]).
    pub fn search(
        &self,
        query: Prepared<'_>,
        k: usize,
        ef: usize,
        rerank: usize,
    ) -> Result<Vec<Neighbor>> {
        let buffer = self.unindexed_nodes();
        let mut hits = self.hnsw.search_rerank(query, k, ef, rerank)?;
        if let Some(nodes) = buffer {
            let scanned = self
                .hnsw
                .scan_allowed(query, k, &nodes, &mut FilterStats::default())?;
            merge_hits(&mut hits, scanned, k);
        }
        Ok(hits)
    }

    /// A copy of this segment (same id, nodes, deletes and points) whose
    /// graph stores its vectors with `codec`, re-encoded from the full
    /// vectors, which it keeps in memory. For the active segment, under the
    /// writer lock (so no insert or delete races the copy).
    pub fn reencoded(&self, codec: VectorCodec) -> Result<Segment> {
        let rows = self.hnsw.exact_rows();
        let bytes = self.hnsw.to_bytes_with_deleted(&self.hnsw.deleted());
        let extra = self.hnsw.capacity() - self.hnsw.len();
        let mut copy = Hnsw::from_bytes(&bytes, std::path::Path::new("(segment copy)"), extra)?;
        if let Some(rows) = rows {
            if copy.codec().lossy() {
                copy.attach_exact_vectors(&rows)?;
            }
        }
        let hnsw = copy.reencode_keeping_exact(codec)?;
        let mut seg = Segment::new(self.id, hnsw);
        seg.points = self.points.clone();
        Ok(seg)
    }

    pub fn del_name(&self, generation: u64) -> String {
        format!("seg-{:06}.del-{generation}.qvf", self.id)
    }

    pub fn is_full(&self) -> bool {
        self.hnsw.len() >= self.hnsw.capacity()
    }

    /// The point ids, payloads and payload indexes of the nodes.
    pub fn table(&self) -> &PointTable {
        &self.points
    }

    /// The point id of `node`, once its insert has completed.
    pub fn point_id(&self, node: NodeId) -> Option<PointId> {
        self.points.id(node.0 as usize)
    }

    pub fn payload(&self, node: NodeId) -> Option<Arc<Payload>> {
        self.points.payload(node.0 as usize)
    }

    /// `(point id, node)` of every live node.
    pub fn live_points(&self) -> Vec<(PointId, NodeId)> {
        self.points
            .filled(|i| !self.hnsw.is_deleted(NodeId(i as u32)))
            .into_iter()
            .map(|(i, id)| (id, NodeId(i as u32)))
            .collect()
    }

    /// Writes this segment's files for checkpoint `generation` with the
    /// deleted set `deleted` (snapshotted at the checkpoint LSN); returns the
    /// manifest entries.
    pub fn persist(
        &self,
        store: &Store,
        generation: u64,
        deleted: &RoaringBitmap,
    ) -> Result<Vec<FileEntry>> {
        let mut files = Vec::with_capacity(3);
        if !self.persisted.load(Ordering::Acquire) {
            self.hnsw.save_with_deleted_to(
                &**store.backend(),
                &store.path(&self.graph_name()),
                deleted,
            )?;
            store.write_file(&self.meta_name(), META_KIND, 1, &self.points.encode()?)?;
            if let Some(rows) = self.lossy_rows() {
                store.write_array(&self.vec_name(), VEC_KIND, &rows)?;
            }
            self.persisted.store(true, Ordering::Release);
        }
        let mut names = vec![self.graph_name(), self.meta_name()];
        if self.hnsw.codec().lossy() && self.hnsw.exact_source() != crate::hnsw::ExactSource::None {
            names.push(self.vec_name());
        }
        for name in names {
            let len =
                store
                    .backend()
                    .len(&store.path(&name))
                    .map_err(|source| CollectionError::Io {
                        file: store.path(&name),
                        source,
                    })?;
            files.push(FileEntry { name, len });
        }
        let mut del = Vec::with_capacity(deleted.serialized_size());
        deleted
            .serialize_into(&mut del)
            .map_err(|source| CollectionError::Io {
                file: store.path(&self.del_name(generation)),
                source,
            })?;
        files.push(store.write_file(&self.del_name(generation), DEL_KIND, 1, &del)?);
        Ok(files)
    }

    /// The full vectors of a lossy graph, row-major (for its vector file).
    fn lossy_rows(&self) -> Option<Vec<f32>> {
        if !self.hnsw.codec().lossy() {
            return None;
        }
        self.hnsw.exact_rows()
    }

    /// Opens a checkpointed segment from its files; a lossy graph's vector
    /// file, when the manifest names it, is loaded or mapped per `at`.
    pub fn open(store: &Store, id: u32, del_name: &str, at: RerankVectors) -> Result<Segment> {
        let mut hnsw = Hnsw::load_from(&**store.backend(), &store.path(&graph_name(id)), 0)?;
        let vec_name = format!("seg-{id:06}.vec.qvf");
        let has_vec = store.manifest().files.iter().any(|f| f.name == vec_name);
        if hnsw.codec().lossy() && has_vec {
            let vec_path = store.path(&vec_name);
            let corrupt = |reason: String| CollectionError::Corrupt {
                file: vec_path.clone(),
                offset: 0,
                reason,
            };
            match at {
                RerankVectors::Memory => {
                    let (_, bytes) = store.read_file(&vec_name)?;
                    let rows: Vec<f32> = crate::score::f32s(&bytes).collect();
                    hnsw.attach_exact_vectors(&rows)
                        .map_err(|e| corrupt(e.to_string()))?;
                }
                RerankVectors::Disk => {
                    let rows = store.map_array::<f32>(&vec_name, Verify::Header)?;
                    hnsw.attach_exact_mapped(rows)
                        .map_err(|e| corrupt(e.to_string()))?;
                }
            }
        }
        let mut seg = Segment::new(id, hnsw);
        let meta_path = store.path(&seg.meta_name());
        let (_, meta) = store.read_file(&seg.meta_name())?;
        let points = PointTable::decode(&meta, &meta_path)?;
        if points.len() != seg.hnsw.len() {
            return Err(CollectionError::Corrupt {
                file: meta_path,
                offset: 0,
                reason: format!(
                    "{} ids for a graph of {} nodes",
                    points.len(),
                    seg.hnsw.len()
                ),
            });
        }
        seg.points = Arc::new(points);
        let del_path = store.path(del_name);
        let (_, del) = store.read_file(del_name)?;
        let deleted =
            RoaringBitmap::deserialize_from(&del[..]).map_err(|e| CollectionError::Corrupt {
                file: del_path.clone(),
                offset: 0,
                reason: e.to_string(),
            })?;
        for d in &deleted {
            seg.hnsw
                .delete(NodeId(d))
                .map_err(|e| CollectionError::Corrupt {
                    file: del_path.clone(),
                    offset: 0,
                    reason: e.to_string(),
                })?;
        }
        seg.persisted.store(true, Ordering::Release);
        Ok(seg)
    }
}

/// Adds `more` to the nearest-first `hits`, keeping each node once (a node
/// linked while a search ran can come from both the graph and the buffer
/// scan) and the `k` nearest, nearest first (ties by node).
pub(crate) fn merge_hits(hits: &mut Vec<Neighbor>, more: Vec<Neighbor>, k: usize) {
    if more.is_empty() {
        return;
    }
    hits.extend(more);
    hits.sort_by(|a, b| a.id.cmp(&b.id).then(a.distance.total_cmp(&b.distance)));
    hits.dedup_by_key(|n| n.id);
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    hits.truncate(k);
}
