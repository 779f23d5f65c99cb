//! The replication log of one shard replica: every write of the shard, in
//! order, as `(lsn, term, op)` records ([`pb::LogRecord`]), kept in a WAL of
//! the `quiver-storage` crate (so fsync policy and fault injection are the
//! storage layer's). Replication LSNs are the shard's own (the same on every
//! replica); the WAL's LSNs are local.
//!
//! A *base* record (kind 0) restarts the log: it marks that the replica's
//! points hold everything up to its `(lsn, term)` (after a snapshot was
//! installed) and nothing before it is kept. The log is trimmed to the last
//! [`RETAIN_RECORDS`] records; a follower further behind gets a snapshot.
//!
//! Log matching (as in Raft): a leader writes at most one record per LSN in
//! its term and followers append only after a record equal in `(lsn, term)`
//! to their last, so two replicas holding a record with the same
//! `(lsn, term)` hold the same records up to it.

use std::collections::VecDeque;
use std::path::Path;

use prost::Message as _;
use quiver_storage::{Fsync, Lsn, Wal, WalOptions};

use super::pb;

const KIND_BASE: u8 = 0;
const KIND_RECORD: u8 = 1;

/// Records kept for followers that fall behind.
pub const RETAIN_RECORDS: usize = 100_000;

/// Why the log failed.
#[derive(Debug, thiserror::Error)]
pub enum OplogError {
    #[error("replication log: {0}")]
    Storage(#[from] quiver_storage::Error),
    #[error("replication log record at local LSN {lsn}: {message}")]
    Corrupt { lsn: u64, message: String },
    #[error("replication log: record {got} does not follow {last}")]
    OutOfOrder { last: u64, got: u64 },
}

pub type Result<T> = std::result::Result<T, OplogError>;

/// A shard replica's replication log.
#[derive(Debug)]
pub struct Oplog {
    wal: Wal,
    /// (replication lsn, term, local WAL lsn) of each record kept, oldest first.
    index: VecDeque<(u64, u64, u64)>,
    /// The first kept entry is a base record (not a write to send).
    based: bool,
}

impl Oplog {
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<Oplog> {
        let wal = Wal::open(dir, WalOptions::default().fsync(fsync))?;
        let mut index = VecDeque::new();
        let mut based = false;
        for r in wal.replay(Lsn(0))? {
            let r = r?;
            let rec = decode(r.lsn.0, &r.payload)?;
            if r.kind == KIND_BASE {
                index.clear();
                based = true;
            }
            index.push_back((rec.lsn, rec.term, r.lsn.0));
        }
        Ok(Oplog { wal, index, based })
    }

    /// `(lsn, term)` of the last record; `(0, 0)` for an empty log.
    pub fn last(&self) -> (u64, u64) {
        self.index.back().map_or((0, 0), |&(l, t, _)| (l, t))
    }

    /// The term of the record at `lsn`, if it is kept (`Some(0)` for lsn 0
    /// of a log that starts at the beginning).
    pub fn term_at(&self, lsn: u64) -> Option<u64> {
        let first = self.index.front().map_or(1, |e| e.0);
        if lsn == 0 && first <= 1 && !self.starts_with_base() {
            return Some(0);
        }
        if lsn < first {
            return None;
        }
        self.index
            .get((lsn - first) as usize)
            .filter(|e| e.0 == lsn)
            .map(|e| e.1)
    }

    /// The log does not hold every write from lsn 1 (it starts at a base
    /// record, or was trimmed).
    fn starts_with_base(&self) -> bool {
        self.based || self.index.front().is_some_and(|e| e.0 != 1)
    }

    /// Appends `records` (consecutive after the last) and waits until they
    /// are durable under the fsync policy.
    pub fn append(&mut self, records: &[pb::LogRecord]) -> Result<()> {
        let (mut last, _) = self.last();
        let mut bytes = Vec::with_capacity(records.len());
        for r in records {
            if r.lsn != last + 1 {
                return Err(OplogError::OutOfOrder { last, got: r.lsn });
            }
            last = r.lsn;
            bytes.push(r.encode_to_vec());
        }
        let batch: Vec<(u8, &[u8])> = bytes.iter().map(|b| (KIND_RECORD, b.as_slice())).collect();
        let first_local = self.wal.last_lsn().0 + 1;
        self.wal.enqueue(&batch)?.wait()?;
        for (i, r) in records.iter().enumerate() {
            self.index
                .push_back((r.lsn, r.term, first_local + i as u64));
        }
        self.trim()?;
        Ok(())
    }

