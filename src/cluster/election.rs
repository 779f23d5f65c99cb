//! Leader election of shards, through etcd. Every few hundred milliseconds
//! each node looks at each of its replicas:
//!
//! - a shard whose leader key exists follows that leader (and a node that
//!   led it under an older term stops);
//! - a shard without a leader (its leader's lease expired, or it is new) is
//!   claimed by the live replica with the most recent log, `(last term,
//!   last lsn)`, ties to the replica placed first: each candidate asks the other
//!   live replicas for their positions and claims only if none is ahead,
//!   with a transaction that succeeds only if the leader key is still
//!   absent and the term key unchanged, so two nodes never lead one term.
//!   The claim writes term + 1 and the leader key under the claimant's
//!   lease;
//! - a leader whose lease was not renewed in time stops leading before
//!   etcd could expire it (see `Node::fresh_lease`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;

use super::etcd;
use super::node::Node;
use super::pb;
use super::replica::{Follower, Replica};

const TICK: Duration = Duration::from_millis(300);
const POSITION_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs the election loop of a node forever.
pub async fn run(node: Arc<Node>) {
    loop {
        tokio::time::sleep(TICK).await;
        let lease = node.fresh_lease();
        for r in node.replica_list() {
            if lease.is_none() && r.leads().is_some() {
                tracing::warn!(collection = %r.collection, shard = r.shard, "lease not renewed in time: stepping down");
                r.leading.store(0, Ordering::Release);
            }
            if let Err(e) = tick(&node, &r, lease).await {
                tracing::debug!(collection = %r.collection, shard = r.shard, error = %e, "election");
            }
            if r.leads().is_some() {
                if let Err(e) = super::rebalance::tick(&node, &r).await {
                    tracing::debug!(collection = %r.collection, shard = r.shard, error = %e, "rebalance");
                }
            }
        }
    }
}

async fn tick(node: &Arc<Node>, r: &Arc<Replica>, lease: Option<i64>) -> Result<(), String> {
    let view = node.view();
    if let Some(l) = view.leader(&r.collection, r.shard) {
        if l.node != node.id {
            r.observe_term(l.term);
            return Ok(());
        }
        // This node's key under its current lease: it stepped down when a
        // renewal came late, and the lease held after all. No other node
        // can have led since (a claim needs the key absent): lead again.
        let key_lease = view
            .leader_leases
            .get(&(r.collection.clone(), r.shard))
            .copied();
        if r.leads().is_none()
            && lease.is_some()
            && key_lease == lease
            && r.term.load(Ordering::Acquire) <= l.term
        {
            let holders = view
                .collections
                .get(&r.collection)
                .map(|c| c.holders(r.shard))
                .unwrap_or_default();
            become_leader(node, r, l.term, holders);
        }
        return Ok(());
    }
    let Some(lease) = lease else { return Ok(()) };
    let Some(item) = view.collections.get(&r.collection) else {
        return Ok(());
    };
    let replicas = item.replicas(r.shard).to_vec();
    // The live replica with the most recent log claims.
    // Ties go to the replica placed first, so leaders spread over the nodes.
    let rank =
        |n: &str| std::cmp::Reverse(replicas.iter().position(|x| x == n).unwrap_or(usize::MAX));
    let mine = r.position();
    let mut best = (
        mine.last_term,
        mine.last_lsn,
        rank(&node.id),
        node.id.clone(),
    );
    for other in replicas.iter().filter(|n| **n != node.id) {
        let Some(addr) = view.nodes.get(other) else {
            continue;
        };
        if let Ok(p) = node
            .peers
            .position(addr, &r.collection, r.shard, POSITION_TIMEOUT)
            .await
        {
            let theirs = (p.last_term, p.last_lsn, rank(other), other.clone());
            if theirs > best {
                best = theirs;
            }
            r.observe_term(p.term);
        }
    }
    if best.3 != node.id {
        return Ok(());
    }
    let (term, revision) = view.term(&r.collection, r.shard);
    let new_term = term.max(r.term.load(Ordering::Acquire)) + 1;
    let leader_key = node.keys.leader(&r.collection, r.shard);
    let term_key = node.keys.term(&r.collection, r.shard);
    let record = pb::LeaderRecord {
        node: node.id.clone(),
        term: new_term,
        address: node.advertise.clone(),
    };
    let txn = etcd::pb::TxnRequest {
        compare: vec![
            etcd::created_at(&leader_key, 0),
            if revision == 0 {
                etcd::created_at(&term_key, 0)
            } else {
                etcd::modified_at(&term_key, revision)
            },
            // The collection still places this shard as read.
            etcd::modified_at(&node.keys.collection(&r.collection), item.revision),
        ],
        success: vec![
            etcd::put_op(&term_key, new_term.to_string().into_bytes(), 0),
            etcd::put_op(&leader_key, record.encode_to_vec(), lease),
        ],
        failure: vec![],
    };
    if !node.etcd.txn(txn).await.map_err(|e| e.to_string())? {
        node.poke();
        return Ok(());
    }
    become_leader(node, r, new_term, item.holders(r.shard));
    node.poke();
    Ok(())
}

/// Starts leading `r` in `term`: every follower is out of sync until a
/// catch-up brings it back.
fn become_leader(node: &Arc<Node>, r: &Arc<Replica>, term: u64, replicas: Vec<String>) {
    r.observe_term(term);
    {
        let mut f = r.followers.lock();
        f.clear();
        for other in replicas.iter().filter(|n| **n != node.id) {
            f.insert(other.clone(), Follower::default());
        }
    }
    r.leading.store(term, Ordering::Release);
    tracing::info!(collection = %r.collection, shard = r.shard, term, lsn = r.position().last_lsn, "leading shard");
    for other in replicas.into_iter().filter(|n| *n != node.id) {
        super::leader::spawn_catch_up(node.clone(), r.clone(), other);
    }
}
