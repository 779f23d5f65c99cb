//! Group commit: concurrent appenders share one write and one fsync.
//!
//! Appenders encode their records into a mutex-protected pending buffer. The
//! first appender to find no leader becomes the leader: it takes the whole
//! buffer, writes (and under [`Fsync::Always`] fsyncs) it outside the lock,
//! then publishes the new written/durable LSN and wakes everyone. Appenders
//! that arrived meanwhile have filled the next buffer; one of them leads the
//! next round. With N writers waiting on an fsync, one fsync acknowledges all N.

use super::record::{encode_record, Lsn, MAX_PAYLOAD_LEN, SEGMENT_HEADER_LEN};
use super::segment::SegmentInfo;
use super::{create_segment, Fsync, Inner};
use crate::backend::FileHandle;
use crate::error::{Error, Result};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Active {
    pub file: Box<dyn FileHandle>,
    pub path: PathBuf,
}

/// A batch whose write failed; kept until each of its appenders has seen it.
#[derive(Debug)]
struct Failure {
    lo: u64,
    hi: u64,
    kind: io::ErrorKind,
    op: &'static str,
    path: PathBuf,
    message: String,
    waiters: usize,
}

pub(crate) struct State {
    /// Encoded records not yet taken by a leader.
    pending: Vec<u8>,
    /// Appenders whose records are in `pending`.
    pending_waiters: usize,
    /// First LSN in `pending` (meaningful when non-empty).
    pending_lo: u64,
    /// Next LSN to hand out.
    next_lsn: u64,
    /// Every LSN <= this has been written (or its batch failed).
    pub written_lsn: u64,
    /// Every LSN <= this is durable (or its batch failed).
    pub durable_lsn: u64,
    /// A leader (or the syncer) holds `active` outside the lock.
    busy: bool,
    active: Option<Active>,
    pub segments: Vec<SegmentInfo>,
    failures: Vec<Failure>,
    poisoned: Option<String>,
    pub shutdown: bool,
    /// A spare buffer so the pending buffer's allocation is reused.
    spare: Vec<u8>,
}

impl State {
    pub(crate) fn new(active: Active, segments: Vec<SegmentInfo>, next_lsn: u64) -> Self {
        State {
            pending: Vec::new(),
            pending_waiters: 0,
            pending_lo: next_lsn,
            next_lsn,
            written_lsn: next_lsn - 1,
            durable_lsn: next_lsn - 1,
            busy: false,
            active: Some(active),
            segments,
            failures: Vec::new(),
            poisoned: None,
            shutdown: false,
            spare: Vec::new(),
        }
    }
}

fn poisoned(inner: &Inner, reason: &str) -> Error {
    Error::Poisoned {
        dir: inner.dir.clone(),
        reason: reason.to_string(),
    }
}

/// Assigns consecutive LSNs to `records` and queues them for the next group
/// commit, without waiting; returns the last LSN. LSNs follow the order of
/// `enqueue` calls.
pub(crate) fn enqueue(inner: &Inner, records: &[(u8, &[u8])]) -> Result<Lsn> {
    if records.is_empty() {
        return Err(Error::InvalidArgument(
            "append_batch needs at least one record".into(),
        ));
    }
    if let Some((_, p)) = records.iter().find(|(_, p)| p.len() > MAX_PAYLOAD_LEN) {
        return Err(Error::InvalidArgument(format!(
            "record payload of {} bytes exceeds the maximum {MAX_PAYLOAD_LEN}",
            p.len()
        )));
    }
    let mut st = inner.state.lock();
    if let Some(reason) = &st.poisoned {
        return Err(poisoned(inner, reason));
    }
    if st.pending.is_empty() {
        st.pending_lo = st.next_lsn;
    }
    for (kind, payload) in records {
        let lsn = Lsn(st.next_lsn);
        encode_record(&mut st.pending, lsn, *kind, payload);
        st.next_lsn += 1;
    }
    let mine = st.next_lsn - 1;
    st.pending_waiters += 1;
    Ok(Lsn(mine))
}

