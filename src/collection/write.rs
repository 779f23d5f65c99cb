//! The write path: validate, log to the WAL, apply to the active memory
//! segment and the id map, rotate a full segment.
//!
//! An upsert appends its points to the active segment without linking them
//! into the graph: once published they are in the segment's unindexed
//! buffer, which searches scan exactly, and the background indexer links
//! them ([`super::indexer`]). A writer first waits while the buffer is
//! over `index_buffer_points` (backpressure). With `index_buffer_points`
//! 0, the write links its points itself before it is acknowledged.

use std::sync::Arc;

use quiver_storage::Lsn;

use super::point::{check_vector, encode_payload};
use super::record::{self, LoggedPoint, Op, KIND_DELETE, KIND_UPSERT};
use super::segment::Segment;
use super::{Collection, Loc, Point, PointId, Result, Writer, SSD};
use crate::hnsw::{Hnsw, NodeId, VectorCodec, VectorEncoding};
use crate::limits::SQ8_TRAIN_POINTS;
use crate::quant::Sq8Quantizer;

impl Collection {
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
        let bound = self.config.index_buffer_points;
        if bound > 0 {
            self.indexer
                .wait_for_room(&self.segments, points.len(), bound);
        }
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
    pub(super) fn apply(&self, w: &mut Writer, op: Op) -> Result<()> {
        match op {
            Op::Upsert(points) => {
                // Points are appended (stored, not linked) and mapped in
                // batch order, so a repeated id ends with its last version,
                // then published together.
                let mut rest = &points[..];
                while !rest.is_empty() {
                    let mut active = self.active();
                    if active.is_full() {
                        self.rotate(w)?;
                        active = self.active();
                    }
                    let room = active.hnsw.capacity() - active.hnsw.len();
                    let (chunk, tail) = rest.split_at(room.min(rest.len()));
                    let nodes: Vec<NodeId> = chunk
                        .iter()
                        .map(|(id, vector, payload)| active.append(*id, vector, payload.clone()))
                        .collect::<Result<_>>()?;
                    // The id map names the new copies before they are
                    // published, so no search finds a copy the map does
                    // not name yet (it would take a place in that
                    // segment's top k, then be dropped as not current).
                    // Until they are published a search keeps finding the
                    // copies they replace, which are deleted only after.
                    let mut replaced = Vec::new();
                    {
                        let mut map = self.map.write();
                        for ((id, _, _), node) in chunk.iter().zip(nodes) {
                            let loc = Loc {
                                seg: active.id,
                                node,
                            };
                            replaced.extend(map.insert(*id, loc));
                        }
                    }
                    active.publish();
                    for old in replaced {
                        self.drop_copy(old)?;
                    }
                    if self.config.index_buffer_points == 0 {
                        // Graph inserts run in parallel (HNSW takes
                        // concurrent inserts) before the write is acknowledged.
                        active.index_all(false)?;
                    } else {
                        self.indexer.wake();
                    }
                    self.train_sq8_if_due(&active)?;
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
            // Clone the tier out of its lock: `ssd` is only ever held to
            // clone or install it (see the lock order in mod.rs).
            let tier = self.ssd.read().clone();
            if let Some(t) = tier {
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

    pub(super) fn segment(&self, id: u32) -> Option<Arc<Segment>> {
        self.segments.read().iter().find(|s| s.id == id).cloned()
    }

    /// Freezes the active segment (if it holds anything) and starts a fresh
    /// one. Returns whether a segment was frozen.
    pub(super) fn push_fresh(&self, w: &mut Writer) -> Result<bool> {
        let cap = self.config.memory_tier_points;
        let prev = self.segments.read().last().cloned();
        let codec = self.fresh_codec(prev.as_deref())?;
        let hnsw = Hnsw::with_codec(
            self.config.dim,
            self.config.metric,
            self.config.hnsw,
            cap,
            codec,
        )?
        .with_exact_vectors()?;
        let fresh = Arc::new(Segment::new(w.next_segment, hnsw));
        fresh.table().create_indexes(&*self.schema.read());
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

    /// The codec of a fresh memory segment. An SQ8 collection's quantiser
    /// is retrained for every segment, on the full vectors of the segment
    /// before it (the one just frozen, or the newest loaded at open) when
    /// that holds at least [`Collection::sq8_train_points`]; otherwise the
    /// segment starts on f32 and [`Collection::train_sq8_if_due`] converts
    /// it once it holds that many.
    fn fresh_codec(&self, prev: Option<&Segment>) -> Result<VectorCodec> {
        Ok(match self.config.hnsw_encoding {
            VectorEncoding::F32 => VectorCodec::F32,
            VectorEncoding::F16 => VectorCodec::F16,
            VectorEncoding::Sq8 => match prev.filter(|p| p.hnsw.len() >= self.sq8_train_points()) {
                Some(p) => match train_sq8(&p.hnsw)? {
                    Some(q) => VectorCodec::Sq8(q),
                    None => VectorCodec::F32,
                },
                None => VectorCodec::F32,
            },
        })
    }

    /// Points an SQ8 segment that started on f32 takes before it is trained
    /// and re-encoded: [`SQ8_TRAIN_POINTS`], or the segment size if smaller.
    fn sq8_train_points(&self) -> usize {
        SQ8_TRAIN_POINTS.min(self.config.memory_tier_points)
    }

    /// In an SQ8 collection, replaces an active segment still on f32 codes
    /// that holds enough points by a copy on SQ8 codes, with a quantiser
    /// trained on all of them (its f32 vectors kept for re-ranking). Called
    /// under the writer lock, between inserts.
    fn train_sq8_if_due(&self, active: &Arc<Segment>) -> Result<()> {
        if self.config.hnsw_encoding != VectorEncoding::Sq8
            || active.hnsw.encoding() != VectorEncoding::F32
            || active.hnsw.len() < self.sq8_train_points()
        {
            return Ok(());
        }
        let Some(q) = train_sq8(&active.hnsw)? else {
            return Ok(());
        };
        // The copy is made from the graph: link the buffer first.
        active.index_all(false)?;
        let copy = Arc::new(active.reencoded(VectorCodec::Sq8(q))?);
        let mut segs = self.segments.write();
        let list: Vec<Arc<Segment>> = segs
            .iter()
            .map(|s| {
                if s.id == active.id {
                    copy.clone()
                } else {
                    s.clone()
                }
            })
            .collect();
        *segs = Arc::new(list);
        tracing::debug!(
            segment = active.id,
            points = active.hnsw.len(),
            "memory segment re-encoded as sq8"
        );
        Ok(())
    }

    /// [`Collection::push_fresh`], then a background checkpoint of what was frozen.
    fn rotate(&self, w: &mut Writer) -> Result<()> {
        if self.push_fresh(w)? {
            self.spawn_checkpoint();
        }
        Ok(())
    }
}

/// An SQ8 quantiser trained on every full vector of `hnsw` (per-dimension
/// min and max); `None` when it keeps no full vectors.
fn train_sq8(hnsw: &Hnsw) -> Result<Option<Sq8Quantizer>> {
    let rows: Option<Vec<&[f32]>> = (0..hnsw.len() as u32)
        .map(|i| hnsw.exact_vector(NodeId(i)))
        .collect();
    match rows {
        Some(rows) if !rows.is_empty() => {
            Ok(Some(Sq8Quantizer::train(rows).map_err(|e| {
                super::CollectionError::invalid("hnsw_encoding", e.to_string())
            })?))
        }
        _ => Ok(None),
    }
}