    /// Restarts the log at `(lsn, term)` (after a snapshot install).
    pub fn reset(&mut self, lsn: u64, term: u64) -> Result<()> {
        let base = pb::LogRecord {
            lsn,
            term,
            op: None,
        };
        let local = self.wal.append(KIND_BASE, &base.encode_to_vec())?;
        self.wal.sync()?;
        self.index.clear();
        self.index.push_back((lsn, term, local.0));
        self.based = true;
        self.wal.truncate_before(local)?;
        Ok(())
    }

    /// Up to `max_bytes` (at least one) of the records after `lsn`, if they are all kept.
    pub fn read_after(&self, lsn: u64, max_bytes: usize) -> Result<Option<Vec<pb::LogRecord>>> {
        let Some(&(first, _, _)) = self.index.front() else {
            return Ok(Some(Vec::new()));
        };
        let (last, _) = self.last();
        if lsn >= last {
            return Ok(Some(Vec::new()));
        }
        let from = lsn + 1;
        // The base record itself is never sent: it only marks where the log starts.
        if from < first || (from == first && self.starts_with_base()) {
            return Ok(None);
        }
        let local = self.index[(from - first) as usize].2;
        let mut out = Vec::new();
        let mut size = 0;
        for r in self.wal.replay(Lsn(local))? {
            let r = r?;
            if r.kind != KIND_RECORD {
                continue;
            }
            size += r.payload.len();
            out.push(decode(r.lsn.0, &r.payload)?);
            if size >= max_bytes {
                break;
            }
        }
        Ok(Some(out))
    }

    /// Drops the oldest records beyond [`RETAIN_RECORDS`] (whole WAL segments).
    fn trim(&mut self) -> Result<()> {
        if self.index.len() <= RETAIN_RECORDS + RETAIN_RECORDS / 4 {
            return Ok(());
        }
        let drop = self.index.len() - RETAIN_RECORDS;
        let keep_local = self.index[drop].2;
        self.wal.truncate_before(Lsn(keep_local))?;
        self.index.drain(..drop);
        self.based = false;
        Ok(())
    }

    /// Makes every record durable.
    pub fn sync(&self) -> Result<()> {
        Ok(self.wal.sync()?)
    }
}

fn decode(local: u64, bytes: &[u8]) -> Result<pb::LogRecord> {
    pb::LogRecord::decode(bytes).map_err(|e| OplogError::Corrupt {
        lsn: local,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(lsn: u64, term: u64) -> pb::LogRecord {
        pb::LogRecord {
            lsn,
            term,
            op: Some(pb::Op {
                op: Some(pb::op::Op::Delete(crate::server::pb::DeleteRequest {
                    ids: vec![lsn],
                    ..Default::default()
                })),
            }),
        }
    }

    #[test]
    fn append_read_reopen_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Oplog::open(dir.path(), Fsync::Always).unwrap();
        assert_eq!(log.last(), (0, 0));
        assert_eq!(log.term_at(0), Some(0));
        log.append(&[rec(1, 1), rec(2, 1)]).unwrap();
        log.append(&[rec(3, 2)]).unwrap();
        assert!(matches!(
            log.append(&[rec(5, 2)]),
            Err(OplogError::OutOfOrder { last: 3, got: 5 })
        ));
        assert_eq!(log.last(), (3, 2));
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.term_at(3), Some(2));
        assert_eq!(log.term_at(4), None);
        let after1 = log.read_after(1, 1 << 20).unwrap().unwrap();
        assert_eq!(after1, vec![rec(2, 1), rec(3, 2)]);
        assert_eq!(log.read_after(0, 1).unwrap().unwrap(), vec![rec(1, 1)]);
        drop(log);

        let mut log = Oplog::open(dir.path(), Fsync::Always).unwrap();
        assert_eq!(log.last(), (3, 2));
        log.reset(10, 4).unwrap();
        assert_eq!(log.last(), (10, 4));
        assert_eq!(log.term_at(10), Some(4));
        assert_eq!(log.term_at(0), None);
        assert_eq!(log.read_after(3, 1 << 20).unwrap(), None);
        assert_eq!(log.read_after(10, 1 << 20).unwrap().unwrap(), vec![]);
        log.append(&[rec(11, 4)]).unwrap();
        drop(log);
        let log = Oplog::open(dir.path(), Fsync::Always).unwrap();
        assert_eq!(log.last(), (11, 4));
        assert_eq!(
            log.read_after(10, 1 << 20).unwrap().unwrap(),
            vec![rec(11, 4)]
        );
        assert_eq!(log.read_after(9, 1 << 20).unwrap(), None);
    }
}
