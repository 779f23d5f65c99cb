//! Routing a request of a logical collection to its shards: a write goes to
//! the shard's leader (retried while a failover runs), a read to the leader
//! or to any live replica (this node's own first), and several shards are
//! asked at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Code, Status};

use super::node::Node;
use super::pb;
use super::view::CatalogItem;
use crate::server::pb::{ReadConsistency, WriteConsistency};

/// How long a request waits for a shard to get a (new) leader.
pub const FAILOVER_WAIT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF: Duration = Duration::from_millis(150);

/// Routes requests of logical collections (cheap to clone).
#[derive(Debug, Clone)]
pub struct Router {
    pub node: Arc<Node>,
}

/// Failures worth trying again elsewhere or after a failover.
fn transient(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::NotFound
    ) || (s.code() == Code::FailedPrecondition && s.message().starts_with("not the leader"))
}

/// Awaits every future concurrently; outputs in input order.
pub async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> =
        futs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

impl Router {
    /// The catalog entry of `name`, or NOT_FOUND naming it.
    pub fn item(&self, name: &str) -> Result<CatalogItem, Status> {
        crate::server::data_dir::validate_name("collection", name)?;
        self.node
            .view()
            .collections
            .get(name)
            .cloned()
            .filter(|item| item.shards() > 0)
            .ok_or_else(|| Status::not_found(format!("collection {name:?} does not exist")))
    }

    /// Sends one write to the shard's leader; waits out a failover.
    pub async fn write(
        &self,
        collection: &str,
        shard: u32,
        op: pb::Op,
        consistency: WriteConsistency,
    ) -> Result<pb::ShardWriteResponse, Status> {
        let deadline = Instant::now() + FAILOVER_WAIT;
        let mut last =
            Status::unavailable(format!("shard {shard} of {collection:?} has no leader"));
        while Instant::now() < deadline {
            let view = self.node.view();
            let Some(leader) = view.leader(collection, shard).cloned() else {
                self.node.poke();
                tokio::time::sleep(BACKOFF).await;
                continue;
            };
            let result = if leader.node == self.node.id {
                match self.node.replica(collection, shard) {
                    Some(r) => super::leader::write(&self.node, &r, op.clone(), consistency)
                        .await
                        .map(|(lsn, count)| pb::ShardWriteResponse { lsn, count }),
                    None => Err(Status::unavailable("replica not open yet")),
                }
            } else {
                let req = pb::ShardWrite {
                    shard: Some(pb::ShardRef {
                        collection: collection.to_string(),
                        shard,
                    }),
                    op: Some(op.clone()),
                    consistency: consistency as i32,
                };
                match self.node.peers.client(&leader.address) {
                    Ok(mut c) => c
                        .write(self.node.peers.request(req, WRITE_TIMEOUT))
                        .await
                        .map(|r| r.into_inner()),
                    Err(s) => Err(s),
                }
            };
            match result {
                Ok(r) => return Ok(r),
                // A write the leader logged but too few replicas hold is
                // not retried: the caller learns its fate is unknown.
                Err(s) if transient(&s) && !s.message().contains("logged at lsn") => {
                    last = s;
                    self.node.poke();
                    tokio::time::sleep(BACKOFF).await;
                }
                Err(s) => return Err(s),
            }
        }
        Err(Status::unavailable(format!(
            "shard {shard} of {collection:?}: no leader took the write within {FAILOVER_WAIT:?} (last: {})",
            last.message()
        )))
    }

