//! The write-ahead log: append-only segment files, group commit, replay,
//! truncation and the recovery rules applied at open.
//!
//! * [`record`]: the byte framing (pure functions, fuzzed).
//! * `segment`: segment files and the open-time scan (torn tail, corruption, repair).
//! * `commit`: the group-commit writer (leader/follower over one pending buffer).
//! * `replay`: streaming records back in LSN order.
//!
//! # Failure policy
//! When writing a batch fails (ENOSPC, EIO, short write) every record of the
//! batch is reported failed and the segment is truncated back to the end of
//! the last whole batch, so later appends and a reopen read cleanly. If that
//! truncation fails, or an fsync fails (after which the kernel may have
//! dropped dirty pages, so what is on disk is unknown), the writer is
//! *poisoned*: every later append fails with [`Error::Poisoned`] until the log
//! is reopened, and reopening applies the ordinary recovery rules.

mod commit;
pub mod record;
mod replay;
mod segment;

pub use record::{
    decode_record, encode_record, DecodeError, Lsn, Record, RecordRef, MAX_PAYLOAD_LEN,
};
pub use replay::Replay;
pub use segment::OpenReport;

use crate::backend::{default_backend, Backend, FileHandle};
use crate::error::{Error, Result};
use crate::lock::DirLock;
use commit::{Active, State};
use parking_lot::{Condvar, Mutex};
use segment::{scan_and_recover, segment_name, SegmentInfo};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// When an append is acknowledged, and so what survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `append` returns after the record is written *and fsynced*: an acknowledged
    /// record survives a process crash and a power loss.
    Always,
    /// `append` returns after the record is written to the OS; a background thread
    /// fsyncs every interval. Survives a process crash; a power loss may lose about
    /// the last interval of acknowledged records (never a record in the middle).
    Interval(Duration),
    /// `append` returns after the write; fsync only at rotation, [`Wal::sync`] and close.
    /// Survives a process crash; a power loss may lose any unsynced suffix.
    Never,
}

/// What opening does with damage it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recovery {
    /// Cut a torn tail (a partly written last record) back to the last whole record;
    /// any other damage is an error naming file and offset.
    #[default]
    TolerateTornTail,
    /// Also truncate the log at the first damaged record, dropping it and everything after.
    /// Explicit opt-in: acknowledged records after the damage are lost.
    Repair,
}

/// Options for [`Wal::open`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Durability of acknowledged appends. Default: [`Fsync::Always`].
    pub fsync: Fsync,
    /// A segment is rotated when a batch would take it past this size. Default: 64 MiB.
    pub segment_size: u64,
    /// Recovery rules at open. Default: [`Recovery::TolerateTornTail`].
    pub recovery: Recovery,
    /// File-system backend. Default: the real file system.
    pub backend: Arc<dyn Backend>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            fsync: Fsync::Always,
            segment_size: 64 << 20,
            recovery: Recovery::default(),
            backend: default_backend(),
        }
    }
}

impl WalOptions {
    /// Sets the fsync policy.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }
    /// Sets the segment rotation size.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }
    /// Sets the recovery rules.
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }
    /// Sets the backend.
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = backend;
        self
    }
}

pub(crate) struct Inner {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    opts: WalOptions,
    state: Mutex<State>,
    cond: Condvar,
}

/// Records queued by [`Wal::enqueue`], not yet acknowledged.
///
/// Dropping a ticket without [`Ticket::wait`] still waits (so the records
/// are written and the group-commit bookkeeping stays balanced) but
/// discards the outcome.
#[must_use = "a write is acknowledged only once Ticket::wait returns Ok"]
pub struct Ticket<'a> {
    wal: &'a Wal,
    lsn: Lsn,
    waited: bool,
}

impl Ticket<'_> {
    /// LSN of the last queued record.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Waits until the records are acknowledged under the fsync policy
    /// (written, and fsynced under [`Fsync::Always`]); returns the last LSN.
    pub fn wait(mut self) -> Result<Lsn> {
        self.waited = true;
        commit::wait(&self.wal.inner, self.lsn)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.waited {
            let _ = commit::wait(&self.wal.inner, self.lsn);
        }
    }
}

