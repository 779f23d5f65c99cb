//! The `Points` service: converts, checks limits, delegates to the
//! collection. Every call that searches, writes or reads points (an SSD-tier
//! read blocks on the disk) runs on the blocking pool, never on an async
//! worker, except a short search of memory only
//! ([`Collection::search_is_short`]): that runs inline, since handing it to
//! a blocking thread and back (two thread wake-ups) costs more than the
//! search. A response that would exceed `max_message_bytes` is refused
//! with RESOURCE_EXHAUSTED before it is encoded. The `time_us` of a search
//! response runs from the decoded request to the response about to be
//! encoded, and goes into the metrics' search-time histogram.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{points_from_pb, search_from_pb, search_query_from_pb};
use super::data_dir::validate_name;
use super::filter::filter_from_pb;
use super::methods::{classify, MethodId};
use super::metrics::RequestMetrics;
use super::pb;
use super::pb::points_server::Points;
use super::registry::Registry;
use super::status::{join_error, over_limit};
use super::Limits;
use crate::collection::{Collection, CollectionError, SearchRequest};
use crate::limits;

/// Serves `quiver.v1.Points` over a [`Registry`].
#[derive(Debug, Clone)]
pub struct PointsService {
    registry: Arc<Registry>,
    limits: Limits,
    metrics: Arc<RequestMetrics>,
    search_method: MethodId,
    search_batch_method: MethodId,
}

impl PointsService {
    /// The service; search times are recorded into `metrics`.
    pub fn new(registry: Arc<Registry>, limits: Limits, metrics: Arc<RequestMetrics>) -> Self {
        Self {
            registry,
            limits,
            metrics,
            search_method: classify("/quiver.v1.Points/Search").0,
            search_batch_method: classify("/quiver.v1.Points/SearchBatch").0,
        }
    }

