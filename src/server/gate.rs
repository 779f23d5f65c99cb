//! The tower layer every gRPC request passes first: API-key check, load
//! shedding, and metrics.
//!
//! In order: the path is classified ([`methods`](super::methods)); the key is
//! checked (UNAUTHENTICATED / PERMISSION_DENIED); a slot of the concurrency
//! limit is taken without waiting, and a request that finds none is refused
//! at once with RESOURCE_EXHAUSTED (load shedding, never a queue). Health
//! checks skip both, so probes keep working under load. The slot is held
//! until the response body ends, so a stream counts for as long as it is
//! open. The status code and latency are recorded when the response ends:
//! from the headers of an error response, else from the body's trailers
//! (a body dropped before its trailers counts as CANCELLED).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::{Code, Status};

use super::auth::{Access, AuthConfig};
use super::methods::{classify, MethodId};
use super::metrics::RequestMetrics;

/// What the gate needs, shared by every connection.
#[derive(Debug)]
pub struct GateState {
    pub auth: AuthConfig,
    /// One permit per request allowed in flight.
    pub slots: Arc<Semaphore>,
    pub max_concurrent: usize,
    pub metrics: Arc<RequestMetrics>,
}

/// Wraps the gRPC routes in a [`Gate`].
#[derive(Clone, Debug)]
pub struct GateLayer(pub Arc<GateState>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            state: self.0.clone(),
        }
    }
}

/// The service of [`GateLayer`].
#[derive(Clone, Debug)]
pub struct Gate<S> {
    inner: S,
    state: Arc<GateState>,
}

impl<S> tower::Service<Request<Body>> for Gate<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone is ready only after poll_ready; call the one that was polled.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let observer = Observer::new(state.metrics.clone(), req.uri().path());
            let access = observer.access;
            if let Err(status) = state.auth.check(req.headers(), access) {
                tracing::debug!(method = observer.label(), code = ?status.code(), "refused by API-key check");
                return Ok(observer.refuse(status));
            }
            let permit = if access == Access::Public {
                None
            } else {
                match state.slots.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        return Ok(observer.refuse(Status::resource_exhausted(format!(
                        "server busy: {} requests in flight (max_concurrent_requests); retry later",
                        state.max_concurrent
                    ))))
                    }
                }
            };
            let response = inner.call(req).await?;
            // A trailers-only response (an error status) carries its code in the headers.
            if let Some(code) = header_code(response.headers()) {
                observer.finish(code);
                drop(permit);
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(ObservedBody {
                    inner: body,
                    observer: Some(observer),
                    _permit: permit,
                })
            }))
        })
    }
}

fn header_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get(Status::GRPC_STATUS)
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// Records one request's outcome exactly once: when finished, or as
/// CANCELLED when dropped unfinished.
struct Observer {
    metrics: Arc<RequestMetrics>,
    method: MethodId,
    access: Access,
    started: Instant,
    done: bool,
}

impl Observer {
    fn new(metrics: Arc<RequestMetrics>, path: &str) -> Observer {
        let (method, access) = classify(path);
        metrics.started();
        Observer {
            metrics,
            method,
            access,
            started: Instant::now(),
            done: false,
        }
    }

    fn label(&self) -> &'static str {
        super::methods::label(self.method)
    }

    fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if !self.done {
            self.done = true;
            self.metrics
                .observe(self.method, code, self.started.elapsed());
            self.metrics.finished();
        }
    }

    /// The gRPC response of a refused request, recorded.
    fn refuse(mut self, status: Status) -> Response<Body> {
        self.record(status.code());
        status.into_http()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// A response body that records its status when the trailers pass and
/// holds the request's concurrency slot until it is dropped.
struct ObservedBody {
    inner: Body,
    observer: Option<Observer>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for ObservedBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(header_code) {
                    if let Some(o) = self.observer.take() {
                        o.finish(code);
                    }
                }
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(o) = self.observer.take() {
                    o.finish(status.code());
                }
            }
            Poll::Ready(None) => {
                // Ended without a grpc-status trailer: not a valid gRPC response.
                if let Some(o) = self.observer.take() {
                    o.finish(Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
