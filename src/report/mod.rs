//! The report: the tree of what happened to one request, as the service that
//! received it tells it, with every downstream service's own report nested
//! under the hop that called it.
//!
//! The JSON form keeps the original Go server's field names (`ReceivedDate`,
//! `Message`, `RequestInfo`, `ParallelForwards[].SequentialForwards[]` with
//! `Url` and `Result`) so scripts written for it keep working. [`proto`]
//! converts to and from the gRPC `CallResponse`, which carries the same tree.

mod answered_by;
pub mod flat;
mod forwards;
mod judged;
pub mod pretty;
pub mod proto;
pub mod received;
mod request_info;
pub mod text;
pub mod trim;
mod word;
pub mod write;

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::plan::Protocol;
pub use crate::shared::SharedStr;
pub use answered_by::{AnsweredBy, Maker};
pub use forwards::Forwards;
pub use received::{Gist, Received};
pub use request_info::RequestInfo;
pub(crate) use request_info::{header_line, header_text};

/// The ways a report is shown to a person: the entry's choice over HTTP
/// (`?view=`), `servicemock call`'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The indented JSON report.
    Json,
    /// The text tree ([`text`]).
    Tree,
    /// One JSON object per hop ([`flat`]).
    Flat,
}

impl View {
    /// The content type of the view, as a header's value made at compile
    /// time (made from text at run time, its every byte is checked again).
    pub fn content_type(self) -> http::HeaderValue {
        const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
        const TEXT: http::HeaderValue = http::HeaderValue::from_static("text/plain; charset=utf-8");
        match self {
            View::Json | View::Flat => JSON,
            View::Tree => TEXT,
        }
    }
}

/// A report in a view, ending in a newline; every level is shown.
pub fn render(report: &Report, view: View) -> Vec<u8> {
    let json = match view {
        View::Tree => return text::render_tree(report).into_bytes(),
        View::Json => report.to_pretty_json(),
        View::Flat => {
            report.parallel_forwards.expand();
            pretty::to_vec(&flat::rows(report))
        }
    };
    let mut bytes = json.unwrap_or_else(|e| format!("cannot encode the report: {e}").into_bytes());
    bytes.push(b'\n');
    bytes
}

/// A report for a reader of lines (a stream's messages, TCP lines,
/// WebSocket messages): JSON and the flat view on one line each, the tree
/// as it is.
pub fn render_line(report: &mut Report, view: View) -> String {
    let text = match view {
        View::Tree => return text::render_tree(report),
        View::Json => Ok(write::compact_string(report)),
        View::Flat => {
            report.parallel_forwards.expand();
            serde_json::to_string(&flat::rows(report))
        }
    };
    let mut line = text.unwrap_or_else(|e| format!("cannot encode the report: {e}"));
    line.push('\n');
    line
}

