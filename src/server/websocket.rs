//! WebSocket on any path: `Upgrade: websocket` over HTTP/1.1, or HTTP/2's
//! extended CONNECT with `:protocol websocket` (RFC 8441). Each text
//! message is a request: one that starts with `/` is a request target, run
//! through the same pipeline as a path (admitted with the headers the
//! socket was opened with) and answered with its report as one text
//! message (`?view=tree` and `?view=flat` as on HTTP), numbered by
//! `StreamMessage`; any other message is echoed prefixed by who answered
//! (`service2 v2 pod-7d9f: hello`), as the TCP port echoes lines.
//!
//! As RFC 6455 says: a binary message is closed with 1003, text that is not
//! UTF-8 with 1007, a message past [`MAX_MESSAGE`] with 1009, a
//! `Sec-WebSocket-Version` other than 13 answered 426 naming 13; pings are
//! answered with pongs; a socket still open when the service shuts down is
//! closed with 1001 (going away) just before `--shutdown-grace` ends. An
//! open socket counts as in flight.

use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts as _, Request};
use axum::response::{IntoResponse as _, Response};
use http::{header, HeaderMap, Method, StatusCode, Version};

use super::pipeline::{self, Refused};
use super::Service;
use crate::attempts::Attempt;
use crate::report::{InboundProtocol, View};

/// Largest message a socket takes (as a TCP line).
pub(super) const MAX_MESSAGE: usize = 64 * 1024;

/// Whether a request asks to open a WebSocket. Any other `Upgrade` (such as
/// `curl --http2`'s `h2c`) is a plain request.
pub(super) fn is_websocket(request: &Request) -> bool {
    if request.version() <= Version::HTTP_11 {
        request
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    } else {
        request.method() == Method::CONNECT
            && request
                .extensions()
                .get::<hyper::ext::Protocol>()
                .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
    }
}

/// Answers the opening handshake and serves the socket. A socket opened
/// on a path that runs a plan (`counted`) is told first which attempt it
/// is, and may draw a reset (`x-mock-reset`, `--reset-rate`) instead.
pub(super) async fn open(service: Arc<Service>, request: Request, counted: bool) -> Response {
    let (mut parts, _) = request.into_parts();
    let connection = parts.extensions.get::<super::connection::Connection>();
    let forwarded = crate::exec::context::first_value(&parts.headers, &crate::caller::XFCC);
    let (tls, peer) = crate::caller::of_request(connection.map(|c| &*c.tls), forwarded);
    let attempt = if counted {
        let line = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let told = crate::exec::context::Told::of(&parts.headers);
        let caller = || peer.as_ref().map(|p| p.principal.clone());
        match super::front::attempt_or_reset(&service, &told, line, caller) {
            Ok(attempt) => attempt,
            Err(super::front::ResetDrawn) => return super::front::reset(),
        }
    } else {
        Attempt::default()
    };
    if parts
        .headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v != "13")
    {
        let message = "servicemock speaks WebSocket version 13 (Sec-WebSocket-Version: 13)\n";
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::SEC_WEBSOCKET_VERSION, "13")],
            message,
        )
            .into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let mut headers = parts.headers;
    for name in [header::UPGRADE, header::CONNECTION] {
        headers.remove(name);
    }
    let session = Session {
        service,
        opened_on: parts.uri.path().to_owned(),
        headers,
        tls,
        peer,
        attempt,
        sent: 0,
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session.serve(socket))
}

/// One open socket: who opened it and how, and how many reports it sent.
struct Session {
    service: Arc<Service>,
    opened_on: String,
    headers: HeaderMap,
    tls: Option<crate::caller::Tls>,
    peer: Option<crate::caller::Peer>,
    attempt: Attempt,
    sent: u32,
}

impl Session {
    async fn serve(mut self, mut socket: WebSocket) {
        let _in_flight = self.service.metrics.in_flight_owned();
        let _open = self.service.socket_open();
        let over = self.service.streams_over();
        tokio::pin!(over);
        let ended = loop {
            let message = tokio::select! {
                message = socket.recv() => message,
                () = &mut over => {
                    let why = "servicemock is shutting down";
                    break close(&mut socket, close_code::AWAY, why).await;
                }
            };
            let text = match message {
                None | Some(Ok(Message::Close(_))) => break "closed by the client",
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Binary(_))) => {
                    let why = "servicemock takes text messages: a request target (/...) or a line to echo";
                    break close(&mut socket, close_code::UNSUPPORTED, why).await;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    let (code, why) = refusal_of(e);
                    break close(&mut socket, code, why).await;
                }
            };
            let answer = self.answer(text.as_str()).await;
            if socket.send(Message::text(answer)).await.is_err() {
                break "the client went away";
            }
        };
        tracing::debug!(
            service = %self.service.identity.service,
            path = %crate::report::text::sanitize(&self.opened_on),
            messages = self.sent,
            ended,
            "websocket"
        );
    }

    /// The answer to one text message: a report, an echo, or an error line.
    async fn answer(&mut self, text: &str) -> String {
        let identity = &self.service.identity;
        if !text.starts_with('/') {
            return format!(
                "{} {} {}: {text}",
                identity.service, identity.version, identity.host
            );
        }
        let (target, view) = match super::http::choose_view(text, &self.headers) {
            Ok(chosen) => chosen,
            Err(unknown) => {
                return format!(
                    "error: unknown view \"{unknown}\": write view=json, view=tree or view=flat"
                )
            }
        };
        let message = self.sent + 1;
        let asked = pipeline::Target {
            target: &target,
            headers: self.headers.clone(),
            tls: self.tls.clone(),
            peer: self.peer.clone(),
            attempt: self.attempt,
            protocol: InboundProtocol::WebSocket,
            request_line: format!("WEBSOCKET {} message {message}: {target}", self.opened_on),
        };
        match pipeline::run_target(&self.service, asked).await {
            Ok((mut report, _, _)) => {
                self.sent = message;
                report.stream_message = message;
                let mut out = crate::report::render_line(&mut report, view);
                if view != View::Tree {
                    out.pop();
                }
                out
            }
            Err(Refused::BadRequest { message, .. }) => format!("error: {message}"),
            Err(Refused::TooDeep(report)) => crate::report::write::compact_string(&report),
        }
    }
}

/// The close code and reason for a message the socket could not take.
fn refusal_of(error: axum::Error) -> (u16, &'static str) {
    use tungstenite::error::{CapacityError, Error};
    match error.into_inner().downcast_ref::<Error>() {
        Some(Error::Utf8(_)) => (close_code::INVALID, "a text message that is not UTF-8"),
        Some(Error::Capacity(CapacityError::MessageTooLong { .. })) => {
            (close_code::SIZE, "a message past 64 KiB")
        }
        _ => (close_code::PROTOCOL, "a frame that breaks RFC 6455"),
    }
}

/// Closes the socket with `code` and says why; returns why, for the log.
async fn close(socket: &mut WebSocket, code: u16, why: &'static str) -> &'static str {
    let frame = CloseFrame {
        code,
        reason: why.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    why
}
