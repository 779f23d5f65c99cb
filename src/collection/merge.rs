//! The merge of frozen memory segments into the SSD tier.

use std::sync::Arc;

use super::segment::Segment;
use super::ssd::SsdTier;
use super::{Collection, Loc, Result, SsdConfig, SSD};
use crate::hnsw::NodeId;

impl Collection {
    /// Moves the points of every frozen segment into the SSD tier (created
    /// on first use), one segment at a time. Writes and searches continue:
    /// the SPANN inserts run without the writer lock; then, under one brief
    /// id-map write lock, each point whose current copy is still that
    /// segment's node is pointed at its SSD copy (SSD copies of points
    /// replaced or deleted meanwhile are deleted), and the segment leaves
    /// the segment list.
    pub(super) fn merge_frozen(&self, settings: SsdConfig) -> Result<()> {
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
                Some(t) => super::background::run(|| t.insert(&ids, &vectors, payloads))?,
                None => {
                    // The first merge builds the tier in bulk from this segment.
                    let n = ids.len() as u32;
                    let backend = self.store.lock().backend().clone();
                    let t = super::background::run(|| {
                        SsdTier::build(
                            &self.dir,
                            backend,
                            &self.config,
                            settings,
                            &ids,
                            vectors,
                            payloads,
                        )
                    })?;
                    t.table().create_indexes(&*self.schema.read());
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
}
