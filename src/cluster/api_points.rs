//! `quiver.v1.Points` in cluster mode: each request is split by shard
//! (points and ids by the hash of their id; searches, counts, scrolls and
//! filtered deletes to every shard), routed (`route.rs`), and the shards'
//! answers merged: hits by distance, counts summed, scroll pages by id.

use std::pin::Pin;
use std::time::Instant;

use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

use super::pb;
use super::pb::shard_read::Read;
use super::pb::shard_read_response::Read as Out;
use super::route::{read_consistency, write_consistency, Router};
use super::view::{shard_of, CatalogItem};
use crate::server::pb as api;
use crate::server::pb::points_server::Points;
use crate::server::status::over_limit;

/// Serves `quiver.v1.Points` over the cluster.
#[derive(Debug, Clone)]
pub struct ClusterPoints {
    pub router: Router,
}

fn unexpected() -> Status {
    Status::internal("a shard answered with the wrong response type")
}

impl ClusterPoints {
    /// Asks every shard of `collection` (those `read` builds a request for)
    /// and returns their answers, each taken out of its response by `pick`
    /// (`None`: a response of the wrong type, an internal error), and the
    /// shards that did not answer.
    async fn ask_shards<T>(
        &self,
        item: &CatalogItem,
        collection: &str,
        consistency: i32,
        allow_partial: bool,
        read: impl Fn(u32) -> Option<Read>,
        pick: fn(Out) -> Option<T>,
    ) -> Result<(Vec<T>, Vec<u32>), Status> {
        let (answers, missing) = self
            .router
            .read_all(
                item,
                collection,
                read_consistency(consistency),
                allow_partial,
                read,
            )
            .await?;
        let answers = answers
            .into_iter()
            .map(|(_, a)| pick(a).ok_or_else(unexpected))
            .collect::<Result<_, _>>()?;
        Ok((answers, missing))
    }

    fn check_batch(&self, field: &str, len: usize, max: usize) -> Result<(), Status> {
        if len > max {
            return Err(over_limit(field, len, max));
        }
        Ok(())
    }

    async fn upsert_one(&self, r: api::UpsertRequest) -> Result<api::UpsertResponse, Status> {
        let item = self.router.item(&r.collection)?;
        let limits = &self.router.node.limits;
        self.check_batch("points", r.points.len(), limits.max_batch)?;
        let consistency = write_consistency(r.write_consistency, &item)?;
        check_points(&item, &r.points)?;
        let mut by_shard: Vec<Vec<api::Point>> = vec![Vec::new(); item.shards() as usize];
        for p in r.points {
            by_shard[shard_of(p.id, item.shards()) as usize].push(p);
        }
        let calls = by_shard
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(s, points)| {
                let op = pb::Op {
                    op: Some(pb::op::Op::Upsert(api::UpsertRequest {
                        points,
                        ..Default::default()
                    })),
                };
                self.router.write(&r.collection, s as u32, op, consistency)
            });
        let mut out = api::UpsertResponse::default();
        for result in super::route::join_all(calls).await {
            let w = result?;
            out.lsn = out.lsn.max(w.lsn);
            out.upserted += w.count;
        }
        Ok(out)
    }
}

/// Validates points before they are logged, with the collection's own
/// checks (dimension, finite values, a cosine norm) and payload conversion;
/// the collection checks the rest alike on every replica.
fn check_points(item: &CatalogItem, points: &[api::Point]) -> Result<(), Status> {
    let create = item.entry.create.as_ref();
    let dim = create.map_or(0, |c| c.dimension) as usize;
    let normalizes = create.is_some_and(|c| c.metric == api::Metric::Cosine as i32);
    for (i, p) in points.iter().enumerate() {
        crate::collection::check_vector(
            &p.vector,
            dim,
            normalizes,
            &format!("points[{i}].vector"),
        )?;
        crate::server::convert::payload_from_pb(
            p.payload.clone(),
            &format!("points[{i}].payload"),
        )?;
    }
    Ok(())
}