/// A duration in milliseconds with microsecond precision, as reports
/// carry them (`DurationMs`, `StartMs`; written by [`write`] from this
/// form).
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// What one service did with one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Report {
    /// When the request arrived, RFC 3339 with milliseconds.
    pub received_date: String,
    /// One line on what the service did.
    pub message: String,
    /// The request as received: request line, then `name: value` per header.
    pub request_info: RequestInfo,
    /// The name the service was deployed under.
    pub service: SharedStr,
    pub version: SharedStr,
    /// Host or pod name.
    pub host: SharedStr,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod_ip: String,
    /// How the request arrived: `http/1.0`, `http/1.1`, `h2c` or `grpc`.
    #[serde(with = "word")]
    pub protocol: InboundProtocol,
    /// The HTTP method it arrived with (empty for gRPC calls): one of
    /// HTTP's own methods is a constant, not a copy made per request.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub method: Cow<'static, str>,
    /// Bytes of request body received (and discarded), when there were any.
    #[serde(skip_serializing_if = "is_zero")]
    pub body_bytes: u64,
    /// SHA-256 of that body, hex.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body_sha256: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// From arrival to answer, hops included.
    pub duration_ms: f64,
    /// The hop groups, in the order written.
    pub parallel_forwards: Forwards,
    /// Behaviour directives that took effect here (`delay 250ms`, `status 503`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<String>,
    /// Filler asked for by `x-mock-size`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub padding: String,
    /// This service ran out of the time its caller gave it (its injected
    /// delay reached the deadline) and answered 504 / DEADLINE_EXCEEDED, so
    /// its caller names this hop as the `timeout`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// Which attempt of the request this answered: 1 for the first, 2 for
    /// the first retry ([`crate::attempts`]).
    pub attempt: u32,
    /// Which try of its caller's own retries (`[:retries=N]`) this arrival
    /// belongs to, when the caller retries; `Attempt` counts every arrival.
    #[serde(rename = "Try", skip_serializing_if = "is_zero_u32")]
    pub try_number: u32,
    /// On a stream (CallStream, Converse, WebSocket), which message of it
    /// this report is; 0 on a single call.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub stream_message: u32,
    /// `default` when the service ran its default cascade (`--calls`)
    /// because the request's own target had no command.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub plan: String,
    /// How the request's connection was secured, when it came over TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Box<crate::caller::Tls>>,
    /// Who sent the request, when known (client certificate or XFCC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Box<crate::caller::Peer>>,
    /// The trace this request is part of, when known (32 hex digits).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// This service's own span of it, when it exports spans.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    /// Where the trace can be seen (`--trace-url` with the trace id).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_url: String,
}

/// Received JSON text, written as it is ([`pretty`] re-indents it when the
/// output is indented). Made a `RawValue` again, which checks it once more
/// (serde_json skips a value without recursing, at any depth).
fn serialize_json_text<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    let raw: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
    raw.serialize(s)
}

/// One group of hops (they ran one after another).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ParallelForward {
    pub sequential_forwards: Vec<Forward>,
}

/// One hop and its outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Forward {
    /// What was called, e.g. `http://service2:8080/@service3/end`.
    pub url: String,
    /// `ok`, or one word on the failure.
    #[serde(with = "word")]
    pub result: Outcome,
    /// `http`, `h2c` or `grpc`.
    #[serde(with = "word")]
    pub protocol: Protocol,
    /// HTTP status, or gRPC code for grpc hops; absent when nothing answered.
    pub status: Option<i32>,
    /// From the caller's arrival to the start of this hop.
    pub start_ms: f64,
    pub duration_ms: f64,
    /// Why the hop failed; absent on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who answered when it was not a servicemock: `proxy (...)` for a
    /// proxy's own reply (Envoy, HAProxy), `other (...)` for anything else,
    /// with what it said about itself. Absent when a servicemock answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<AnsweredBy>,
    /// How the called service says the request reached it, when that
    /// differs from how it was sent: a proxy between them translated it
    /// (HTTP/1.1 sent, `h2c` received).
    #[serde(skip_serializing_if = "Option::is_none", with = "word::option")]
    pub received_as: Option<InboundProtocol>,
    /// The called service's own report (of the last try, when it retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Received>,
    /// How the caller made the call, when it set options: `POST 1 KiB,
    /// timeout 3s, retries 2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// Every try, when the hop may retry (`[:retries=N]`), in order; the
    /// hop's own fields are the last try's, its duration all of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tries: Vec<Try>,
}

impl Forward {
    /// The host (and port) the hop's `Url` names: who was called, for
    /// when no servicemock report says who answered.
    pub fn called_host(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.split(['/', ' ']).next().unwrap_or_default()
    }
}

/// One try of a hop that may retry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Try {
    /// 1 for the first try.
    #[serde(rename = "Try")]
    pub number: u32,
    #[serde(with = "word")]
    pub result: Outcome,
    pub status: Option<i32>,
    pub start_ms: f64,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<AnsweredBy>,
    /// The called service's report of this try; absent on the last try,
    /// whose report is the hop's `Response`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Received>,
}

