//! [`View`]: this node's picture of the cluster, decoded from one read of
//! every key under the cluster's prefix (see `keys.rs`): live nodes, the
//! catalog with each collection's shard map, and each shard's leader and
//! term. Rebuilt whenever etcd reports a change (and every second), and
//! swapped in whole, so a request routes on one consistent picture.
//!
//! Also the two pure functions of placement: which shard holds a point
//! ([`shard_of`]) and which nodes hold a new collection's shards
//! ([`place`]).

use std::collections::BTreeMap;

use prost::Message as _;

use super::etcd::pb::KeyValue;
use super::keys::{Key, Keys};
use super::pb;

/// One collection of the catalog.
#[derive(Clone, Debug)]
pub struct CatalogItem {
    pub entry: pb::CatalogEntry,
    /// The etcd revision of the entry: the shard map's version.
    pub revision: i64,
}

impl CatalogItem {
    pub fn shards(&self) -> u32 {
        self.entry.shards.len() as u32
    }

    /// Replica node ids of `shard` (learners aside).
    pub fn replicas(&self, shard: u32) -> &[String] {
        self.entry
            .shards
            .get(shard as usize)
            .map_or(&[], |s| s.nodes.as_slice())
    }

    /// Learners of `shard`: replicas being added, still catching up.
    pub fn learners(&self, shard: u32) -> &[String] {
        self.entry
            .shards
            .get(shard as usize)
            .map_or(&[], |s| s.learners.as_slice())
    }

    /// Every node holding a copy of `shard`: replicas, then learners.
    pub fn holders(&self, shard: u32) -> Vec<String> {
        let mut all = self.replicas(shard).to_vec();
        all.extend_from_slice(self.learners(shard));
        all
    }
}

/// The cluster as this node last read it.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// etcd revision of the read.
    pub revision: i64,
    /// Live nodes (their lease holds): id → advertised address.
    pub nodes: BTreeMap<String, String>,
    pub collections: BTreeMap<String, CatalogItem>,
    /// (collection, shard) → current leader.
    pub leaders: BTreeMap<(String, u32), pb::LeaderRecord>,
    /// (collection, shard) → the etcd lease the leader key lives under.
    pub leader_leases: BTreeMap<(String, u32), i64>,
    /// (collection, shard) → (last term, etcd mod revision of the term key).
    pub terms: BTreeMap<(String, u32), (u64, i64)>,
}

impl View {
    /// Decodes a range read of the cluster's prefix; undecodable values are
    /// logged and skipped (they cannot come from a node of this version).
    pub fn decode(keys: &Keys, revision: i64, kvs: &[KeyValue]) -> View {
        let mut v = View {
            revision,
            ..View::default()
        };
        for kv in kvs {
            let bad = |what: &str| tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "skipping undecodable {what} in etcd");
            match keys.parse(&kv.key) {
                Some(Key::Node(id)) => match pb::NodeRecord::decode(kv.value.as_slice()) {
                    Ok(n) => {
                        v.nodes.insert(id, n.address);
                    }
                    Err(_) => bad("node record"),
                },
                Some(Key::Collection(name)) => {
                    match pb::CatalogEntry::decode(kv.value.as_slice()) {
                        Ok(entry) => {
                            v.collections.insert(
                                name,
                                CatalogItem {
                                    entry,
                                    revision: kv.mod_revision,
                                },
                            );
                        }
                        Err(_) => bad("catalog entry"),
                    }
                }
                Some(Key::Leader(name, shard)) => {
                    match pb::LeaderRecord::decode(kv.value.as_slice()) {
                        Ok(l) => {
                            v.leader_leases.insert((name.clone(), shard), kv.lease);
                            v.leaders.insert((name, shard), l);
                        }
                        Err(_) => bad("leader record"),
                    }
                }
                Some(Key::Term(name, shard)) => {
                    match std::str::from_utf8(&kv.value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                    {
                        Some(t) => {
                            v.terms.insert((name, shard), (t, kv.mod_revision));
                        }
                        None => bad("term"),
                    }
                }
                None => {}
            }
        }
        v
    }

    /// The leader of a shard, if it has one whose node is live.
    pub fn leader(&self, collection: &str, shard: u32) -> Option<&pb::LeaderRecord> {
        self.leaders
            .get(&(collection.to_string(), shard))
            .filter(|l| self.nodes.contains_key(&l.node))
    }

    /// Copies (replicas and learners) each live node holds, over every collection.
    pub fn load(&self) -> BTreeMap<String, usize> {
        let mut load: BTreeMap<String, usize> = self.nodes.keys().map(|n| (n.clone(), 0)).collect();
        for item in self.collections.values() {
            for s in &item.entry.shards {
                for n in s.nodes.iter().chain(&s.learners) {
                    *load.entry(n.clone()).or_insert(0) += 1;
                }
            }
        }
        load
    }

    /// The shard's last term and the revision of its term key (0, 0 if none).
    pub fn term(&self, collection: &str, shard: u32) -> (u64, i64) {
        self.terms
            .get(&(collection.to_string(), shard))
            .copied()
            .unwrap_or((0, 0))
    }
}

/// The shard of point `id` among `shards`: a fixed mix of the id's bits
/// (SplitMix64's finaliser), so consecutive ids spread evenly. Part of the
/// data layout: it never changes.
pub fn shard_of(id: u64, shards: u32) -> u32 {
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % u64::from(shards.max(1))) as u32
}

/// Replicas for a new collection: `shards` shards, each on
/// `replication_factor` distinct nodes of `nodes`, starting each shard on
/// the next node so leaders and copies spread evenly; `load` (replicas a
/// node already holds) orders the nodes, least loaded first.
pub fn place(
    nodes: &[String],
    load: &BTreeMap<String, usize>,
    shards: u32,
    replication_factor: u32,
) -> Vec<pb::ShardReplicas> {
    let mut order: Vec<&String> = nodes.iter().collect();
    order.sort_by_key(|n| (load.get(*n).copied().unwrap_or(0), (*n).clone()));
    (0..shards as usize)
        .map(|s| pb::ShardReplicas {
            nodes: (0..replication_factor as usize)
                .map(|r| order[(s + r) % order.len()].clone())
                .collect(),
            learners: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_spreads_consecutive_ids_evenly() {
        let mut counts = [0usize; 3];
        for id in 0..30_000u64 {
            counts[shard_of(id, 3) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        assert_eq!(shard_of(42, 1), 0);
    }

    #[test]
    fn placement_puts_copies_on_distinct_nodes() {
        let nodes: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let p = place(&nodes, &BTreeMap::new(), 6, 3);
        assert_eq!(p.len(), 6);
        let mut firsts = BTreeMap::new();
        for s in &p {
            let mut n = s.nodes.clone();
            n.sort();
            n.dedup();
            assert_eq!(n.len(), 3);
            *firsts.entry(s.nodes[0].clone()).or_insert(0) += 1;
        }
        assert!(firsts.values().all(|&c| c <= 2), "{firsts:?}");
        let load = BTreeMap::from([("a".to_string(), 5), ("b".to_string(), 5)]);
        let p = place(&nodes, &load, 1, 2);
        assert_eq!(p[0].nodes, vec!["c".to_string(), "d".to_string()]);
    }
}