/// Appends a batch and waits for its acknowledgement ([`enqueue`] then [`wait`]).
pub(crate) fn append_batch(inner: &Inner, records: &[(u8, &[u8])]) -> Result<Lsn> {
    let mine = enqueue(inner, records)?;
    wait(inner, mine)
}

/// Waits until the batch [`enqueue`] returned `mine` for is acknowledged
/// under the fsync policy (leading a group commit if nobody else is), and
/// reports its outcome. Must be called exactly once per `enqueue`.
pub(crate) fn wait(inner: &Inner, mine: Lsn) -> Result<Lsn> {
    let mine = mine.0;
    let always = inner.opts.fsync == Fsync::Always;
    let mut st = inner.state.lock();
    loop {
        let done = if always {
            st.durable_lsn >= mine
        } else {
            st.written_lsn >= mine
        };
        if done {
            if let Some(i) = st
                .failures
                .iter()
                .position(|f| f.lo <= mine && mine <= f.hi)
            {
                let f = &mut st.failures[i];
                f.waiters -= 1;
                let err = Error::Io {
                    op: f.op,
                    path: f.path.clone(),
                    source: io::Error::new(f.kind, f.message.clone()),
                };
                if f.waiters == 0 {
                    st.failures.swap_remove(i);
                }
                return Err(err);
            }
            return Ok(Lsn(mine));
        }
        if let Some(reason) = &st.poisoned {
            // Our records are still pending and will never be written.
            return Err(poisoned(inner, reason));
        }
        if !st.busy {
            lead(inner, &mut st);
            continue;
        }
        inner.cond.wait(&mut st);
    }
}

/// Takes the pending batch, writes it outside the lock, publishes the outcome.
fn lead(inner: &Inner, st: &mut parking_lot::MutexGuard<'_, State>) {
    debug_assert!(!st.pending.is_empty());
    st.busy = true;
    let spare = std::mem::take(&mut st.spare);
    let mut batch = std::mem::replace(&mut st.pending, spare);
    let (lo, hi) = (st.pending_lo, st.next_lsn - 1);
    let waiters = std::mem::take(&mut st.pending_waiters);
    let mut active = st
        .active
        .take()
        .expect("active segment present when not busy");
    let sync = inner.opts.fsync == Fsync::Always;

    let outcome =
        parking_lot::MutexGuard::unlocked(st, || write_batch(inner, &mut active, &batch, lo, sync));

    match outcome {
        Ok(rotated) => {
            if let Some(seg) = rotated {
                st.segments.push(seg);
            }
            st.written_lsn = hi;
            if sync {
                st.durable_lsn = hi;
            }
        }
        Err(mut f) => {
            if let Some(seg) = f.rotated.take() {
                st.segments.push(seg);
            }
            tracing::error!(op = f.op, file = %f.path.display(), error = %f.message, lo, hi, poisoned = f.poison, "WAL append failed");
            if f.poison {
                st.poisoned = Some(format!("{} {}: {}", f.op, f.path.display(), f.message));
            }
            st.failures.push(Failure {
                lo,
                hi,
                kind: f.kind,
                op: f.op,
                path: f.path,
                message: f.message,
                waiters,
            });
            // The batch's LSNs are spent: "written or failed", and under `Always` "durable or failed".
            st.written_lsn = hi;
            if sync {
                st.durable_lsn = hi;
            }
        }
    }
    batch.clear();
    st.spare = batch;
    st.active = Some(active);
    st.busy = false;
    inner.cond.notify_all();
}

struct WriteFailure {
    op: &'static str,
    path: PathBuf,
    kind: io::ErrorKind,
    message: String,
    poison: bool,
    /// A rotation that succeeded before the write failed: the new segment exists.
    rotated: Option<SegmentInfo>,
}

impl WriteFailure {
    fn new(op: &'static str, path: &std::path::Path, e: &io::Error, poison: bool) -> Self {
        WriteFailure {
            op,
            path: path.to_path_buf(),
            kind: e.kind(),
            message: e.to_string(),
            poison,
            rotated: None,
        }
    }
}

