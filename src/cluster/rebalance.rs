//! Moving replicas, run by each shard's leader (so a shard changes shape
//! only where its log is, one change at a time):
//!
//! 1. **Add a learner** when the shard has a replica whose node has been
//!    gone for [`REPLACE_AFTER`], has fewer replicas than its
//!    `replication_factor`, or when a live node holds at least two fewer
//!    copies than the busiest node holding this shard. The learner is the
//!    least loaded live node without a copy of the shard. Learners get a
//!    catch-up (log or snapshot) and every write, but neither vote nor
//!    count for write consistency.
//! 2. **Promote it** once the leader sees it in sync: one compare-and-swap
//!    of the catalog entry makes it a replica and drops the replicas it
//!    replaces (gone ones first, then the busiest, never the leader). The
//!    dropped node deletes its copy when it sees the new map.
//!
//! So the shard map changes only after the new replica has caught up.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;

use super::etcd;
use super::node::Node;
use super::replica::Replica;

/// A replica's node must be gone this long before it is replaced.
pub const REPLACE_AFTER: Duration = Duration::from_secs(10);

/// One rebalancing step for a shard this node leads.
pub async fn tick(node: &Arc<Node>, r: &Arc<Replica>) -> Result<(), String> {
    let view = node.view();
    let Some(item) = view.collections.get(&r.collection) else {
        return Ok(());
    };
    let shard = r.shard as usize;
    let replicas = item.replicas(r.shard).to_vec();
    let learners = item.learners(r.shard).to_vec();
    let rf = item
        .entry
        .create
        .as_ref()
        .and_then(|c| c.replication_factor)
        .unwrap_or(1) as usize;
    let load = view.load();
    let mut entry = item.entry.clone();
    let Some(slot) = entry.shards.get_mut(shard) else {
        return Ok(());
    };
    // Every copy holder out of sync gets a catch-up (one that stopped on an
    // error is restarted); nodes no longer holding a copy are forgotten.
    let holders = item.holders(r.shard);
    let restart: Vec<String> = {
        let mut followers = r.followers.lock();
        followers.retain(|n, f| holders.contains(n) || f.catching_up);
        holders
            .iter()
            .filter(|n| **n != node.id)
            .filter(|n| {
                followers
                    .get(*n)
                    .is_none_or(|f| !f.in_sync && !f.catching_up)
            })
            .cloned()
            .collect()
    };
    for follower in restart {
        super::leader::spawn_catch_up(node.clone(), r.clone(), follower);
    }
    if let Some(learner) = learners.first() {
        let in_sync = r.followers.lock().get(learner).is_some_and(|f| f.in_sync);
        if !in_sync {
            return Ok(());
        }
        // Promote: the learner replaces gone replicas first, then the busiest.
        let mut nodes: Vec<String> = replicas
            .iter()
            .filter(|n| node.down_for(n) < REPLACE_AFTER)
            .cloned()
            .collect();
        nodes.push(learner.clone());
        while nodes.len() > rf {
            let Some(busiest) = nodes
                .iter()
                .filter(|n| **n != node.id && *n != learner)
                .max_by_key(|n| (load.get(*n).copied().unwrap_or(0), (*n).clone()))
                .cloned()
            else {
                break;
            };
            nodes.retain(|n| *n != busiest);
        }
        slot.nodes = nodes;
        slot.learners.retain(|n| n != learner);
        tracing::info!(collection = %r.collection, shard, learner = %learner, replicas = ?slot.nodes, "promoting a caught-up learner");
    } else {
        let gone = replicas.iter().any(|n| node.down_for(n) >= REPLACE_AFTER);
        let spare = view
            .nodes
            .keys()
            .filter(|n| !holders.contains(n))
            .min_by_key(|n| (load.get(*n).copied().unwrap_or(0), (*n).clone()))
            .cloned();
        let Some(spare) = spare else { return Ok(()) };
        let spare_load = load.get(&spare).copied().unwrap_or(0);
        let busiest = replicas
            .iter()
            .filter(|n| **n != node.id)
            .map(|n| load.get(n).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        let uneven = busiest >= spare_load + 2;
        if !(gone || replicas.len() < rf || uneven) {
            return Ok(());
        }
        slot.learners.push(spare.clone());
        tracing::info!(collection = %r.collection, shard, learner = %spare, gone, uneven, "adding a learner");
    }
    let key = node.keys.collection(&r.collection);
    let txn = etcd::pb::TxnRequest {
        compare: vec![etcd::modified_at(&key, item.revision)],
        success: vec![etcd::put_op(&key, entry.encode_to_vec(), 0)],
        failure: vec![],
    };
    node.etcd.txn(txn).await.map_err(|e| e.to_string())?;
    node.poke();
    Ok(())
}
