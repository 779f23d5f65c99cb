//! Checkpoints: freeze, merge into the SSD tier, write segment files,
//! commit a manifest and truncate the WAL; run in the background on rotation.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use roaring::RoaringBitmap;

use quiver_storage::Lsn;

use super::segment::Segment;
use super::{Collection, Result, SsdConfig};

impl Collection {
    /// Starts a checkpoint on a background thread (joined by `close`).
    pub(super) fn spawn_checkpoint(&self) {
        if let Some(me) = self.me.upgrade() {
            // The thread runs at normal priority: it holds the collection
            // (a reopen waits for it), and its CPU-heavy part, the merge
            // into the SSD tier, runs on the low-priority background pool.
            let handle = std::thread::spawn(move || {
                if let Err(e) = me.checkpoint() {
                    tracing::error!(dir = %me.dir.display(), error = %e, "background checkpoint failed");
                }
            });
            let mut bg = self.background.lock();
            bg.retain(|h| !h.is_finished());
            bg.push(handle);
        }
    }

    /// Freezes the active segment, then checkpoints: afterwards every point
    /// is in a segment file and the WAL is (nearly) empty.
    pub fn checkpoint_all(&self) -> Result<()> {
        self.push_fresh(&mut self.writer.lock())?;
        self.checkpoint()
    }

    /// Merges the frozen segments into the SSD tier (when the collection has
    /// one), writes what stays in memory, and commits a checkpoint (see
    /// [`Collection::checkpoint_all`]).
    pub fn checkpoint(&self) -> Result<()> {
        self.commit_checkpoint(self.config.ssd)
    }

    /// Freezes the active segment and writes every memory segment to a
    /// file without merging into the SSD tier, then commits: a reopen loads
    /// the files instead of replaying the WAL (the server does this on a
    /// graceful shutdown). Segments written this way are merged into the
    /// SSD tier by a background checkpoint after the next open.
    pub fn flush(&self) -> Result<()> {
        self.push_fresh(&mut self.writer.lock())?;
        self.commit_checkpoint(None)
    }

    /// Merges frozen segments into the SSD tier when `merge` is set, writes
    /// the remaining frozen segments, and commits a new manifest.
    fn commit_checkpoint(&self, merge: Option<SsdConfig>) -> Result<()> {
        let _one = self.checkpointing.lock();
        let started = std::time::Instant::now();
        if let Some(settings) = merge {
            self.merge_frozen(settings)?;
        }
        let (lsn, frozen): (Lsn, Vec<(Arc<Segment>, RoaringBitmap)>) = {
            let w = self.writer.lock();
            // Frozen segments with no live point left are dropped: nothing maps to them.
            let segs = {
                let mut segs = self.segments.write();
                let n = segs.len();
                let kept: Vec<Arc<Segment>> = segs
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| *i + 1 == n || s.hnsw.live_len() > 0)
                    .map(|(_, s)| s.clone())
                    .collect();
                *segs = Arc::new(kept);
                segs.clone()
            };
            let frozen = segs[..segs.len() - 1]
                .iter()
                .map(|s| (s.clone(), s.hnsw.deleted()))
                .collect();
            // Everything applied is in the WAL; make it durable before files
            // that reflect it can be committed.
            self.wal.sync()?;
            (w.frozen, frozen)
        };
        // A segment file holds the graph: link what is still buffered (the
        // segments are frozen, so nothing is appended meanwhile; the
        // indexer takes the oldest segments first, so little is left). At
        // normal priority, like the rest of the checkpoint.
        for (seg, _) in &frozen {
            seg.index_all(false)?;
        }
        let mut store = self.store.lock();
        let generation = store.manifest().generation + 1;
        let mut files = Vec::new();
        for (seg, deleted) in &frozen {
            files.extend(seg.persist(&store, generation, deleted)?);
        }
        // The SSD snapshot is taken after `lsn` was chosen, so it holds
        // every write up to `lsn` (and maybe later deletes, which replaying
        // the WAL after `lsn` repeats harmlessly).
        let tier = self.ssd.read().clone();
        let ssd_generation = match &tier {
            Some(t) => {
                let (g, entry) = t.persist(&store)?;
                files.push(entry);
                Some(g)
            }
            None => None,
        };
        store.commit(lsn, files)?;
        drop(store);
        self.checkpoint_lsn.store(lsn.0, Ordering::Release);
        if let (Some(t), Some(g)) = (&tier, ssd_generation) {
            t.committed(g)?;
        }
        let removed = self.wal.truncate_before(Lsn(lsn.0 + 1))?;
        self.checkpoints.record(started.elapsed());
        tracing::info!(
            dir = %self.dir.display(),
            lsn = lsn.0,
            segments = frozen.len(),
            wal_segments_removed = removed,
            seconds = started.elapsed().as_secs_f64(),
            "checkpoint committed"
        );
        Ok(())
    }
}
