//! Counts and sizes describing a collection.

use std::sync::atomic::Ordering;

use super::{CheckpointStats, Collection};

/// Counts describing a collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub points: usize,
    pub segments: usize,
    /// Points in the active memory tier (not yet frozen).
    pub active_points: usize,
    /// Points in the SSD tier.
    pub ssd_points: usize,
    /// Bytes of the SSD tier's files.
    pub ssd_bytes: u64,
    /// Frozen segments merged into the SSD tier since open.
    pub merges: u64,
    /// Seconds the last merge into the SSD tier took.
    pub last_merge_seconds: f64,
    pub index_memory_bytes: usize,
    pub checkpoint_lsn: u64,
    pub last_lsn: u64,
    /// Points acknowledged but not yet linked into the graph.
    pub unindexed_points: usize,
}

impl Collection {
    /// Number of live points.
    pub fn count(&self) -> usize {
        self.map.read().len()
    }

    /// Live statistics.
    pub fn stats(&self) -> Stats {
        let segs = self.segments.read().clone();
        let tier = self.ssd.read().clone();
        let (merges, last_merge_seconds) = *self.merges.lock();
        Stats {
            points: self.count(),
            segments: segs.len(),
            active_points: segs.last().map_or(0, |s| s.hnsw.live_len()),
            ssd_points: tier.as_ref().map_or(0, |t| t.len()),
            ssd_bytes: tier.as_ref().map_or(0, |t| t.disk_bytes()),
            merges,
            last_merge_seconds,
            index_memory_bytes: segs.iter().map(|s| s.hnsw.memory_bytes()).sum::<usize>()
                + tier.as_ref().map_or(0, |t| t.memory_bytes()),
            checkpoint_lsn: self.checkpoint_lsn.load(Ordering::Acquire),
            last_lsn: self.wal.last_lsn().0,
            unindexed_points: segs.iter().map(|s| s.unindexed()).sum(),
        }
    }

    /// Checkpoints committed since the collection was opened, and their time.
    pub fn checkpoint_stats(&self) -> CheckpointStats {
        self.checkpoints.snapshot()
    }

    /// Bytes in the write-ahead log's files (shrinks when a checkpoint truncates it).
    pub fn wal_bytes(&self) -> u64 {
        self.wal.size_bytes()
    }
}
