//! A shard leader's side of replication.
//!
//! **Writes** ([`write`]): under the replica's write lock, the leader
//! assigns the next LSN, logs the record durably, applies it, and sends it
//! to every follower that is in sync, in parallel; the write is
//! acknowledged once `write_consistency` replicas (the leader included)
//! hold it durably. A follower that misses a record (down, slow, refused)
//! leaves the in-sync set, and a **catch-up task** ([`spawn_catch_up`])
//! brings it back: it streams the log from the follower's position when
//! the leader still holds the record there with the same term (log
//! matching), and otherwise sends a snapshot of the shard's points
//! followed by the log. The follower rejoins the in-sync set under the
//! write lock, when nothing is in flight.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Status};

use super::node::Node;
use super::pb;
use super::replica::{deterministic, Replica};
use crate::server::pb as api;
use crate::server::pb::points_server::Points as _;
use crate::server::pb::WriteConsistency;

/// How long a follower may take to acknowledge one write.
const APPEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest batch of log records a catch-up sends at once.
const CATCH_UP_BYTES: usize = 8 << 20;
/// Points per snapshot chunk.
const SNAPSHOT_CHUNK: u32 = 1_000;
const RETRY: Duration = Duration::from_millis(300);

/// Replicas that must hold a write for `consistency` out of `replicas`.
pub fn needed(consistency: WriteConsistency, replicas: usize) -> usize {
    match consistency {
        WriteConsistency::One => 1,
        WriteConsistency::All => replicas,
        WriteConsistency::Majority | WriteConsistency::Unspecified => replicas / 2 + 1,
    }
}

/// Logs, replicates and applies one write on the shard this node leads.
/// Returns the record's LSN and the points it upserted or deleted.
pub async fn write(
    node: &Arc<Node>,
    r: &Arc<Replica>,
    op: pb::Op,
    consistency: WriteConsistency,
) -> Result<(u64, u64), Status> {
    let _w = r.write.lock().await;
    let Some(term) = r.leads() else {
        return Err(not_leader(r));
    };
    if node.fresh_lease().is_none() {
        return Err(not_leader(r));
    }
    let view = node.view();
    let (replicas, holders) = view
        .collections
        .get(&r.collection)
        .map(|c| (c.replicas(r.shard).to_vec(), c.holders(r.shard)))
        .unwrap_or_default();
    let need = needed(consistency, replicas.len().max(1));
    let (prev_lsn, prev_term) = r.log.lock().last();
    let record = pb::LogRecord {
        lsn: prev_lsn + 1,
        term,
        op: Some(op.clone()),
    };
    let me = r.clone();
    let logged = record.clone();
    tokio::task::spawn_blocking(move || me.log.lock().append(std::slice::from_ref(&logged)))
        .await
        .map_err(|e| Status::internal(format!("replication log task: {e}")))?
        .map_err(|e| Status::internal(e.to_string()))?;
    let applied = r.apply(&node.points, &op).await;
    if let Err(s) = &applied {
        if !deterministic(s) {
            // Logged but not applied here: stop leading rather than serve
            // state that lacks a logged write (a new leader takes over).
            r.leading.store(0, Ordering::Release);
            return Err(s.clone());
        }
    }
    // Replicate to the in-sync followers in parallel.
    let in_sync: Vec<String> = r
        .followers
        .lock()
        .iter()
        .filter(|(n, f)| f.in_sync && holders.contains(n))
        .map(|(n, _)| n.clone())
        .collect();
    let append = pb::AppendRequest {
        shard: Some(shard_ref(r)),
        term,
        leader: node.id.clone(),
        prev_lsn,
        prev_term,
        records: vec![record],
    };
    let sends = in_sync.iter().map(|follower| {
        let addr = view.nodes.get(follower).cloned();
        let req = append.clone();
        async move {
            let Some(addr) = addr else {
                return Err(Status::unavailable("node is down"));
            };
            let req = node.peers.request(req, APPEND_TIMEOUT);
            Ok(node.peers.client(&addr)?.append(req).await?.into_inner())
        }
    });
    let results = super::route::join_all(sends).await;
    let mut acks = 1;
    for (follower, result) in in_sync.iter().zip(results) {
        match result {
            Ok(resp) if resp.ok => {
                // Learners get every write but do not count for consistency.
                if replicas.contains(follower) {
                    acks += 1;
                }
                if let Some(f) = r.followers.lock().get_mut(follower) {
                    f.matched = resp.last_lsn;
                }
            }
            other => {
                if let Ok(resp) = &other {
                    if resp.term > term {
                        r.observe_term(resp.term);
                    }
                }
                tracing::info!(collection = %r.collection, shard = r.shard, follower = %follower, "follower fell behind: catching it up");
                if let Some(f) = r.followers.lock().get_mut(follower) {
                    f.in_sync = false;
                }
                spawn_catch_up(node.clone(), r.clone(), follower.clone());
            }
        }
    }
    let count = applied?;
    if acks < need {
        return Err(Status::unavailable(format!(
            "shard {} of {:?}: the write is logged at lsn {} but only {acks} of the {need} replicas \
             that write consistency needs hold it; its fate is unknown until they catch up",
            r.shard,
            r.collection,
            prev_lsn + 1
        )));
    }
    Ok((prev_lsn + 1, count))
}

