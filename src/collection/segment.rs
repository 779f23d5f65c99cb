//! A segment: one HNSW graph with the point id and payload of every node.
//!
//! The newest segment is the *active* memory tier and takes inserts; older
//! ones are frozen (no inserts, only deletes) and, once checkpointed, live in
//! three files of the collection's data directory:
//! `seg-NNNNNN.graph.qvf` (the HNSW file, docs/FORMAT.md), `seg-NNNNNN.meta.qvf`
//! (ids and payloads, a quiver-storage data file) and `seg-NNNNNN.del-G.qvf`
//! (the deleted set at checkpoint generation G).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use roaring::RoaringBitmap;

use super::error::{CollectionError, Result};
use super::point::{decode_payload, Payload, PointId};
use crate::hnsw::{Hnsw, NodeId};
use quiver_storage::manifest::FileEntry;
use quiver_storage::store::Store;

/// Data-file kind of a segment's meta file.
const META_KIND: u32 = 0x5153_4d31; // "QSM1"
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
    ids: RwLock<Vec<PointId>>,
    payloads: RwLock<Vec<Option<Arc<Payload>>>>,
    /// Graph and meta files are on disk (only the deleted set changes now).
    persisted: AtomicBool,
}

impl Segment {
    pub fn new(id: u32, hnsw: Hnsw) -> Self {
        Segment {
            id,
            hnsw,
            ids: RwLock::new(Vec::new()),
            payloads: RwLock::new(Vec::new()),
            persisted: AtomicBool::new(false),
        }
    }

    pub fn graph_name(&self) -> String {
        graph_name(self.id)
    }

    pub fn meta_name(&self) -> String {
        format!("seg-{:06}.meta.qvf", self.id)
    }

    pub fn del_name(&self, generation: u64) -> String {
        format!("seg-{:06}.del-{generation}.qvf", self.id)
    }

    pub fn is_full(&self) -> bool {
        self.hnsw.len() >= self.hnsw.capacity()
    }

    /// Inserts a point's vector; the caller serialises writers.
    pub fn insert(&self, id: PointId, vector: &[f32], payload: Option<Payload>) -> Result<NodeId> {
        let node = self.hnsw.insert(vector)?;
        let i = node.0 as usize;
        let mut ids = self.ids.write();
        let mut payloads = self.payloads.write();
        if ids.len() <= i {
            ids.resize(i + 1, PointId::MAX);
            payloads.resize(i + 1, None);
        }
        ids[i] = id;
        payloads[i] = payload.map(Arc::new);
        Ok(node)
    }

    /// The point id of `node`, once its insert has completed.
    pub fn point_id(&self, node: NodeId) -> Option<PointId> {
        self.ids
            .read()
            .get(node.0 as usize)
            .copied()
            .filter(|&id| id != PointId::MAX)
    }

    pub fn payload(&self, node: NodeId) -> Option<Arc<Payload>> {
        self.payloads.read().get(node.0 as usize).cloned().flatten()
    }

    /// `(point id, node)` of every live node.
    pub fn live_points(&self) -> Vec<(PointId, NodeId)> {
        let ids = self.ids.read();
        ids.iter()
            .enumerate()
            .filter(|&(i, &id)| id != PointId::MAX && !self.hnsw.is_deleted(NodeId(i as u32)))
            .map(|(i, &id)| (id, NodeId(i as u32)))
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
            self.hnsw
                .save_with_deleted(&store.path(&self.graph_name()), deleted)?;
            store.write_file(&self.meta_name(), META_KIND, 1, &self.encode_meta()?)?;
            self.persisted.store(true, Ordering::Release);
        }
        for name in [self.graph_name(), self.meta_name()] {
            let len = std::fs::metadata(store.path(&name))
                .map_err(|source| CollectionError::Io {
                    file: store.path(&name),
                    source,
                })?
                .len();
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

    /// Ids then payloads, as the meta file holds them. A payload that does
    /// not serialise is an error, never written as an empty (undecodable) entry.
    fn encode_meta(&self) -> Result<Vec<u8>> {
        let ids = self.ids.read();
        let payloads = self.payloads.read();
        let mut out = Vec::with_capacity(4 + ids.len() * 12);
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for &id in ids.iter() {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for p in payloads.iter() {
            match p {
                Some(p) => {
                    let b = serde_json::to_vec(&**p).map_err(|e| {
                        CollectionError::invalid(
                            "payload",
                            format!("cannot encode for checkpoint: {e}"),
                        )
                    })?;
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(&b);
                }
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
        }
        Ok(out)
    }

    /// Opens a checkpointed segment from its three files.
    pub fn open(store: &Store, id: u32, del_name: &str) -> Result<Segment> {
        let hnsw = Hnsw::load(&store.path(&graph_name(id)), 0)?;
        let seg = Segment::new(id, hnsw);
        let meta_path = store.path(&seg.meta_name());
        let (_, meta) = store.read_file(&seg.meta_name())?;
        let corrupt = |offset: usize, reason: String| CollectionError::Corrupt {
            file: meta_path.clone(),
            offset: offset as u64,
            reason,
        };
        let count = meta
            .get(0..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt(0, "missing count".into()))? as usize;
        if count != seg.hnsw.len() {
            return Err(corrupt(
                0,
                format!("{count} ids for a graph of {} nodes", seg.hnsw.len()),
            ));
        }
        let ids_end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(4))
            .filter(|&e| e <= meta.len())
            .ok_or_else(|| corrupt(4, "ids truncated".into()))?;
        let ids: Vec<PointId> = meta[4..ids_end]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let mut payloads = Vec::with_capacity(count);
        let mut pos = ids_end;
        for i in 0..count {
            let len = meta
                .get(pos..pos + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| corrupt(pos, format!("payload {i} truncated")))?;
            pos += 4;
            if len == u32::MAX {
                payloads.push(None);
                continue;
            }
            let end = pos
                .checked_add(len as usize)
                .filter(|&e| e <= meta.len())
                .ok_or_else(|| corrupt(pos, format!("payload {i} truncated")))?;
            let p = decode_payload(&meta[pos..end])
                .map_err(|e| corrupt(pos, format!("payload {i}: {e}")))?;
            payloads.push(Some(Arc::new(p)));
            pos = end;
        }
        if pos != meta.len() {
            return Err(corrupt(pos, "trailing bytes".into()));
        }
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
        *seg.ids.write() = ids;
        *seg.payloads.write() = payloads;
        seg.persisted.store(true, Ordering::Release);
        Ok(seg)
    }
}
