//! `quiver.v1.Collections` in cluster mode: the catalog lives in etcd.
//! Create places the shards and commits the entry with a transaction that
//! fails if the name exists; drop removes it with its leaders and terms;
//! payload-index changes rewrite the entry (compare-and-swap on its
//! revision). Nodes apply catalog changes to their replicas as they see
//! them. Describe sums one replica per shard and shows the shard map.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::etcd;
use super::pb;
use super::pb::shard_read::Read;
use super::pb::shard_read_response::Read as Out;
use super::route::Router;
use super::view::place;
use crate::limits::{MAX_CLUSTER_SHARDS, MAX_FIELD_INDEXES};
use crate::server::convert::NewCollection;
use crate::server::data_dir::validate_name;
use crate::server::filter::field_type_from_pb;
use crate::server::pb as api;
use crate::server::pb::collections_server::Collections;
use crate::server::pb::{ReadConsistency, WriteConsistency};
use crate::server::status::invalid;

/// How long Create waits for every shard to elect a leader.
const CREATE_WAIT: Duration = Duration::from_secs(15);
/// Longest a logical collection name may be (replicas append `-s<shard>`).
pub const MAX_NAME_LEN: usize = 56;
const POSITION_TIMEOUT: Duration = Duration::from_millis(500);

/// Serves `quiver.v1.Collections` over the cluster.
#[derive(Debug, Clone)]
pub struct ClusterCollections {
    pub router: Router,
}

fn etcd_status(e: etcd::EtcdError) -> Status {
    Status::unavailable(e.to_string())
}

impl ClusterCollections {
    /// Collection info: settings from one replica, statistics summed over
    /// one replica of every shard, and the shard map.
    async fn info(&self, name: &str) -> Result<api::CollectionInfo, Status> {
        let item = self.router.item(name)?;
        let (answers, _) = self
            .router
            .read_all(&item, name, ReadConsistency::Any, true, |_| {
                Some(Read::Describe(api::DescribeCollectionRequest::default()))
            })
            .await?;
        let mut info: Option<api::CollectionInfo> = None;
        for (_, a) in answers {
            let Out::Describe(d) = a else { continue };
            let Some(c) = d.collection else { continue };
            match &mut info {
                None => info = Some(c),
                Some(i) => {
                    if let (Some(a), Some(b)) = (i.stats.as_mut(), c.stats) {
                        a.points += b.points;
                        a.segments += b.segments;
                        a.active_points += b.active_points;
                        a.index_memory_bytes += b.index_memory_bytes;
                        a.checkpoint_lsn = a.checkpoint_lsn.max(b.checkpoint_lsn);
                        a.last_lsn = a.last_lsn.max(b.last_lsn);
                        a.ssd_points += b.ssd_points;
                        a.ssd_bytes += b.ssd_bytes;
                        a.merges += b.merges;
                        a.last_merge_seconds = a.last_merge_seconds.max(b.last_merge_seconds);
                    }
                }
            }
        }
        let mut info = info.unwrap_or_default();
        info.name = name.to_string();
        info.cluster = Some(self.layout(name).await?);
        Ok(info)
    }

    async fn layout(&self, name: &str) -> Result<api::ClusterLayout, Status> {
        let node = &self.router.node;
        let view = node.view();
        let item = self.router.item(name)?;
        let create = item.entry.create.clone().unwrap_or_default();
        let mut shard_states = Vec::new();
        for shard in 0..item.shards() {
            let leader = view
                .leader(name, shard)
                .map(|l| l.node.clone())
                .unwrap_or_default();
            let learners = item.learners(shard).to_vec();
            let holders = item.holders(shard);
            let asks = holders.iter().map(|n| {
                let learner = learners.contains(n);
                let addr = view.nodes.get(n).cloned();
                let leader = leader.clone();
                async move {
                    let position = match (&addr, n == &node.id) {
                        (_, true) => node.replica(name, shard).map(|r| r.position()),
                        (Some(a), false) => node
                            .peers
                            .position(a, name, shard, POSITION_TIMEOUT)
                            .await
                            .ok(),
                        (None, false) => None,
                    };
                    api::ReplicaState {
                        node: n.clone(),
                        address: addr.unwrap_or_default(),
                        role: match &position {
                            None => "unreachable".into(),
                            Some(_) if learner => "learner".into(),
                            Some(_) if *n == leader => "leader".into(),
                            Some(_) => "follower".into(),
                        },
                        lsn: position.map_or(0, |p| p.last_lsn),
                    }
                }
            });
            let replicas = super::route::join_all(asks).await;
            shard_states.push(api::ShardState {
                shard,
                term: view.term(name, shard).0,
                leader,
                replicas,
            });
        }
        Ok(api::ClusterLayout {
            shards: item.shards(),
            replication_factor: create.replication_factor.unwrap_or(1),
            write_consistency: create.write_consistency,
            map_version: item.revision as u64,
            shard_states,
        })
    }