fn shard_ref(r: &Replica) -> pb::ShardRef {
    pb::ShardRef {
        collection: r.collection.clone(),
        shard: r.shard,
    }
}

/// The status a node that does not lead a shard answers writes with.
pub fn not_leader(r: &Replica) -> Status {
    Status::failed_precondition(format!(
        "not the leader of shard {} of {:?} (term {})",
        r.shard,
        r.collection,
        r.term.load(Ordering::Acquire)
    ))
}

/// Starts bringing `follower` up to date, unless a catch-up of it runs.
pub fn spawn_catch_up(node: Arc<Node>, r: Arc<Replica>, follower: String) {
    {
        let mut f = r.followers.lock();
        let state = f.entry(follower.clone()).or_default();
        if state.catching_up {
            return;
        }
        state.catching_up = true;
        state.in_sync = false;
    }
    tokio::spawn(async move {
        let term = r.leads();
        let result = match term {
            Some(term) => catch_up(&node, &r, &follower, term).await,
            None => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(collection = %r.collection, shard = r.shard, follower = %follower, error = %e, "catch-up stopped");
        }
        if let Some(f) = r.followers.lock().get_mut(&follower) {
            f.catching_up = false;
        }
    });
}

async fn catch_up(
    node: &Arc<Node>,
    r: &Arc<Replica>,
    follower: &str,
    term: u64,
) -> Result<(), Status> {
    loop {
        if r.leads() != Some(term) {
            return Ok(());
        }
        let view = node.view();
        let placed = view
            .collections
            .get(&r.collection)
            .is_some_and(|c| c.holders(r.shard).iter().any(|n| n == follower));
        if !placed {
            return Ok(());
        }
        let Some(addr) = view.nodes.get(follower).cloned() else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        match step(node, r, follower, &addr, term).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(s) => {
                tracing::debug!(follower, error = %s, "catch-up step");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// One round of catch-up; true once the follower is back in sync.
async fn step(
    node: &Arc<Node>,
    r: &Arc<Replica>,
    follower: &str,
    addr: &str,
    term: u64,
) -> Result<bool, Status> {
    let pos = node
        .peers
        .position(addr, &r.collection, r.shard, APPEND_TIMEOUT)
        .await?;
    if pos.term > term {
        r.observe_term(pos.term);
        return Ok(false);
    }
    let (last, matches) = {
        let log = r.log.lock();
        let (last, _) = log.last();
        (
            last,
            pos.last_lsn <= last && log.term_at(pos.last_lsn) == Some(pos.last_term),
        )
    };
    if !matches {
        send_snapshot(node, r, addr, term).await?;
        return Ok(false);
    }
    let Some(records) = read_log(r, pos.last_lsn).await? else {
        send_snapshot(node, r, addr, term).await?;
        return Ok(false);
    };
    if !records.is_empty() && pos.last_lsn + (records.len() as u64) < last {
        // Far behind: stream without holding up writes.
        append(node, r, addr, term, &pos, records).await?;
        return Ok(false);
    }
    // Close to the end: finish under the write lock, then rejoin.
    let _w = r.write.lock().await;
    if r.leads() != Some(term) {
        return Ok(true);
    }
    let mut pos = pos;
    loop {
        let records = read_log(r, pos.last_lsn)
            .await?
            .ok_or_else(|| Status::internal("log trimmed during catch-up"))?;
        if records.is_empty() {
            break;
        }
        pos = append(node, r, addr, term, &pos, records).await?;
    }
    if let Some(f) = r.followers.lock().get_mut(follower) {
        f.in_sync = true;
        f.matched = pos.last_lsn;
    }
    tracing::info!(collection = %r.collection, shard = r.shard, follower, lsn = pos.last_lsn, "follower in sync");
    Ok(true)
}

/// The log records after `lsn` (up to [`CATCH_UP_BYTES`]), read on the
/// blocking pool: they come from disk.
async fn read_log(r: &Arc<Replica>, lsn: u64) -> Result<Option<Vec<pb::LogRecord>>, Status> {
    let me = r.clone();
    tokio::task::spawn_blocking(move || me.log.lock().read_after(lsn, CATCH_UP_BYTES))
        .await
        .map_err(|e| Status::internal(format!("replication log task: {e}")))?
        .map_err(|e| Status::internal(e.to_string()))
}

async fn append(
    node: &Node,
    r: &Replica,
    addr: &str,
    term: u64,
    pos: &pb::PositionResponse,
    records: Vec<pb::LogRecord>,
) -> Result<pb::PositionResponse, Status> {
    let req = pb::AppendRequest {
        shard: Some(shard_ref(r)),
        term,
        leader: node.id.clone(),
        prev_lsn: pos.last_lsn,
        prev_term: pos.last_term,
        records,
    };
    let resp = node
        .peers
        .client(addr)?
        .append(node.peers.request(req, APPEND_TIMEOUT * 5))
        .await?
        .into_inner();
    if !resp.ok {
        return Err(Status::aborted(format!(
            "follower refused records after lsn {} (it holds {} of term {})",
            pos.last_lsn, resp.last_lsn, resp.last_term
        )));
    }
    Ok(pb::PositionResponse {
        term: resp.term,
        last_lsn: resp.last_lsn,
        last_term: resp.last_term,
    })
}

/// Sends every point of the shard, as of the log's last record, to the
/// follower at `addr` (writes to the shard wait meanwhile).
async fn send_snapshot(
    node: &Arc<Node>,
    r: &Arc<Replica>,
    addr: &str,
    term: u64,
) -> Result<(), Status> {
    let _w = r.write.lock().await;
    if r.leads() != Some(term) {
        return Ok(());
    }
    let (lsn, lsn_term) = r.log.lock().last();
    tracing::info!(collection = %r.collection, shard = r.shard, addr, lsn, "sending a snapshot");
    let header = pb::SnapshotChunk {
        chunk: Some(pb::snapshot_chunk::Chunk::Header(pb::SnapshotHeader {
            shard: Some(shard_ref(r)),
            term,
            leader: node.id.clone(),
            lsn,
            lsn_term,
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::SnapshotChunk>(4);
    let mut client = node.peers.client(addr)?;
    let mut request = node.peers.request(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Duration::from_secs(600),
    );
    request.set_timeout(Duration::from_secs(600));
    let call = tokio::spawn(async move { client.install_snapshot(request).await });
    let _ = tx.send(header).await;
    let mut after = None;
    loop {
        let page = node
            .points
            .scroll(Request::new(api::ScrollRequest {
                collection: r.local.clone(),
                after,
                limit: SNAPSHOT_CHUNK,
                with_payload: true,
                with_vector: true,
                ..Default::default()
            }))
            .await?
            .into_inner();
        let points = page
            .points
            .into_iter()
            .map(|p| api::Point {
                id: p.id,
                vector: p.vector,
                payload: p.payload,
            })
            .collect();
        let chunk = pb::SnapshotChunk {
            chunk: Some(pb::snapshot_chunk::Chunk::Points(api::UpsertRequest {
                points,
                ..Default::default()
            })),
        };
        if tx.send(chunk).await.is_err() {
            break;
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    drop(tx);
    let resp = call
        .await
        .map_err(|e| Status::internal(e.to_string()))??
        .into_inner();
    tracing::info!(collection = %r.collection, shard = r.shard, addr, lsn = resp.last_lsn, "snapshot installed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_needs() {
        assert_eq!(needed(WriteConsistency::One, 3), 1);
        assert_eq!(needed(WriteConsistency::Majority, 3), 2);
        assert_eq!(needed(WriteConsistency::Unspecified, 1), 1);
        assert_eq!(needed(WriteConsistency::Majority, 4), 3);
        assert_eq!(needed(WriteConsistency::All, 3), 3);
    }
}