    /// Runs a read on one replica of the shard.
    pub async fn read(
        &self,
        collection: &str,
        shard: u32,
        read: pb::shard_read::Read,
        consistency: ReadConsistency,
    ) -> Result<pb::ShardReadResponse, Status> {
        let deadline = Instant::now() + FAILOVER_WAIT;
        let mut last = Status::unavailable("no replica tried");
        let mut round = 0usize;
        while Instant::now() < deadline {
            let view = self.node.view();
            let targets: Vec<(String, String)> = match consistency {
                ReadConsistency::Any => {
                    let mut t: Vec<(String, String)> = view
                        .collections
                        .get(collection)
                        .map(|c| c.replicas(shard).to_vec())
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|n| view.nodes.get(&n).map(|a| (n.clone(), a.clone())))
                        .collect();
                    // This node first, then the others in turn.
                    t.sort_by_key(|(n, _)| *n != self.node.id);
                    if t.len() > 1 {
                        let k = 1 + round % (t.len() - 1);
                        t[1..].rotate_left(k - 1);
                    }
                    t
                }
                _ => view
                    .leader(collection, shard)
                    .map(|l| vec![(l.node.clone(), l.address.clone())])
                    .unwrap_or_default(),
            };
            round += 1;
            for (node, addr) in targets {
                let result = if node == self.node.id {
                    match self.node.replica(collection, shard) {
                        Some(r) => {
                            super::internal::local_read(&self.node, &r, Some(read.clone())).await
                        }
                        None => Err(Status::unavailable("replica not open yet")),
                    }
                } else {
                    let req = pb::ShardRead {
                        shard: Some(pb::ShardRef {
                            collection: collection.to_string(),
                            shard,
                        }),
                        read: Some(read.clone()),
                    };
                    match self.node.peers.client(&addr) {
                        Ok(mut c) => c
                            .read(self.node.peers.request(req, READ_TIMEOUT))
                            .await
                            .map(|r| r.into_inner()),
                        Err(s) => Err(s),
                    }
                };
                match result {
                    Ok(r) => return Ok(r),
                    Err(s) if transient(&s) => last = s,
                    Err(s) => return Err(s),
                }
            }
            self.node.poke();
            tokio::time::sleep(BACKOFF).await;
        }
        Err(Status::unavailable(format!(
            "shard {shard} of {collection:?}: no replica answered within {FAILOVER_WAIT:?} (last: {})",
            last.message()
        )))
    }

    /// Runs `read` (built per shard) on every shard at once. A shard that
    /// fails makes the whole call fail, unless `allow_partial`: then its
    /// number is listed in the second result.
    pub async fn read_all(
        &self,
        item: &CatalogItem,
        collection: &str,
        consistency: ReadConsistency,
        allow_partial: bool,
        read: impl Fn(u32) -> Option<pb::shard_read::Read>,
    ) -> Result<(Vec<(u32, pb::shard_read_response::Read)>, Vec<u32>), Status> {
        let calls = (0..item.shards())
            .filter_map(|s| read(s).map(|r| (s, r)))
            .map(|(s, r)| async move { (s, self.read(collection, s, r, consistency).await) });
        let mut ok = Vec::new();
        let mut missing = Vec::new();
        for (s, result) in join_all(calls).await {
            match result {
                Ok(pb::ShardReadResponse { read: Some(r) }) => ok.push((s, r)),
                Ok(_) => return Err(Status::internal(format!("shard {s}: empty response"))),
                Err(e) if allow_partial && e.code() == Code::Unavailable => missing.push(s),
                Err(e) => return Err(e),
            }
        }
        Ok((ok, missing))
    }
}

/// The consistency a request asked for (unknown values: the default).
pub fn read_consistency(v: i32) -> ReadConsistency {
    ReadConsistency::try_from(v).unwrap_or(ReadConsistency::Leader)
}

/// A request's write consistency, else the collection's.
pub fn write_consistency(v: i32, item: &CatalogItem) -> Result<WriteConsistency, Status> {
    let parse = |v: i32, field: &str| {
        WriteConsistency::try_from(v)
            .map_err(|_| crate::server::status::invalid(field, format!("unknown value {v}")))
    };
    match parse(v, "write_consistency")? {
        WriteConsistency::Unspecified => {
            let c = item
                .entry
                .create
                .as_ref()
                .map_or(0, |c| c.write_consistency);
            Ok(match parse(c, "write_consistency")? {
                WriteConsistency::Unspecified => WriteConsistency::Majority,
                other => other,
            })
        }
        other => Ok(other),
    }
}