type UpsertAcks = Pin<Box<dyn Stream<Item = Result<api::UpsertResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Points for ClusterPoints {
    async fn upsert(
        &self,
        req: Request<api::UpsertRequest>,
    ) -> Result<Response<api::UpsertResponse>, Status> {
        Ok(Response::new(self.upsert_one(req.into_inner()).await?))
    }

    type UpsertStreamStream = UpsertAcks;

    async fn upsert_stream(
        &self,
        req: Request<Streaming<api::UpsertRequest>>,
    ) -> Result<Response<Self::UpsertStreamStream>, Status> {
        let mut input = req.into_inner();
        let me = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(msg) = input.next().await {
                let result = match msg {
                    Ok(r) => me.upsert_one(r).await,
                    Err(s) => Err(s),
                };
                let stop = result.is_err();
                if tx.send(result).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn delete(
        &self,
        req: Request<api::DeleteRequest>,
    ) -> Result<Response<api::DeleteResponse>, Status> {
        let r = req.into_inner();
        let item = self.router.item(&r.collection)?;
        self.check_batch("ids", r.ids.len(), self.router.node.limits.max_batch)?;
        let consistency = write_consistency(r.write_consistency, &item)?;
        crate::server::filter::filter_from_pb(r.filter.clone(), "filter")?;
        let mut by_shard: Vec<Vec<u64>> = vec![Vec::new(); item.shards() as usize];
        for id in r.ids {
            by_shard[shard_of(id, item.shards()) as usize].push(id);
        }
        let calls = by_shard
            .into_iter()
            .enumerate()
            .filter(|(_, ids)| !ids.is_empty() || r.filter.is_some())
            .map(|(s, ids)| {
                let op = pb::Op {
                    op: Some(pb::op::Op::Delete(api::DeleteRequest {
                        ids,
                        filter: r.filter.clone(),
                        ..Default::default()
                    })),
                };
                self.router.write(&r.collection, s as u32, op, consistency)
            });
        let mut out = api::DeleteResponse::default();
        for result in super::route::join_all(calls).await {
            let w = result?;
            out.lsn = out.lsn.max(w.lsn);
            out.deleted += w.count;
        }
        Ok(Response::new(out))
    }

    async fn get(
        &self,
        req: Request<api::GetRequest>,
    ) -> Result<Response<api::GetResponse>, Status> {
        let r = req.into_inner();
        let item = self.router.item(&r.collection)?;
        self.check_batch("ids", r.ids.len(), self.router.node.limits.max_batch)?;
        let mut by_shard: Vec<Vec<u64>> = vec![Vec::new(); item.shards() as usize];
        for &id in &r.ids {
            by_shard[shard_of(id, item.shards()) as usize].push(id);
        }
        let (answers, missing) = self
            .ask_shards(
                &item,
                &r.collection,
                r.read_consistency,
                r.allow_partial,
                |s| {
                    let ids = &by_shard[s as usize];
                    (!ids.is_empty()).then(|| {
                        Read::Get(api::GetRequest {
                            ids: ids.clone(),
                            with_payload: r.with_payload,
                            with_vector: r.with_vector,
                            ..Default::default()
                        })
                    })
                },
                |a| match a {
                    Out::Get(g) => Some(g),
                    _ => None,
                },
            )
            .await?;
        let mut found = std::collections::HashMap::new();
        for g in answers {
            for p in g.points {
                found.insert(p.id, p);
            }
        }
        // Request order, like a single node.
        let points = r.ids.iter().filter_map(|id| found.remove(id)).collect();
        Ok(Response::new(api::GetResponse {
            points,
            missing_shards: missing,
        }))
    }

    async fn count(
        &self,
        req: Request<api::CountRequest>,
    ) -> Result<Response<api::CountResponse>, Status> {
        let r = req.into_inner();
        let item = self.router.item(&r.collection)?;
        let (answers, missing) = self
            .ask_shards(
                &item,
                &r.collection,
                r.read_consistency,
                r.allow_partial,
                |_| {
                    Some(Read::Count(api::CountRequest {
                        filter: r.filter.clone(),
                        ..Default::default()
                    }))
                },
                |a| match a {
                    Out::Count(c) => Some(c.count),
                    _ => None,
                },
            )
            .await?;
        let count = answers.into_iter().sum();
        Ok(Response::new(api::CountResponse {
            count,
            missing_shards: missing,
        }))
    }

    async fn search(
        &self,
        req: Request<api::SearchRequest>,
    ) -> Result<Response<api::SearchResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let item = self.router.item(&r.collection)?;
        let k = r.k as usize;
        let (answers, missing) = self
            .ask_shards(
                &item,
                &r.collection,
                r.read_consistency,
                r.allow_partial,
                |_| Some(Read::Search(r.clone())),
                |a| match a {
                    Out::Search(s) => Some(s),
                    _ => None,
                },
            )
            .await?;
        let mut hits = Vec::new();
        let mut explain = None;
        for s in answers {
            hits.extend(s.hits);
            explain = explain.or(s.explain);
        }
        merge_hits(&mut hits, k);
        Ok(Response::new(api::SearchResponse {
            hits,
            time_us: started.elapsed().as_micros() as u64,
            explain,
            missing_shards: missing,
        }))
    }

    async fn search_batch(
        &self,
        req: Request<api::SearchBatchRequest>,
    ) -> Result<Response<api::SearchBatchResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let item = self.router.item(&r.collection)?;
        self.check_batch(
            "queries",
            r.queries.len(),
            self.router.node.limits.max_search_batch,
        )?;
        let (answers, missing) = self
            .ask_shards(
                &item,
                &r.collection,
                r.read_consistency,
                r.allow_partial,
                |_| Some(Read::SearchBatch(r.clone())),
                |a| match a {
                    Out::SearchBatch(b) => Some(b),
                    _ => None,
                },
            )
            .await?;
        let mut results: Vec<api::SearchResult> =
            vec![api::SearchResult::default(); r.queries.len()];
        for b in answers {
            for (i, res) in b.results.into_iter().enumerate().take(results.len()) {
                results[i].hits.extend(res.hits);
                if results[i].explain.is_none() {
                    results[i].explain = res.explain;
                }
            }
        }
        for (res, q) in results.iter_mut().zip(&r.queries) {
            merge_hits(&mut res.hits, q.k as usize);
        }
        Ok(Response::new(api::SearchBatchResponse {
            results,
            time_us: started.elapsed().as_micros() as u64,
            missing_shards: missing,
        }))
    }

    async fn scroll(
        &self,
        req: Request<api::ScrollRequest>,
    ) -> Result<Response<api::ScrollResponse>, Status> {
        let r = req.into_inner();
        let item = self.router.item(&r.collection)?;
        let limit = match r.limit {
            0 => crate::limits::DEFAULT_SCROLL_LIMIT as u32,
            n => n,
        };
        self.check_batch("limit", limit as usize, self.router.node.limits.max_batch)?;
        let (answers, missing) = self
            .ask_shards(
                &item,
                &r.collection,
                r.read_consistency,
                r.allow_partial,
                |_| Some(Read::Scroll(api::ScrollRequest { limit, ..r.clone() })),
                |a| match a {
                    Out::Scroll(s) => Some(s),
                    _ => None,
                },
            )
            .await?;
        let mut points = Vec::new();
        let mut more = false;
        for s in answers {
            more |= s.next.is_some();
            points.extend(s.points);
        }
        points.sort_by_key(|p| p.id);
        if points.len() > limit as usize {
            points.truncate(limit as usize);
            more = true;
        }
        let next = if more {
            points.last().map(|p| p.id)
        } else {
            None
        };
        Ok(Response::new(api::ScrollResponse {
            points,
            next,
            missing_shards: missing,
        }))
    }
}

/// The `k` nearest of several shards' hits, nearest first (ties by id).
fn merge_hits(hits: &mut Vec<api::ScoredPoint>, k: usize) {
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    hits.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_hits_are_the_k_nearest() {
        let hit = |id, distance| api::ScoredPoint {
            id,
            distance,
            ..Default::default()
        };
        let mut hits = vec![hit(1, 0.5), hit(2, 0.1), hit(3, 0.3), hit(4, 0.1)];
        merge_hits(&mut hits, 3);
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![2, 4, 3]);
    }
}
