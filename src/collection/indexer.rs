//! The background indexer: one thread per collection that links the
//! unindexed buffer (points acknowledged and searchable, not yet in the
//! graph) into the HNSW graph, oldest segment first, a batch of
//! [`INDEX_BATCH_POINTS`] at a time on the low-priority background pool.
//!
//! Writers call [`Indexer::wait_for_room`] before they log an upsert: while
//! the buffer holds more than the collection's `index_buffer_points` they
//! wait for the indexer (backpressure), so the exact scan every search
//! makes of the buffer stays bounded. While a writer waits, the graph build
//! is what the write waits for, so batches then run at normal priority
//! (the global rayon pool) instead of the background pool: on a busy
//! machine a low-priority build would hold ingest to a trickle. The thread
//! holds the segment list, never the collection: dropping the last
//! `Arc<Collection>` stops it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use super::segment::Segment;
use crate::limits::INDEX_BATCH_POINTS;

/// The segment list as the collection shares it with its indexer.
pub(super) type SegmentList = Arc<RwLock<Arc<Vec<Arc<Segment>>>>>;

/// Longest wait of the idle indexer or of a waiting writer before it looks
/// again (wake-ups are sent, this only bounds a missed one).
const RECHECK: Duration = Duration::from_millis(20);

/// Buffered points of every segment in `segments`.
pub(super) fn unindexed(segments: &SegmentList) -> usize {
    segments.read().iter().map(|s| s.unindexed()).sum()
}

/// The indexer's wake-ups and its thread.
#[derive(Default)]
pub(super) struct Indexer {
    /// Set once the collection is dropped or closed.
    stopped: Mutex<bool>,
    /// Signalled when points are published (the indexer waits on it).
    work: Condvar,
    /// Signalled after each linked batch (waiting writers wait on it).
    room: Condvar,
    /// Writers waiting for room in the buffer.
    waiting: AtomicUsize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Indexer {
    /// Starts the indexer thread over `segments`.
    pub fn start(self: &Arc<Self>, segments: SegmentList, name: String) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("quiver-indexer".into())
            .spawn(move || me.run(&segments, &name));
        match spawned {
            Ok(h) => *self.thread.lock() = Some(h),
            Err(e) => tracing::error!(error = %e, "could not start the indexer thread"),
        }
    }

    fn run(&self, segments: &SegmentList, name: &str) {
        super::background::lower_priority();
        loop {
            if *self.stopped.lock() {
                return;
            }
            let next = segments.read().iter().find(|s| s.unindexed() > 0).cloned();
            match next {
                Some(seg) => {
                    let urgent = self.waiting.load(Ordering::Acquire) > 0;
                    if let Err(e) = seg.index_batch(INDEX_BATCH_POINTS, !urgent) {
                        tracing::error!(collection = name, segment = seg.id, error = %e, "graph build of buffered points failed");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    let _g = self.stopped.lock();
                    self.room.notify_all();
                }
                None => {
                    let mut stopped = self.stopped.lock();
                    // Checked again under the lock a writer takes to wake
                    // us, so a wake-up sent after the first check is not lost.
                    if *stopped || unindexed(segments) > 0 {
                        continue;
                    }
                    self.room.notify_all();
                    self.work.wait_for(&mut stopped, RECHECK * 5);
                }
            }
        }
    }

    /// Tells the indexer that points were published.
    pub fn wake(&self) {
        let _g = self.stopped.lock();
        self.work.notify_one();
    }

    /// Waits while the buffer holds more than `bound` points with
    /// `incoming` more (a batch larger than `bound` waits for an empty
    /// buffer). Returns at once once the indexer is stopped.
    pub fn wait_for_room(&self, segments: &SegmentList, incoming: usize, bound: usize) {
        let full = |pending: usize| pending > 0 && pending.saturating_add(incoming) > bound;
        if !full(unindexed(segments)) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        loop {
            let mut stopped = self.stopped.lock();
            if *stopped || !full(unindexed(segments)) {
                break;
            }
            self.room.wait_for(&mut stopped, RECHECK);
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Stops the thread and waits for its current batch.
    pub fn stop(&self) {
        {
            let mut stopped = self.stopped.lock();
            *stopped = true;
            self.work.notify_all();
            self.room.notify_all();
        }
        if let Some(h) = self.thread.lock().take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}