/// A write-ahead log in one directory. Share it between threads with `Arc<Wal>`.
pub struct Wal {
    inner: Arc<Inner>,
    syncer: Option<JoinHandle<()>>,
    report: OpenReport,
    _lock: DirLock,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.dir)
            .field("fsync", &self.inner.opts.fsync)
            .finish()
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir`, applying the recovery rules of `opts.recovery`.
    /// Takes an exclusive lock on `dir/LOCK`.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        let backend = opts.backend.clone();
        backend
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create dir", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let scanned = scan_and_recover(&*backend, &dir, opts.recovery)?;
        let mut segments = scanned.segments;
        let last = scanned.report.last_lsn.0;
        let active = match segments.last() {
            Some(seg) => {
                let file = backend
                    .open(&seg.path)
                    .map_err(|e| Error::io("open", &seg.path, e))?;
                debug_assert_eq!(file.len(), scanned.tail_len);
                Active {
                    file,
                    path: seg.path.clone(),
                }
            }
            None => {
                let seg = create_segment(&*backend, &dir, Lsn(last + 1))?;
                segments.push(SegmentInfo {
                    path: seg.path.clone(),
                    base: Lsn(last + 1),
                });
                seg
            }
        };
        let next = (last + 1).max(segments.last().map_or(1, |s| s.base.0));
        let report = scanned.report;
        tracing::info!(dir = %dir.display(), segments = report.segments, records = report.records, last_lsn = last, "opened WAL");
        let inner = Arc::new(Inner {
            dir,
            backend,
            state: Mutex::new(State::new(active, segments, next)),
            cond: Condvar::new(),
            opts,
        });
        let syncer = match inner.opts.fsync {
            Fsync::Interval(every) => {
                let inner = inner.clone();
                Some(
                    std::thread::Builder::new()
                        .name("wal-fsync".into())
                        .spawn(move || commit::background_sync(&inner, every))
                        .map_err(|e| Error::io("spawn fsync thread for", Path::new("wal"), e))?,
                )
            }
            _ => None,
        };
        Ok(Wal {
            inner,
            syncer,
            report,
            _lock: lock,
        })
    }

    /// Appends one record and returns its LSN once it is acknowledged under the fsync policy.
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<Lsn> {
        self.append_batch(&[(kind, payload)])
    }

    /// Appends records atomically-in-order (consecutive LSNs, one write) and returns the last LSN.
    /// After a crash a prefix of the batch may survive if it was never acknowledged.
    pub fn append_batch(&self, records: &[(u8, &[u8])]) -> Result<Lsn> {
        commit::append_batch(&self.inner, records)
    }

    /// Queues records for the next group commit without waiting: returns a
    /// [`Ticket`] holding their last LSN. LSNs follow the order of `enqueue`
    /// calls, so a caller can keep log order equal to its own apply order by
    /// enqueueing under its own lock, then release that lock and
    /// [`Ticket::wait`] outside it, letting the fsyncs of many callers merge.
    /// The records are acknowledged only once `wait` returns `Ok`.
    pub fn enqueue(&self, records: &[(u8, &[u8])]) -> Result<Ticket<'_>> {
        let lsn = commit::enqueue(&self.inner, records)?;
        Ok(Ticket {
            wal: self,
            lsn,
            waited: false,
        })
    }

    /// Makes every written record durable (fsync), whatever the policy.
    pub fn sync(&self) -> Result<()> {
        commit::sync(&self.inner)
    }

    /// Streams the records with LSN `>= from` in order, up to the last record written when called.
    pub fn replay(&self, from: Lsn) -> Result<Replay> {
        let (segments, end) = {
            let st = self.inner.state.lock();
            (st.segments.clone(), st.written_lsn)
        };
        Ok(Replay::new(
            self.inner.backend.clone(),
            segments,
            from,
            Lsn(end),
        ))
    }

    /// Removes the segments whose records all have LSN `< lsn` (a checkpoint covers them).
    /// The active segment is never removed. Returns the number of segments removed.
    /// Do not run concurrently with a [`Replay`] reading those segments.
    pub fn truncate_before(&self, lsn: Lsn) -> Result<usize> {
        let doomed: Vec<SegmentInfo> = {
            let mut st = self.inner.state.lock();
            // Segment i holds LSNs in [base_i, base_{i+1}); it is dead if base_{i+1} <= lsn.
            let keep_from = st
                .segments
                .windows(2)
                .take_while(|w| w[1].base <= lsn)
                .count();
            st.segments.drain(..keep_from).collect()
        };
        for seg in &doomed {
            self.inner
                .backend
                .remove(&seg.path)
                .map_err(|e| Error::io("remove", &seg.path, e))?;
        }
        if !doomed.is_empty() {
            let dir = &self.inner.dir;
            self.inner
                .backend
                .sync_dir(dir)
                .map_err(|e| Error::io("fsync dir", dir, e))?;
            tracing::debug!(removed = doomed.len(), before = lsn.0, "truncated WAL");
        }
        Ok(doomed.len())
    }

    /// LSN of the last record written (acknowledged under `Interval`/`Never`); 0 if none.
    pub fn last_lsn(&self) -> Lsn {
        Lsn(self.inner.state.lock().written_lsn)
    }

    /// LSN up to which every record is durable (or failed); 0 if none.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.inner.state.lock().durable_lsn)
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.inner.state.lock().segments.len()
    }

    /// Bytes in the log's segment files (what a checkpoint would let
    /// truncation reclaim). Files that vanish while being measured count 0.
    pub fn size_bytes(&self) -> u64 {
        let paths: Vec<PathBuf> = {
            let st = self.inner.state.lock();
            st.segments.iter().map(|s| s.path.clone()).collect()
        };
        paths
            .iter()
            .map(|p| self.inner.backend.len(p).unwrap_or(0))
            .sum()
    }

    /// What opening found: records, torn tail cut, repair done.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Fsyncs what was written and closes the log, reporting a final fsync failure.
    pub fn close(mut self) -> Result<()> {
        self.stop_syncer();
        if self.inner.opts.fsync != Fsync::Always {
            return self.sync();
        }
        Ok(())
    }

    fn stop_syncer(&mut self) {
        if let Some(handle) = self.syncer.take() {
            self.inner.state.lock().shutdown = true;
            self.inner.cond.notify_all();
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop_syncer();
        if self.inner.opts.fsync != Fsync::Always {
            if let Err(e) = self.sync() {
                tracing::error!(error = %e, "final WAL fsync failed");
            }
        }
    }
}

/// Creates a segment: header written and fsynced, directory fsynced.
pub(crate) fn create_segment(backend: &dyn Backend, dir: &Path, base: Lsn) -> Result<Active> {
    let path = dir.join(segment_name(base));
    let write = || -> std::io::Result<Box<dyn FileHandle>> {
        let mut file = backend.create(&path)?;
        file.append(&record::encode_segment_header(base))?;
        file.sync()?;
        backend.sync_dir(dir)?;
        Ok(file)
    };
    match write() {
        Ok(file) => Ok(Active { file, path }),
        Err(e) => {
            let _ = backend.remove(&path);
            Err(Error::io("create segment", &path, e))
        }
    }
}