    /// Rewrites a catalog entry with `change`, retrying on concurrent changes.
    async fn update_entry(
        &self,
        name: &str,
        change: impl Fn(&mut api::CreateCollectionRequest) -> Result<bool, Status>,
    ) -> Result<(), Status> {
        let node = &self.router.node;
        for _ in 0..10 {
            let item = self.router.item(name)?;
            let mut entry = item.entry.clone();
            let create = entry.create.get_or_insert_with(Default::default);
            if !change(create)? {
                return Ok(());
            }
            let key = node.keys.collection(name);
            let txn = etcd::pb::TxnRequest {
                compare: vec![etcd::modified_at(&key, item.revision)],
                success: vec![etcd::put_op(&key, entry.encode_to_vec(), 0)],
                failure: vec![],
            };
            if node.etcd.txn(txn).await.map_err(etcd_status)? {
                node.refresh().await.map_err(etcd_status)?;
                return Ok(());
            }
            node.refresh().await.map_err(etcd_status)?;
        }
        Err(Status::aborted(format!(
            "collection {name:?} kept changing; try again"
        )))
    }
}

#[tonic::async_trait]
impl Collections for ClusterCollections {
    async fn create(
        &self,
        req: Request<api::CreateCollectionRequest>,
    ) -> Result<Response<api::CreateCollectionResponse>, Status> {
        let node = &self.router.node;
        let mut create = req.into_inner();
        validate_name("name", &create.name)?;
        if create.name.len() > MAX_NAME_LEN {
            return Err(invalid(
                "name",
                format!("at most {MAX_NAME_LEN} characters in cluster mode"),
            ));
        }
        let name = create.name.clone();
        let new = NewCollection::try_from(create.clone())?;
        if new.config.dim > node.limits.max_dimension {
            return Err(invalid(
                "dimension",
                format!(
                    "{} exceeds the server limit of {}",
                    new.config.dim, node.limits.max_dimension
                ),
            ));
        }
        if create.field_indexes.len() > MAX_FIELD_INDEXES {
            return Err(invalid(
                "field_indexes",
                format!("at most {MAX_FIELD_INDEXES}"),
            ));
        }
        let shards = create.shards.unwrap_or(1);
        if shards == 0 || shards > MAX_CLUSTER_SHARDS {
            return Err(invalid(
                "shards",
                format!("must be in 1..={MAX_CLUSTER_SHARDS}, got {shards}"),
            ));
        }
        let view = node.view();
        let live: Vec<String> = view.nodes.keys().cloned().collect();
        let rf = create.replication_factor.unwrap_or(1);
        if rf == 0 || rf as usize > live.len() {
            return Err(invalid(
                "replication_factor",
                format!(
                    "must be in 1..={} (the live nodes: {}), got {rf}",
                    live.len(),
                    live.join(", ")
                ),
            ));
        }
        match WriteConsistency::try_from(create.write_consistency) {
            Ok(WriteConsistency::Unspecified) => {
                create.write_consistency = WriteConsistency::Majority as i32
            }
            Ok(_) => {}
            Err(_) => {
                return Err(invalid(
                    "write_consistency",
                    format!("unknown value {}", create.write_consistency),
                ))
            }
        }
        create.shards = Some(shards);
        create.replication_factor = Some(rf);
        let mut load = BTreeMap::new();
        for item in view.collections.values() {
            for s in &item.entry.shards {
                for n in &s.nodes {
                    *load.entry(n.clone()).or_insert(0usize) += 1;
                }
            }
        }
        let entry = pb::CatalogEntry {
            create: Some(create),
            shards: place(&live, &load, shards, rf),
        };
        let key = node.keys.collection(&name);
        let txn = etcd::pb::TxnRequest {
            compare: vec![etcd::created_at(&key, 0)],
            success: vec![
                etcd::put_op(&key, entry.encode_to_vec(), 0),
                // Leftovers of an earlier collection of the same name.
                etcd::delete_op(&node.keys.leaders_of(&name), true),
                etcd::delete_op(&node.keys.terms_of(&name), true),
            ],
            failure: vec![],
        };
        if !node.etcd.txn(txn).await.map_err(etcd_status)? {
            return Err(Status::already_exists(format!(
                "collection {name:?} already exists"
            )));
        }
        tracing::info!(collection = %name, shards, replication_factor = rf, "created collection in the cluster");
        // Answer once every shard has a leader, so writes work at once.
        let started = Instant::now();
        loop {
            node.refresh().await.map_err(etcd_status)?;
            let view = node.view();
            if (0..shards).all(|s| view.leader(&name, s).is_some()) {
                break;
            }
            if started.elapsed() > CREATE_WAIT {
                return Err(Status::unavailable(format!(
                    "collection {name:?} was created, but not every shard elected a leader within {CREATE_WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Response::new(api::CreateCollectionResponse {
            collection: Some(self.info(&name).await?),
        }))
    }

    async fn drop(
        &self,
        req: Request<api::DropCollectionRequest>,
    ) -> Result<Response<api::DropCollectionResponse>, Status> {
        let node = &self.router.node;
        let name = req.into_inner().name;
        validate_name("name", &name)?;
        let key = node.keys.collection(&name);
        let txn = etcd::pb::TxnRequest {
            compare: vec![etcd::created_at(&key, 0)],
            success: vec![],
            failure: vec![
                etcd::delete_op(&key, false),
                etcd::delete_op(&node.keys.leaders_of(&name), true),
                etcd::delete_op(&node.keys.terms_of(&name), true),
            ],
        };
        if node.etcd.txn(txn).await.map_err(etcd_status)? {
            return Err(Status::not_found(format!(
                "collection {name:?} does not exist"
            )));
        }
        node.refresh().await.map_err(etcd_status)?;
        tracing::info!(collection = %name, "dropped collection from the cluster");
        Ok(Response::new(api::DropCollectionResponse {}))
    }

    async fn list(
        &self,
        _req: Request<api::ListCollectionsRequest>,
    ) -> Result<Response<api::ListCollectionsResponse>, Status> {
        Ok(Response::new(api::ListCollectionsResponse {
            names: self
                .router
                .node
                .view()
                .collections
                .keys()
                .cloned()
                .collect(),
        }))
    }

    async fn describe(
        &self,
        req: Request<api::DescribeCollectionRequest>,
    ) -> Result<Response<api::DescribeCollectionResponse>, Status> {
        let name = req.into_inner().name;
        validate_name("name", &name)?;
        Ok(Response::new(api::DescribeCollectionResponse {
            collection: Some(self.info(&name).await?),
        }))
    }

    async fn create_field_index(
        &self,
        req: Request<api::CreateFieldIndexRequest>,
    ) -> Result<Response<api::CreateFieldIndexResponse>, Status> {
        let r = req.into_inner();
        validate_name("collection", &r.collection)?;
        let index = r.field.ok_or_else(|| invalid("field", "required"))?;
        if index.key.is_empty() {
            return Err(invalid("field.key", "must not be empty"));
        }
        field_type_from_pb(index.r#type, "field.type")?;
        self.update_entry(&r.collection, |c| {
            if let Some(f) = c.field_indexes.iter().find(|f| f.key == index.key) {
                if f.r#type != index.r#type {
                    return Err(invalid(
                        "field.type",
                        format!("field {:?} is already indexed with another type", index.key),
                    ));
                }
                return Ok(false);
            }
            if c.field_indexes.len() >= MAX_FIELD_INDEXES {
                return Err(invalid(
                    "index",
                    format!("at most {MAX_FIELD_INDEXES} indexed fields"),
                ));
            }
            c.field_indexes.push(index.clone());
            Ok(true)
        })
        .await?;
        Ok(Response::new(api::CreateFieldIndexResponse {}))
    }

    async fn drop_field_index(
        &self,
        req: Request<api::DropFieldIndexRequest>,
    ) -> Result<Response<api::DropFieldIndexResponse>, Status> {
        let r = req.into_inner();
        validate_name("collection", &r.collection)?;
        self.update_entry(&r.collection, |c| {
            let before = c.field_indexes.len();
            c.field_indexes.retain(|f| f.key != r.key);
            Ok(c.field_indexes.len() != before)
        })
        .await?;
        Ok(Response::new(api::DropFieldIndexResponse {}))
    }
}
