//! A stream counted as a stream: the in-flight gauge, the
//! `--max-concurrent` permit, the request duration and
//! `servicemock_requests_total{status}` cover a gRPC stream until its body
//! ends, with the `grpc-status` its trailers carry (a request is counted when
//! its answer's head goes out; a stream's head leaves long before its end).
//! A stream the client abandons is counted as CANCELLED. A stream whose
//! trailers carry [`RESET_MARK`](super::streams::RESET_MARK) is reset
//! instead of ended (`x-mock-stream-reset`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use tokio::sync::OwnedSemaphorePermit;

use super::Service;
use crate::metrics::OwnedInFlight;
use crate::report::InboundProtocol;

/// gRPC's CANCELLED: what a stream the client went away from counts as.
const CANCELLED: i32 = 1;

/// What a stream holds until it ends, and counts then.
pub(super) struct StreamCount {
    pub(super) service: Arc<Service>,
    pub(super) protocol: InboundProtocol,
    pub(super) route: &'static str,
    pub(super) started: Instant,
    /// The status seen so far: a trailers-only answer's, then the trailers'.
    pub(super) status: Option<i32>,
    pub(super) _in_flight: OwnedInFlight,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Drop for StreamCount {
    fn drop(&mut self) {
        self.service.metrics.request(
            self.protocol,
            self.route,
            self.status.unwrap_or(CANCELLED),
            self.started.elapsed(),
        );
    }
}

/// A stream's body, counted when it ends (see the module docs).
pub(super) struct Counted {
    body: Body,
    count: StreamCount,
}

impl Counted {
    pub(super) fn new(body: Body, count: StreamCount) -> Counted {
        Counted { body, count }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(trailers) = frame.trailers_ref() {
                if trailers.contains_key(super::streams::RESET_MARK) {
                    self.count.status = Some(CANCELLED);
                    return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::other(
                        "stream reset on purpose (x-mock-stream-reset)",
                    )))));
                }
                self.count.status = Some(grpc_status(trailers).unwrap_or(0));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The `grpc-status` in a header map, when there is one.
pub(super) fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse().ok())
}
