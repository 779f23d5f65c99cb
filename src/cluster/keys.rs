//! Where cluster mode keeps its metadata in etcd. Every key lives under
//! `/quiver/<cluster name>/`:
//!
//! - `nodes/<node>`: a [`NodeRecord`](super::pb::NodeRecord), under the node's lease;
//! - `collections/<name>`: a [`CatalogEntry`](super::pb::CatalogEntry),
//!   settings and shard map, changed only by compare-and-swap transactions;
//! - `leaders/<name>/<shard>`: a [`LeaderRecord`](super::pb::LeaderRecord),
//!   under the leader's lease, so it vanishes when the leader's lease expires;
//! - `terms/<name>/<shard>`: the shard's last term (decimal), never leased,
//!   so terms only grow.

/// The keys of one cluster.
#[derive(Clone, Debug)]
pub struct Keys {
    root: String,
}

impl Keys {
    pub fn new(cluster: &str) -> Keys {
        Keys {
            root: format!("/quiver/{cluster}/"),
        }
    }

    /// The prefix of every key of the cluster.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn node(&self, id: &str) -> String {
        format!("{}nodes/{id}", self.root)
    }

    pub fn collection(&self, name: &str) -> String {
        format!("{}collections/{name}", self.root)
    }

    pub fn leader(&self, name: &str, shard: u32) -> String {
        format!("{}leaders/{name}/{shard}", self.root)
    }

    pub fn term(&self, name: &str, shard: u32) -> String {
        format!("{}terms/{name}/{shard}", self.root)
    }

    /// Prefix of a collection's leader or term keys (for drop).
    pub fn leaders_of(&self, name: &str) -> String {
        format!("{}leaders/{name}/", self.root)
    }

    pub fn terms_of(&self, name: &str) -> String {
        format!("{}terms/{name}/", self.root)
    }

    /// What a key of the cluster names.
    pub fn parse(&self, key: &[u8]) -> Option<Key> {
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(&self.root)?;
        let (kind, rest) = rest.split_once('/')?;
        let shard = |rest: &str| -> Option<(String, u32)> {
            let (name, shard) = rest.rsplit_once('/')?;
            Some((name.to_string(), shard.parse().ok()?))
        };
        match kind {
            "nodes" => Some(Key::Node(rest.to_string())),
            "collections" => Some(Key::Collection(rest.to_string())),
            "leaders" => shard(rest).map(|(n, s)| Key::Leader(n, s)),
            "terms" => shard(rest).map(|(n, s)| Key::Term(n, s)),
            _ => None,
        }
    }
}

/// A parsed key.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    Node(String),
    Collection(String),
    Leader(String, u32),
    Term(String, u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let k = Keys::new("c1");
        assert_eq!(
            k.parse(k.node("n1").as_bytes()),
            Some(Key::Node("n1".into()))
        );
        assert_eq!(
            k.parse(k.collection("docs").as_bytes()),
            Some(Key::Collection("docs".into()))
        );
        assert_eq!(
            k.parse(k.leader("docs", 3).as_bytes()),
            Some(Key::Leader("docs".into(), 3))
        );
        assert_eq!(
            k.parse(k.term("docs", 0).as_bytes()),
            Some(Key::Term("docs".into(), 0))
        );
        assert_eq!(k.parse(b"/quiver/other/nodes/n1"), None);
        assert_eq!(
            k.parse(k.leader("docs", 0).replace("/0", "/x").as_bytes()),
            None
        );
    }
}
