//! The pool that runs a collection's background work: linking the
//! unindexed buffer into the graph and merges into the SSD tier. Its threads (one per core) run at nice [`BACKGROUND_NICE`], so the
//! scheduler gives searches and writes the cores first and background work
//! takes what is left: a search never queues behind a graph build or a
//! merge for CPU. The pool is shared by every collection of the process.

use std::sync::OnceLock;

use crate::limits::BACKGROUND_NICE;

/// The background pool (built on first use).
pub(crate) fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("quiver-bg-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .or_else(|e| {
                tracing::warn!(error = %e, "background pool: falling back to one thread");
                rayon::ThreadPoolBuilder::new().num_threads(1).build()
            })
            .expect("a one-thread rayon pool can always be built")
    })
}

/// Runs `f` on the background pool (its parallel iterators too), from a
/// thread of any priority.
pub(crate) fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`] (Linux sets
/// nice per thread); a failure is logged and the thread runs as it is.
pub(crate) fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
        tracing::debug!(error = %e, "could not lower a background thread's priority");
    }
}
