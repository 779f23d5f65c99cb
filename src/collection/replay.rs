//! Replay of the write-ahead log at open: the records after the checkpoint
//! are re-applied to the memory tier, consecutive upserts in batches.

use quiver_storage::Lsn;

use super::record::{self, Op};
use super::{Collection, CollectionError, Payload, PointId, Result, Writer};

/// Most points re-applied as one batch while replaying the WAL.
pub(super) const REPLAY_BATCH: usize = 4096;

impl Collection {
    /// Re-applies the WAL from `from` (at open; the caller holds the writer
    /// lock). Consecutive upsert records are applied as one batch of up to
    /// [`REPLAY_BATCH`] points, so their graph inserts run in parallel even
    /// when clients wrote one point at a time; a delete ends a batch. The
    /// result equals applying record by record: within a batch the id map is
    /// updated in WAL order, so a repeated id ends with its last version.
    /// Returns the number of records replayed.
    pub(super) fn replay(&self, w: &mut Writer, from: Lsn) -> Result<usize> {
        let mut pending: Vec<(PointId, Vec<f32>, Option<Payload>)> = Vec::new();
        let mut pending_lsn = w.applied;
        let mut records = 0usize;
        let started = std::time::Instant::now();
        let mut last_log = started;
        let flush = |w: &mut Writer, pending: &mut Vec<_>, lsn: Lsn| -> Result<()> {
            if !pending.is_empty() {
                self.apply(w, Op::Upsert(std::mem::take(pending)))?;
            }
            w.applied = lsn;
            Ok(())
        };
        for rec in self.wal.replay(from)? {
            let rec = rec?;
            let op = record::decode(rec.kind, &rec.payload, self.config.dim).map_err(
                |(offset, reason)| CollectionError::Corrupt {
                    file: self.dir.join("wal"),
                    offset: offset as u64,
                    reason: format!("record {}: {reason}", rec.lsn.0),
                },
            )?;
            records += 1;
            match op {
                Op::Upsert(points) => {
                    pending.extend(points);
                    pending_lsn = rec.lsn;
                    if pending.len() >= REPLAY_BATCH {
                        flush(w, &mut pending, pending_lsn)?;
                    }
                }
                Op::Delete(ids) => {
                    flush(w, &mut pending, pending_lsn)?;
                    self.apply(w, Op::Delete(ids))?;
                    w.applied = rec.lsn;
                }
            }
            if last_log.elapsed().as_secs() >= 5 {
                last_log = std::time::Instant::now();
                tracing::info!(
                    dir = %self.dir.display(),
                    records,
                    lsn = rec.lsn.0,
                    last_lsn = self.wal.last_lsn().0,
                    seconds = started.elapsed().as_secs_f64(),
                    "replaying the write-ahead log"
                );
            }
        }
        flush(w, &mut pending, pending_lsn)?;
        Ok(records)
    }
}
