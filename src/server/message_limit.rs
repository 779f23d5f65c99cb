//! The request-size limit: a tower layer that reads the 5-byte prefix of
//! every gRPC message in a request body (compressed flag, big-endian
//! length) as it streams past, and ends the body with RESOURCE_EXHAUSTED as
//! soon as a message announces more than `max_message_bytes`. The message
//! itself is never buffered or decoded.
//!
//! tonic's own limit (`max_decoding_message_size`, set to the same value)
//! would answer OUT_OF_RANGE; this layer sees the prefix first, so clients
//! get the code the API documents for a request over a server limit. A
//! unary call fails before its handler runs; a stream (`UpsertStream`)
//! ends with the status after the acknowledgements of the messages before.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::Status;

/// Length of the prefix before each gRPC message.
const PREFIX: usize = 5;

/// Wraps the routes in a [`MessageLimit`] of `max` bytes per message.
#[derive(Clone, Copy, Debug)]
pub struct MessageLimitLayer(pub usize);

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> MessageLimit<S> {
        MessageLimit { inner, max: self.0 }
    }
}

/// The service of [`MessageLimitLayer`].
#[derive(Clone, Debug)]
pub struct MessageLimit<S> {
    inner: S,
    max: usize,
}

impl<S> tower::Service<Request<Body>> for MessageLimit<S>
where
    S: tower::Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> S::Future {
        let max = self.max;
        self.inner
            .call(req.map(|body| Body::new(LimitedBody::new(body, max))))
    }
}

/// Where a reader is in the stream of length-prefixed messages.
#[derive(Debug, Default)]
struct Framing {
    /// Prefix bytes of the next message seen so far.
    prefix: [u8; PREFIX],
    have: usize,
    /// Bytes of the current message still to pass.
    body_left: u64,
}

impl Framing {
    /// Reads `data`; the length of the first message over `max`, if any.
    fn read(&mut self, mut data: &[u8], max: usize) -> Option<u64> {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
                data = &data[n..];
                self.body_left -= n as u64;
                continue;
            }
            let n = (PREFIX - self.have).min(data.len());
            self.prefix[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == PREFIX {
                self.have = 0;
                let len = u64::from(u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]));
                if len > max as u64 {
                    return Some(len);
                }
                self.body_left = len;
            }
        }
        None
    }
}

/// A request body that fails once a message announces more than `max` bytes.
struct LimitedBody {
    inner: Body,
    max: usize,
    framing: Framing,
    failed: bool,
}

impl LimitedBody {
    fn new(inner: Body, max: usize) -> Self {
        LimitedBody {
            inner,
            max,
            framing: Framing::default(),
            failed: false,
        }
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let max = self.max;
                if let Some(len) = self.framing.read(data, max) {
                    self.failed = true;
                    return Poll::Ready(Some(Err(super::status::request_too_large(len, max))));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(PREFIX + len as usize, 7);
        m
    }

    #[test]
    fn finds_the_first_message_over_the_limit_across_chunk_boundaries() {
        let mut stream = message(10);
        stream.extend(message(3));
        stream.extend(message(0));
        stream.extend(message(11));
        for chunk in [1, 2, 3, 5, 7, stream.len()] {
            let mut f = Framing::default();
            let found = stream.chunks(chunk).find_map(|c| f.read(c, 10));
            assert_eq!(found, Some(11), "chunks of {chunk}");
            let mut f = Framing::default();
            let found = stream.chunks(chunk).find_map(|c| f.read(c, 11));
            assert_eq!(found, None, "chunks of {chunk}");
        }
    }
}
