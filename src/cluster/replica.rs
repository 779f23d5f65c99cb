//! One shard replica on this node: a local collection (named
//! `<collection>-s<shard>` in the node's replica registry, with everything
//! a collection has: WAL, both tiers, payload indexes) plus its replication
//! log (`oplog.rs`) and the highest term it has seen.
//!
//! The write order on every replica is: record durable in the replication
//! log, then applied to the collection. Writes of a shard are serialised
//! (`write`), so after a crash at most the last logged record may be
//! missing from the collection: opening re-applies it (upserts and deletes
//! are idempotent when repeated in order).
//!
//! # Lock order
//!
//! `write` (async, held across a whole write, append or snapshot install)
//! before `log`; `followers` is a leaf.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tonic::{Code, Request, Status};

use super::oplog::Oplog;
use super::pb;
use crate::server::pb::points_server::Points as _;
use crate::server::PointsService;

/// The name of a shard replica in the node's replica registry.
pub fn local_name(collection: &str, shard: u32) -> String {
    format!("{collection}-s{shard}")
}

/// The (collection, shard) a replica registry name stands for.
pub fn parse_local_name(name: &str) -> Option<(String, u32)> {
    let (c, s) = name.rsplit_once("-s")?;
    Some((c.to_string(), s.parse().ok()?))
}

/// What a leader knows of one follower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Follower {
    /// Last LSN the follower acknowledged.
    pub matched: u64,
    /// Writes are sent to it inline; otherwise a catch-up task is bringing it up to date.
    pub in_sync: bool,
    /// A catch-up task is running.
    pub catching_up: bool,
}

/// A shard replica.
#[derive(Debug)]
pub struct Replica {
    pub collection: String,
    pub shard: u32,
    pub local: String,
    pub log: Mutex<Oplog>,
    /// Highest term seen (fencing: appends of older terms are refused).
    pub term: AtomicU64,
    /// The term this node leads the shard in; 0 when it does not lead.
    pub leading: AtomicU64,
    /// One writer of the log at a time.
    pub write: tokio::sync::Mutex<()>,
    pub followers: Mutex<BTreeMap<String, Follower>>,
}

/// Errors of applying a logged write that every replica meets alike (the
/// write is invalid for the collection): the record stays in the log and
/// is a no-op everywhere.
pub fn deterministic(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::OutOfRange
    )
}

impl Replica {
    pub fn new(collection: &str, shard: u32, log: Oplog) -> Arc<Replica> {
        let (_, last_term) = log.last();
        Arc::new(Replica {
            collection: collection.to_string(),
            shard,
            local: local_name(collection, shard),
            log: Mutex::new(log),
            term: AtomicU64::new(last_term),
            leading: AtomicU64::new(0),
            write: tokio::sync::Mutex::new(()),
            followers: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn position(&self) -> pb::PositionResponse {
        let (last_lsn, last_term) = self.log.lock().last();
        pb::PositionResponse {
            term: self.term.load(Ordering::Acquire),
            last_lsn,
            last_term,
        }
    }

    /// Raises the highest term seen to `term`.
    pub fn observe_term(&self, term: u64) {
        self.term.fetch_max(term, Ordering::AcqRel);
        if self.leading.load(Ordering::Acquire) < term {
            // A newer term exists: whatever this node led, it leads no more.
            self.leading.store(0, Ordering::Release);
        }
    }

    pub fn leads(&self) -> Option<u64> {
        match self.leading.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// Applies one logged write to the collection; returns the points
    /// upserted or deleted.
    pub async fn apply(&self, points: &PointsService, op: &pb::Op) -> Result<u64, Status> {
        match &op.op {
            Some(pb::op::Op::Upsert(u)) => {
                let mut u = u.clone();
                u.collection = self.local.clone();
                Ok(points.upsert(Request::new(u)).await?.into_inner().upserted)
            }
            Some(pb::op::Op::Delete(d)) => {
                let mut d = d.clone();
                d.collection = self.local.clone();
                Ok(points.delete(Request::new(d)).await?.into_inner().deleted)
            }
            None => Ok(0),
        }
    }

    /// Logs and applies `records` (a follower's append or a catch-up
    /// batch); the caller holds `write` and has checked they follow the log.
    pub async fn log_and_apply(
        self: &Arc<Self>,
        points: &PointsService,
        records: Vec<pb::LogRecord>,
    ) -> Result<(), Status> {
        if records.is_empty() {
            return Ok(());
        }
        let me = self.clone();
        let logged = records.clone();
        tokio::task::spawn_blocking(move || me.log.lock().append(&logged))
            .await
            .map_err(|e| Status::internal(format!("replication log task: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))?;
        for r in &records {
            if let Some(op) = &r.op {
                if let Err(s) = self.apply(points, op).await {
                    if !deterministic(&s) {
                        return Err(s);
                    }
                    tracing::debug!(collection = %self.collection, shard = self.shard, lsn = r.lsn, error = %s, "logged write refused alike on every replica");
                }
            }
        }
        Ok(())
    }

    /// A follower's side of `Append`.
    pub async fn append(
        self: &Arc<Self>,
        points: &PointsService,
        req: pb::AppendRequest,
    ) -> Result<pb::AppendResponse, Status> {
        let _w = self.write.lock().await;
        let current = self.term.load(Ordering::Acquire);
        let refuse = |me: &Replica| {
            let p = me.position();
            pb::AppendResponse {
                ok: false,
                term: p.term,
                last_lsn: p.last_lsn,
                last_term: p.last_term,
            }
        };
        if req.term < current {
            return Ok(refuse(self));
        }
        self.observe_term(req.term);
        let (last_lsn, last_term) = self.log.lock().last();
        if (req.prev_lsn, req.prev_term) != (last_lsn, last_term) {
            return Ok(refuse(self));
        }
        self.log_and_apply(points, req.records).await?;
        let p = self.position();
        Ok(pb::AppendResponse {
            ok: true,
            term: p.term,
            last_lsn: p.last_lsn,
            last_term: p.last_term,
        })
    }

    /// Re-applies the last logged record (opening after a crash: it may
    /// have been logged but not applied).
    pub async fn recover(&self, points: &PointsService) -> Result<(), Status> {
        let last = {
            let log = self.log.lock();
            let (lsn, _) = log.last();
            if lsn == 0 {
                return Ok(());
            }
            log.read_after(lsn - 1, 1)
                .map_err(|e| Status::internal(e.to_string()))?
        };
        for r in last.into_iter().flatten() {
            if let Some(op) = &r.op {
                if let Err(s) = self.apply(points, op).await {
                    if !deterministic(&s) {
                        return Err(s);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_parse_back() {
        assert_eq!(local_name("docs", 3), "docs-s3");
        assert_eq!(parse_local_name("docs-s3"), Some(("docs".into(), 3)));
        assert_eq!(parse_local_name("my-s1-s0"), Some(("my-s1".into(), 0)));
        assert_eq!(parse_local_name("docs"), None);
        assert_eq!(parse_local_name("docs-sx"), None);
    }
}