    /// `started.elapsed()` in whole microseconds, recorded for `method`.
    fn search_time(&self, method: MethodId, started: Instant) -> u64 {
        let elapsed = started.elapsed();
        self.metrics.observe_search_time(method, elapsed);
        elapsed.as_micros() as u64
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>, Status> {
        validate_name("collection", name)?;
        Ok(self.registry.get(name)?)
    }

    /// `message` as the response, unless encoded it would exceed
    /// `max_message_bytes` (tonic would fail it with OUT_OF_RANGE).
    fn reply<M: prost::Message>(&self, message: M) -> Result<Response<M>, Status> {
        let len = message.encoded_len();
        let max = self.limits.max_message_bytes;
        if len > max {
            return Err(super::status::response_too_large(len, max));
        }
        Ok(Response::new(message))
    }

    fn check_batch(&self, field: &str, len: usize, max: usize) -> Result<(), Status> {
        if len > max {
            return Err(over_limit(field, len, max));
        }
        Ok(())
    }

    async fn upsert_one(&self, r: pb::UpsertRequest) -> Result<pb::UpsertResponse, Status> {
        let c = self.collection(&r.collection)?;
        self.check_batch("points", r.points.len(), self.limits.max_batch)?;
        let points = points_from_pb(r.points)?;
        let n = points.len() as u64;
        let lsn = tokio::task::spawn_blocking(move || c.upsert(points))
            .await
            .map_err(join_error)??;
        Ok(pb::UpsertResponse {
            lsn: lsn.0,
            upserted: n,
        })
    }
}

/// Renames the field of a collection's argument error to `prefix.field`
/// (a query of a batch).
fn in_query(e: CollectionError, i: usize) -> Status {
    match e {
        CollectionError::InvalidArgument { field, message } => {
            super::status::invalid(&format!("queries[{i}].{field}"), message)
        }
        CollectionError::LimitExceeded { field, message } => CollectionError::LimitExceeded {
            field: format!("queries[{i}].{field}"),
            message,
        }
        .into(),
        other => other.into(),
    }
}

fn check_k(field: &str, k: u32, max: usize) -> Result<(), Status> {
    if k as usize > max {
        return Err(super::status::invalid(
            field,
            format!("must be in 1..={max}, got {k}"),
        ));
    }
    Ok(())
}

type UpsertAcks = Pin<Box<dyn Stream<Item = Result<pb::UpsertResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Points for PointsService {
    async fn upsert(
        &self,
        req: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        Ok(Response::new(self.upsert_one(req.into_inner()).await?))
    }

    type UpsertStreamStream = UpsertAcks;

    async fn upsert_stream(
        &self,
        req: Request<Streaming<pb::UpsertRequest>>,
    ) -> Result<Response<UpsertAcks>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let svc = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = inbound.next().await {
                let ack = match msg {
                    Ok(r) => svc.upsert_one(r).await,
                    Err(status) => Err(status),
                };
                let failed = ack.is_err();
                if tx.send(ack).await.is_err() || failed {
                    break; // client gone, or the stream ends with this error
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.into_inner();
        let c = self.collection(&r.collection)?;
        self.check_batch("ids", r.ids.len(), self.limits.max_batch)?;
        let filter = filter_from_pb(r.filter, "filter")?;
        let (lsn, deleted) = tokio::task::spawn_blocking(move || {
            let (mut lsn, mut deleted) = c.delete(&r.ids)?;
            if let Some(f) = filter {
                let (l, d) = c.delete_matching(&f)?;
                lsn = l;
                deleted += d;
            }
            Ok::<_, CollectionError>((lsn, deleted))
        })
        .await
        .map_err(join_error)??;
        Ok(Response::new(pb::DeleteResponse {
            lsn: lsn.0,
            deleted: deleted as u64,
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let r = req.into_inner();
        let c = self.collection(&r.collection)?;
        self.check_batch("ids", r.ids.len(), self.limits.max_batch)?;
        let found =
            tokio::task::spawn_blocking(move || c.get(&r.ids, r.with_payload, r.with_vector))
                .await
                .map_err(join_error)??;
        let points = found
            .into_iter()
            .flatten()
            .map(pb::RetrievedPoint::from)
            .collect();
        self.reply(pb::GetResponse {
            points,
            missing_shards: Vec::new(),
        })
    }

    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> Result<Response<pb::CountResponse>, Status> {
        let r = req.into_inner();
        let c = self.collection(&r.collection)?;
        let count = match filter_from_pb(r.filter, "filter")? {
            None => c.count(),
            Some(f) => tokio::task::spawn_blocking(move || c.count_matching(&f))
                .await
                .map_err(join_error)??,
        };
        Ok(Response::new(pb::CountResponse {
            missing_shards: Vec::new(),
            count: count as u64,
        }))
    }

    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let started = Instant::now();
        let mut r = req.into_inner();
        let c = self.collection(&std::mem::take(&mut r.collection))?;
        check_k("k", r.k, self.limits.max_k)?;
        let q = search_from_pb(r)?;
        let (hits, explain) = if c.search_is_short(&q) {
            c.search_explained(&q)?
        } else {
            tokio::task::spawn_blocking(move || c.search_explained(&q))
                .await
                .map_err(join_error)??
        };
        let hits = hits.into_iter().map(pb::ScoredPoint::from).collect();
        self.reply(pb::SearchResponse {
            missing_shards: Vec::new(),
            hits,
            time_us: self.search_time(self.search_method, started),
            explain: explain.map(Into::into),
        })
    }

    async fn search_batch(
        &self,
        req: Request<pb::SearchBatchRequest>,
    ) -> Result<Response<pb::SearchBatchResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let c = self.collection(&r.collection)?;
        self.check_batch("queries", r.queries.len(), self.limits.max_search_batch)?;
        for (i, q) in r.queries.iter().enumerate() {
            check_k(&format!("queries[{i}].k"), q.k, self.limits.max_k)?;
        }
        let qs: Vec<SearchRequest> = r
            .queries
            .into_iter()
            .enumerate()
            .map(|(i, q)| search_query_from_pb(q, &format!("queries[{i}].")))
            .collect::<Result<_, _>>()?;
        let results = tokio::task::spawn_blocking(move || c.search_batch_explained(&qs))
            .await
            .map_err(join_error)?
            .into_iter()
            .enumerate()
            .map(|(i, res)| {
                res.map(|(hits, explain)| pb::SearchResult {
                    hits: hits.into_iter().map(pb::ScoredPoint::from).collect(),
                    explain: explain.map(Into::into),
                })
                .map_err(|e| in_query(e, i))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.reply(pb::SearchBatchResponse {
            missing_shards: Vec::new(),
            results,
            time_us: self.search_time(self.search_batch_method, started),
        })
    }

    async fn scroll(
        &self,
        req: Request<pb::ScrollRequest>,
    ) -> Result<Response<pb::ScrollResponse>, Status> {
        let r = req.into_inner();
        let c = self.collection(&r.collection)?;
        let limit = match r.limit as usize {
            0 => limits::DEFAULT_SCROLL_LIMIT,
            n if n > self.limits.max_batch => {
                return Err(super::status::invalid(
                    "limit",
                    format!("must be at most {}, got {n}", self.limits.max_batch),
                ))
            }
            n => n,
        };
        let filter = filter_from_pb(r.filter, "filter")?;
        let (records, next) = tokio::task::spawn_blocking(move || match filter {
            None => c.scroll(r.after, limit, r.with_payload, r.with_vector),
            Some(f) => c.scroll_matching(&f, r.after, limit, r.with_payload, r.with_vector),
        })
        .await
        .map_err(join_error)??;
        self.reply(pb::ScrollResponse {
            missing_shards: Vec::new(),
            points: records.into_iter().map(pb::RetrievedPoint::from).collect(),
            next,
        })
    }
}
