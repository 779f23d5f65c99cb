//! The Prometheus endpoint: a small HTTP/1.1 server (hyper) that answers
//! `GET /metrics` with the text exposition of [`metrics`](super::metrics)
//! and anything else with 404 (405 for other methods on `/metrics`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::metrics::{render, RequestMetrics};
use super::registry::Registry;

/// More metric families appended to the exposition (cluster mode's per-shard gauges).
pub type ExtraMetrics = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Path of the exposition.
pub const PATH: &str = "/metrics";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves the endpoint on `listener` until the returned task is aborted
/// (which also ends its open connections).
pub fn spawn(
    listener: TcpListener,
    requests: Arc<RequestMetrics>,
    registry: Arc<Registry>,
    extra: Option<ExtraMetrics>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let (requests, registry, extra) = (requests.clone(), registry.clone(), extra.clone());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (requests, registry, extra) =
                    (requests.clone(), registry.clone(), extra.clone());
                async move { Ok::<_, Infallible>(answer(&req, requests, registry, extra).await) }
            });
            connections.spawn(async move {
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
    })
}

async fn answer(
    req: &Request<Incoming>,
    requests: Arc<RequestMetrics>,
    registry: Arc<Registry>,
    extra: Option<ExtraMetrics>,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != PATH {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    // Stats take brief collection locks: keep them off the async workers.
    let text = match tokio::task::spawn_blocking(move || {
        let mut text = render(&requests, &registry);
        if let Some(extra) = extra {
            extra(&mut text);
        }
        text
    })
    .await
    {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n");
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}
