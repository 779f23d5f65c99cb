//! Counters of a collection's background work (checkpoints so far), cheap
//! enough to bump on every checkpoint and read on every metrics scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Checkpoints committed since the collection was opened, and their time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CheckpointStats {
    /// Checkpoints committed.
    pub count: u64,
    /// Seconds spent in them, all together.
    pub total_seconds: f64,
    /// Seconds the most recent one took (0 before the first).
    pub last_seconds: f64,
}

/// Lock-free accumulator behind [`CheckpointStats`].
#[derive(Debug, Default)]
pub(crate) struct CheckpointCounters {
    count: AtomicU64,
    total_nanos: AtomicU64,
    last_nanos: AtomicU64,
}

impl CheckpointCounters {
    /// Records one committed checkpoint that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.last_nanos.store(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> CheckpointStats {
        let count = self.count.load(Ordering::Acquire);
        CheckpointStats {
            count,
            total_seconds: self.total_nanos.load(Ordering::Relaxed) as f64 * 1e-9,
            last_seconds: self.last_nanos.load(Ordering::Relaxed) as f64 * 1e-9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_add_up() {
        let c = CheckpointCounters::default();
        assert_eq!(c.snapshot(), CheckpointStats::default());
        c.record(Duration::from_millis(250));
        c.record(Duration::from_millis(500));
        let s = c.snapshot();
        assert_eq!(s.count, 2);
        assert!((s.total_seconds - 0.75).abs() < 1e-9, "{s:?}");
        assert!((s.last_seconds - 0.5).abs() < 1e-9, "{s:?}");
    }
}
