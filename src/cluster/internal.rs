//! The node-to-node service (`quiver.internal.v1.Replica`): followers'
//! appends and snapshot installs, positions for elections and catch-up,
//! writes forwarded to a shard's leader, and shard reads, which run the
//! ordinary points service on the local replica.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::node::Node;
use super::pb;
use super::pb::replica_server::Replica as ReplicaApi;
use super::replica::Replica;
use crate::server::pb::points_server::Points as _;
use crate::server::pb::WriteConsistency;

/// Serves `quiver.internal.v1.Replica` for a [`Node`].
#[derive(Debug, Clone)]
pub struct ReplicaService {
    node: Arc<Node>,
}

impl ReplicaService {
    pub fn new(node: Arc<Node>) -> Self {
        ReplicaService { node }
    }

    fn replica(&self, shard: Option<&pb::ShardRef>) -> Result<Arc<Replica>, Status> {
        let s = shard.ok_or_else(|| Status::invalid_argument("shard: required"))?;
        self.node.replica(&s.collection, s.shard).ok_or_else(|| {
            Status::not_found(format!(
                "node {} holds no replica of shard {} of {:?}",
                self.node.id, s.shard, s.collection
            ))
        })
    }
}

#[tonic::async_trait]
impl ReplicaApi for ReplicaService {
    async fn append(
        &self,
        req: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let req = req.into_inner();
        let r = self.replica(req.shard.as_ref())?;
        Ok(Response::new(r.append(&self.node.points, req).await?))
    }

    async fn position(
        &self,
        req: Request<pb::ShardRef>,
    ) -> Result<Response<pb::PositionResponse>, Status> {
        let r = self.replica(Some(req.get_ref()))?;
        Ok(Response::new(r.position()))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::PositionResponse>, Status> {
        let mut chunks = req.into_inner();
        let header = match chunks.message().await? {
            Some(pb::SnapshotChunk {
                chunk: Some(pb::snapshot_chunk::Chunk::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "snapshot: the first chunk must be its header",
                ))
            }
        };
        let r = self.replica(header.shard.as_ref())?;
        let node = &self.node;
        let _w = r.write.lock().await;
        if header.term < r.term.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Status::failed_precondition(format!(
                "snapshot of term {} is older than this replica's term",
                header.term
            )));
        }
        r.observe_term(header.term);
        tracing::info!(collection = %r.collection, shard = r.shard, lsn = header.lsn, leader = %header.leader, "installing a snapshot");
        // From here until the end the replica claims nothing: a crash
        // leaves an empty log, and the leader sends a snapshot again.
        let entry = node
            .view()
            .collections
            .get(&r.collection)
            .and_then(|c| c.entry.create.clone())
            .ok_or_else(|| Status::failed_precondition("collection not in the catalog"))?;
        let config = crate::server::convert::NewCollection::try_from(entry)?.config;
        {
            let me = r.clone();
            let registry = node.registry.clone();
            tokio::task::spawn_blocking(move || {
                me.log.lock().reset(0, 0).map_err(|e| e.to_string())?;
                registry
                    .drop_collection(&me.local)
                    .map_err(|e| e.to_string())?;
                registry
                    .create(&me.local, config)
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::internal)?;
        }
        let mut points = 0u64;
        while let Some(chunk) = chunks.message().await? {
            if let Some(pb::snapshot_chunk::Chunk::Points(mut u)) = chunk.chunk {
                if u.points.is_empty() {
                    continue;
                }
                u.collection = r.local.clone();
                points += node
                    .points
                    .upsert(Request::new(u))
                    .await?
                    .into_inner()
                    .upserted;
            }
        }
        let me = r.clone();
        tokio::task::spawn_blocking(move || me.log.lock().reset(header.lsn, header.lsn_term))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(collection = %r.collection, shard = r.shard, lsn = header.lsn, points, "snapshot installed");
        Ok(Response::new(r.position()))
    }

    async fn write(
        &self,
        req: Request<pb::ShardWrite>,
    ) -> Result<Response<pb::ShardWriteResponse>, Status> {
        let req = req.into_inner();
        let r = self.replica(req.shard.as_ref())?;
        let op = req
            .op
            .ok_or_else(|| Status::invalid_argument("op: required"))?;
        let consistency =
            WriteConsistency::try_from(req.consistency).unwrap_or(WriteConsistency::Majority);
        let (lsn, count) = super::leader::write(&self.node, &r, op, consistency).await?;
        Ok(Response::new(pb::ShardWriteResponse { lsn, count }))
    }

    async fn read(
        &self,
        req: Request<pb::ShardRead>,
    ) -> Result<Response<pb::ShardReadResponse>, Status> {
        let req = req.into_inner();
        let r = self.replica(req.shard.as_ref())?;
        Ok(Response::new(local_read(&self.node, &r, req.read).await?))
    }
}

/// Runs a shard read on this node's replica `r`.
pub async fn local_read(
    node: &Node,
    r: &Replica,
    read: Option<pb::shard_read::Read>,
) -> Result<pb::ShardReadResponse, Status> {
    use pb::shard_read::Read;
    use pb::shard_read_response::Read as Out;
    let local = r.local.clone();
    let p = &node.points;
    let out = match read.ok_or_else(|| Status::invalid_argument("read: required"))? {
        Read::Search(mut q) => {
            q.collection = local;
            Out::Search(p.search(Request::new(q)).await?.into_inner())
        }
        Read::SearchBatch(mut q) => {
            q.collection = local;
            Out::SearchBatch(p.search_batch(Request::new(q)).await?.into_inner())
        }
        Read::Get(mut q) => {
            q.collection = local;
            Out::Get(p.get(Request::new(q)).await?.into_inner())
        }
        Read::Count(mut q) => {
            q.collection = local;
            Out::Count(p.count(Request::new(q)).await?.into_inner())
        }
        Read::Scroll(mut q) => {
            q.collection = local;
            Out::Scroll(p.scroll(Request::new(q)).await?.into_inner())
        }
        Read::Describe(_) => {
            let c = node
                .registry
                .get(&local)
                .map_err(|e| Status::not_found(e.to_string()))?;
            Out::Describe(crate::server::pb::DescribeCollectionResponse {
                collection: Some(crate::server::convert::collection_info(&r.collection, &c)),
            })
        }
    };
    Ok(pb::ShardReadResponse { read: Some(out) })
}