impl Try {
    /// Who answered this try: the service and version of its report, or
    /// what answered instead.
    pub fn who<'a>(&'a self, hop: &'a Forward, last: bool) -> Option<String> {
        let report = if last {
            hop.response.as_deref()
        } else {
            self.response.as_deref()
        };
        match report {
            Some(r) => Some(format!("{} {}", r.service, r.version)),
            None => self.answered_by.as_ref().map(AnsweredBy::to_string),
        }
    }
}

/// The one-word `Result` of a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    #[default]
    Ok,
    /// Nobody listened at the address.
    Refused,
    /// The name did not resolve.
    Dns,
    /// No answer within the hop's time.
    Timeout,
    /// An answer with a failing status.
    Status,
    /// A successful status with a body that is not a report.
    BadAnswer,
    /// Anything else on the way (reset connection, protocol error, ...).
    Error,
    /// Not called: the request's deadline had passed.
    Skipped,
    /// The TLS handshake failed (untrusted, wrong name, expired, no client
    /// certificate, no protocol in common, not TLS at all).
    Tls,
}

impl Outcome {
    /// Every outcome, for those who count them.
    pub const ALL: [Outcome; 9] = [
        Outcome::Ok,
        Outcome::Refused,
        Outcome::Dns,
        Outcome::Timeout,
        Outcome::Status,
        Outcome::BadAnswer,
        Outcome::Error,
        Outcome::Skipped,
        Outcome::Tls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Dns => "dns",
            Outcome::Timeout => "timeout",
            Outcome::Status => "status",
            Outcome::BadAnswer => "bad-answer",
            Outcome::Error => "error",
            Outcome::Tls => "tls",
            Outcome::Skipped => "skipped",
        }
    }
}

impl word::Word for Outcome {
    const WHAT: &'static str = "hop result";

    fn as_str(self) -> &'static str {
        Outcome::as_str(self)
    }

    fn from_word(word: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == word)
    }
}

impl word::Word for Protocol {
    const WHAT: &'static str = "hop protocol";

    fn as_str(self) -> &'static str {
        Protocol::as_str(self)
    }

    fn from_word(word: &str) -> Option<Self> {
        Protocol::from_scheme(word)
    }
}

/// How a request reached the service that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InboundProtocol {
    Http10,
    #[default]
    Http11,
    /// HTTP/2 without TLS, not a gRPC call.
    H2c,
    /// A gRPC `Call`.
    Grpc,
    /// HTTP/2 over TLS, not a gRPC call.
    H2,
    /// A line on the raw TCP port.
    Tcp,
    /// A text message on a WebSocket.
    WebSocket,
}

impl InboundProtocol {
    pub const ALL: [InboundProtocol; 7] = [
        InboundProtocol::Http10,
        InboundProtocol::Http11,
        InboundProtocol::H2c,
        InboundProtocol::Grpc,
        InboundProtocol::H2,
        InboundProtocol::Tcp,
        InboundProtocol::WebSocket,
    ];

    /// The word reports, logs and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundProtocol::Http10 => "http/1.0",
            InboundProtocol::Http11 => "http/1.1",
            InboundProtocol::H2c => "h2c",
            InboundProtocol::Grpc => "grpc",
            InboundProtocol::H2 => "h2",
            InboundProtocol::Tcp => "tcp",
            InboundProtocol::WebSocket => "websocket",
        }
    }

    /// Whether a request sent over `sent` arrives as this: false when a
    /// proxy on the way translated it (HTTP/1.1 in, HTTP/2 out).
    pub fn is_how(self, sent: Protocol) -> bool {
        matches!(
            (sent, self),
            (
                Protocol::Http,
                InboundProtocol::Http11 | InboundProtocol::Http10
            ) | (Protocol::H2c, InboundProtocol::H2c)
                | (Protocol::Grpc | Protocol::Grpcs, InboundProtocol::Grpc)
                | (Protocol::Tcp, InboundProtocol::Tcp)
                | (
                    Protocol::Https,
                    InboundProtocol::Http11 | InboundProtocol::Http10 | InboundProtocol::H2
                )
        )
    }

    /// How an HTTP request (not a gRPC call) of this version arrived, over
    /// TLS or not (HTTP/2 is `h2` over TLS, `h2c` without).
    pub fn of_http(version: http::Version, tls: bool) -> InboundProtocol {
        match version {
            http::Version::HTTP_2 if tls => InboundProtocol::H2,
            http::Version::HTTP_2 => InboundProtocol::H2c,
            http::Version::HTTP_10 | http::Version::HTTP_09 => InboundProtocol::Http10,
            _ => InboundProtocol::Http11,
        }
    }
}

