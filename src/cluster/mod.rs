//! Cluster mode (`quiver serve --cluster etcd://…`): collections sharded
//! by a hash of the point id and replicated across nodes, coordinated by
//! etcd. docs/CLUSTER.md states the design and its guarantees; in short:
//!
//! - `node.rs`: joining (identity check, lease, node key), the watch of
//!   the cluster's keys (`keys.rs`, decoded into a `view.rs` [`View`]),
//!   and reconciling this node's shard replicas with the catalog;
//! - `replica.rs` + `oplog.rs`: a shard replica is an ordinary local
//!   collection plus a replication log of `(lsn, term, op)` records;
//! - `election.rs`: a shard without a leader is claimed, through an etcd
//!   transaction, by its live replica with the most recent log;
//! - `rebalance.rs`: a shard's leader adds a learner on a new or spare node
//!   and swaps it in for a dead or overloaded replica once it caught up;
//! - `leader.rs`: the leader logs, applies and replicates each write and
//!   acknowledges it once `write_consistency` replicas hold it; lagging
//!   followers are caught up from the log or with a snapshot;
//! - `route.rs`, `api_points.rs`, `api_collections.rs`: the public API on
//!   any node, routed to shard leaders or replicas and merged;
//! - `internal.rs`, `peers.rs`: the node-to-node gRPC service and its clients;
//! - `etcd.rs`: a client of etcd's v3 API compiled from `proto/etcd/`.

mod api_collections;
mod api_points;
mod election;
pub mod etcd;
mod internal;
mod keys;
mod leader;
mod node;
mod oplog;
mod peers;
mod rebalance;
mod replica;
mod route;
mod view;

pub use api_collections::ClusterCollections;
pub use api_points::ClusterPoints;
pub use internal::ReplicaService;
pub use node::Node;
pub use route::Router;
pub use view::{shard_of, View};

/// The generated code of the public and node-to-node APIs, nested as their
/// packages are (the node-to-node messages refer to the public ones).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    pub mod quiver {
        pub mod v1 {
            pub use crate::server::pb::*;
        }
        pub mod internal {
            pub mod v1 {
                tonic::include_proto!("quiver.internal.v1");
            }
        }
    }
}

/// Node-to-node messages and service.
pub use proto::quiver::internal::v1 as pb;

/// Seconds a node's lease lives without renewal: a dead leader's shards
/// get a new leader within about this long.
pub const LEASE_TTL_SECS: i64 = 3;

/// How a server joins a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// etcd endpoints (`host:port`).
    pub endpoints: Vec<String>,
    /// Cluster name: the etcd key prefix is `/quiver/<name>/`.
    pub cluster: String,
    /// This node's id (1–64 of [A-Za-z0-9_-]).
    pub node_id: String,
    /// The address other nodes and routed clients reach this node at.
    pub advertise: String,
    /// Key sent to other nodes when the cluster checks API keys.
    pub api_key: Option<String>,
}

impl ClusterOptions {
    /// Parses `etcd://H1:2379,H2:2379` (or a bare list) and checks the ids.
    pub fn new(
        url: &str,
        node_id: &str,
        advertise: &str,
        cluster: &str,
    ) -> Result<ClusterOptions, String> {
        let list = url.strip_prefix("etcd://").unwrap_or(url);
        let endpoints: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            return Err(format!(
                "--cluster {url:?}: expected etcd://HOST:PORT[,HOST:PORT…]"
            ));
        }
        for e in &endpoints {
            if !e.contains(':') {
                return Err(format!(
                    "--cluster: etcd endpoint {e:?} needs a port (HOST:PORT)"
                ));
            }
        }
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !id_ok(node_id) {
            return Err(format!(
                "--node-id {node_id:?}: 1 to 64 characters from [A-Za-z0-9_-]"
            ));
        }
        if !id_ok(cluster) {
            return Err(format!(
                "--cluster-name {cluster:?}: 1 to 64 characters from [A-Za-z0-9_-]"
            ));
        }
        if advertise.parse::<std::net::SocketAddr>().is_err() && !advertise.contains(':') {
            return Err(format!("--advertise {advertise:?}: expected HOST:PORT"));
        }
        Ok(ClusterOptions {
            endpoints,
            cluster: cluster.to_string(),
            node_id: node_id.to_string(),
            advertise: advertise.to_string(),
            api_key: None,
        })
    }
}

/// Why a node could not join.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster configuration: {0}")]
    Config(String),
    #[error("cannot reach etcd: {0}")]
    Etcd(#[from] etcd::EtcdError),
    #[error(
        "data directory {} belongs to {have}, not {want}: start this node with its own data directory",
        dir.display()
    )]
    Identity {
        dir: std::path::PathBuf,
        have: String,
        want: String,
    },
    #[error("node id {id:?} is already registered by a live node at {holder:?}")]
    NodeIdTaken { id: String, holder: String },
    #[error("cluster data: {0}")]
    Io(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_check() {
        let o = ClusterOptions::new(
            "etcd://10.0.0.1:2379, 10.0.0.2:2379",
            "n1",
            "10.0.1.1:6334",
            "quiver",
        )
        .unwrap();
        assert_eq!(o.endpoints, vec!["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert!(ClusterOptions::new("etcd://", "n1", "h:1", "q")
            .unwrap_err()
            .contains("--cluster"));
        assert!(ClusterOptions::new("etcd://h", "n1", "h:1", "q")
            .unwrap_err()
            .contains("port"));
        assert!(ClusterOptions::new("h:1", "n 1", "h:1", "q")
            .unwrap_err()
            .contains("--node-id"));
        assert!(ClusterOptions::new("h:1", "n1", "nowhere", "q")
            .unwrap_err()
            .contains("--advertise"));
    }
}
