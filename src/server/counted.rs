//! Each request counted when it is answered ([`Tally`]: its duration and
//! `servicemock_requests_total{status}`, and what `/requests` keeps of it),
//! and a stream counted as a stream: the in-flight gauge, the
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
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use tokio::sync::OwnedSemaphorePermit;

use super::Service;
use crate::metrics::OwnedInFlight;
use crate::report::InboundProtocol;

/// gRPC's CANCELLED: what a stream the client went away from counts as.
const CANCELLED: i32 = 1;

/// What counting a request needs once it is answered: taken as it
/// arrives (`front`), counted with its answer's status ([`Tally::close`])
/// or, for a stream, with its end's ([`StreamCount`]). Dropped uncounted
/// (the client went away before an answer), it still leaves the
/// in-flight gauge and gives back its place under `--max-concurrent`.
pub(super) struct Tally {
    pub(super) service: Arc<Service>,
    pub(super) protocol: InboundProtocol,
    pub(super) route: &'static str,
    pub(super) started: Instant,
    /// What `/requests` keeps of it (with `--record`); boxed, so a
    /// request's future stays small without it.
    pub(super) draft: Option<Box<super::recorder::Entry>>,
    pub(super) _in_flight: OwnedInFlight,
    pub(super) _permit: Option<OwnedSemaphorePermit>,
}

impl Tally {
    /// Counts the request with `status` (a stream with the `messages` it
    /// carried) and keeps what `/requests` shows of it.
    fn count(&mut self, status: i32, messages: Option<u64>) {
        let elapsed = self.started.elapsed();
        let service = &self.service;
        service
            .metrics
            .request(self.protocol, self.route, status, elapsed);
        if let (Some(recorder), Some(mut entry)) = (service.recorder.as_ref(), self.draft.take()) {
            entry.messages = messages;
            recorder.keep(*entry, status);
        }
    }

    /// Counts the request with the status of `response`, its answer.
    pub(super) fn close(mut self, response: Response) -> Response {
        let status = if self.protocol == InboundProtocol::Grpc {
            // A trailers-only answer's; 0 (OK) when it comes in trailers.
            grpc_status(response.headers()).unwrap_or(0)
        } else {
            i32::from(response.status().as_u16())
        };
        self.count(status, None);
        response
    }
}

/// What a stream holds until it ends, and counts then.
pub(super) struct StreamCount {
    pub(super) tally: Tally,
    /// The status seen so far: a trailers-only answer's, then the trailers'.
    pub(super) status: Option<i32>,
    /// gRPC messages sent, read off the length prefixes of the body.
    pub(super) messages: Messages,
}

impl Drop for StreamCount {
    fn drop(&mut self) {
        let status = self.status.unwrap_or(CANCELLED);
        self.tally.count(status, Some(self.messages.count));
    }
}

/// Counts the messages of a gRPC body as its bytes pass: each message is a
/// 5-byte prefix (a flag and a 4-byte length) and that many bytes, split
/// across frames anyhow.
#[derive(Debug, Default)]
pub(super) struct Messages {
    count: u64,
    /// Bytes of the current message still to pass.
    body_left: u64,
    /// Bytes of the next prefix seen so far.
    prefix: [u8; 5],
    prefix_len: usize,
}

impl Messages {
    fn pass(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len() as u64);
                self.body_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let take = (5 - self.prefix_len).min(bytes.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&bytes[..take]);
            self.prefix_len += take;
            bytes = &bytes[take..];
            if self.prefix_len == 5 {
                self.count += 1;
                self.prefix_len = 0;
                let len = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.body_left = u64::from(u32::from_be_bytes(len));
            }
        }
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
            if let Some(data) = frame.data_ref() {
                self.count.messages.pass(data);
            }
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

#[cfg(test)]
mod tests {
    use super::Messages;

    #[test]
    fn messages_are_counted_however_the_frames_split_them() {
        let mut body = Vec::new();
        for len in [0u32, 3, 70_000] {
            body.push(0);
            body.extend_from_slice(&len.to_be_bytes());
            body.extend(std::iter::repeat_n(7, len as usize));
        }
        for chunk in [1, 2, 5, 4096, body.len()] {
            let mut m = Messages::default();
            body.chunks(chunk).for_each(|c| m.pass(c));
            assert_eq!(m.count, 3, "chunks of {chunk}");
        }
    }
}