impl fmt::Display for InboundProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl word::Word for InboundProtocol {
    const WHAT: &'static str = "inbound protocol";

    fn as_str(self) -> &'static str {
        InboundProtocol::as_str(self)
    }

    fn from_word(word: &str) -> Option<Self> {
        InboundProtocol::ALL
            .into_iter()
            .find(|p| p.as_str() == word)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and scripts compare the words: `hop.result == "ok"`.
macro_rules! compare_with_words {
    ($($t:ty),*) => {$(
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
    )*};
}
compare_with_words!(Outcome, InboundProtocol, Protocol);

impl Report {
    /// Whether every hop of this report succeeded.
    pub fn all_ok(&self) -> bool {
        self.failed_hops() == 0
    }

    /// How many hops of this level failed. Of a report received from
    /// downstream only whether each hop has an `Error` is read: its hop
    /// groups stay the text they came in, passed on as they are.
    pub fn failed_hops(&self) -> usize {
        self.parallel_forwards.failed()
    }

    /// Every hop of this level, group by group.
    pub fn forwards(&self) -> impl Iterator<Item = &Forward> {
        self.parallel_forwards
            .iter()
            .flat_map(|g| g.sequential_forwards.iter())
    }

    /// The report as indented JSON, every level included: received
    /// subtrees are re-indented from the text they came in.
    pub fn to_pretty_json(&self) -> serde_json::Result<Vec<u8>> {
        // Indented, a downstream's text takes about twice its bytes.
        let mut out = Vec::with_capacity(2048 + 3 * write::passed_on(self));
        write::write_report(&mut out, &mut pretty::CappedPretty::default(), self)
            .map_err(serde_json::Error::io)?;
        Ok(out)
    }

    /// The failure a person should read first: follow the first failed hop
    /// down through the reports nested under failed hops, to the deepest
    /// one. Its error is the root cause; the ones above only relay it.
    pub fn deepest_failure(&self) -> Option<&Forward> {
        let mut found = self.first_failure()?;
        while let Some(deeper) = found.response.as_deref().and_then(Report::first_failure) {
            found = deeper;
        }
        Some(found)
    }

    /// The first failed hop of this level, if any.
    pub fn first_failure(&self) -> Option<&Forward> {
        self.forwards().find(|f| f.error.is_some())
    }
}

/// Small reports for the tests of the renderings.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Forward, ParallelForward, Report};

    /// An ok hop to `http://x:8080/` over `protocol`.
    pub(crate) fn hop(protocol: &str, start: f64, duration: f64, child: Option<Report>) -> Forward {
        Forward {
            url: "http://x:8080/".into(),
            result: super::Outcome::Ok,
            protocol: crate::plan::Protocol::from_scheme(protocol).expect("a protocol word"),
            status: Some(200),
            start_ms: start,
            duration_ms: duration,
            response: child.map(super::Received::from),
            ..Forward::default()
        }
    }

    /// A v1 report of `service` with these groups of hops.
    pub(crate) fn named(service: &str, groups: Vec<Vec<Forward>>) -> Report {
        Report {
            service: service.into(),
            version: "v1".into(),
            protocol: super::InboundProtocol::Http11,
            parallel_forwards: groups
                .into_iter()
                .map(|sequential_forwards| ParallelForward {
                    sequential_forwards,
                })
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests;