/// Writes one batch, rotating first if it would overflow the segment.
/// On failure the segment is cut back to where the batch started.
fn write_batch(
    inner: &Inner,
    active: &mut Active,
    batch: &[u8],
    lo: u64,
    sync: bool,
) -> std::result::Result<Option<SegmentInfo>, WriteFailure> {
    let mut rotated = None;
    let len = active.file.len();
    if len > SEGMENT_HEADER_LEN as u64 && len + batch.len() as u64 > inner.opts.segment_size {
        // The old segment must be durable before records go to the next one,
        // so only the last segment can ever have a torn tail.
        if !sync {
            active
                .file
                .sync()
                .map_err(|e| WriteFailure::new("fsync", &active.path, &e, true))?;
        }
        let next = create_segment(&*inner.backend, &inner.dir, Lsn(lo)).map_err(|e| match e {
            Error::Io { op, path, source } => WriteFailure::new(op, &path, &source, false),
            other => WriteFailure {
                op: "create segment",
                path: inner.dir.clone(),
                kind: io::ErrorKind::Other,
                message: other.to_string(),
                poison: false,
                rotated: None,
            },
        })?;
        rotated = Some(SegmentInfo {
            path: next.path.clone(),
            base: Lsn(lo),
        });
        *active = next;
        tracing::debug!(file = %active.path.display(), "rotated WAL segment");
    }
    let start = active.file.len();
    let result = active
        .file
        .append(batch)
        .map_err(|e| ("write", e))
        .and_then(|()| {
            if sync {
                active.file.sync().map_err(|e| ("fsync", e))
            } else {
                Ok(())
            }
        });
    match result {
        Ok(()) => Ok(rotated),
        Err((op, e)) => {
            // Cut the failed batch off so nothing half-written stays in the log.
            let cut = active.file.set_len(start);
            // After a failed fsync the page cache state is unknown: poison.
            let poison = op == "fsync" || cut.is_err();
            let mut failure = WriteFailure::new(op, &active.path, &e, poison);
            if let Err(c) = cut {
                failure.message = format!(
                    "{}; truncating back to {start} also failed: {c}",
                    failure.message
                );
            }
            failure.rotated = rotated;
            Err(failure)
        }
    }
}

/// Fsyncs everything written so far.
pub(crate) fn sync(inner: &Inner) -> Result<()> {
    let mut st = inner.state.lock();
    loop {
        if let Some(reason) = &st.poisoned {
            return Err(poisoned(inner, reason));
        }
        if st.durable_lsn >= st.written_lsn {
            return Ok(());
        }
        if !st.busy {
            break;
        }
        inner.cond.wait(&mut st);
    }
    let target = st.written_lsn;
    st.busy = true;
    let mut active = st
        .active
        .take()
        .expect("active segment present when not busy");
    let res = parking_lot::MutexGuard::unlocked(&mut st, || active.file.sync());
    st.active = Some(active);
    st.busy = false;
    let out = match res {
        Ok(()) => {
            st.durable_lsn = st.durable_lsn.max(target);
            Ok(())
        }
        Err(e) => {
            let path = st
                .active
                .as_ref()
                .map(|a| a.path.clone())
                .unwrap_or_default();
            st.poisoned = Some(format!("fsync {}: {e}", path.display()));
            Err(Error::io("fsync", &path, e))
        }
    };
    inner.cond.notify_all();
    out
}

/// The `Fsync::Interval` thread: fsync every `every` until shutdown.
pub(crate) fn background_sync(inner: &Inner, every: Duration) {
    let mut next = Instant::now() + every;
    loop {
        {
            let mut st = inner.state.lock();
            while !st.shutdown && Instant::now() < next {
                inner.cond.wait_until(&mut st, next);
            }
            if st.shutdown {
                return;
            }
        }
        if let Err(e) = sync(inner) {
            tracing::error!(error = %e, "background WAL fsync failed");
            return;
        }
        next = Instant::now() + every;
    }
}
