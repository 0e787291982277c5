//! The one judge of a hop's answer, whatever the protocol: a servicemock's
//! report is nested under the hop (ok, or failing with the status it came
//! with); any other answer is told apart as what it is — its status, who
//! made it (a proxy's local reply, another server) and a short quote —
//! never dressed up as a report. Each transport only says what came back
//! ([`Answer`]); the words of the verdict are written here once.

use std::fmt;

use http::HeaderMap;

use super::HopResult;
use crate::report::{Gist, Outcome, Received};

/// What carried an answer that may be no report: where its maker and a
/// quote of it are read from.
pub(crate) enum Carrier<'a> {
    /// An HTTP answer's headers and body.
    Http {
        headers: &'a HeaderMap,
        body: &'a [u8],
    },
    /// A gRPC status's metadata (as headers) and message.
    Grpc {
        headers: &'a HeaderMap,
        message: &'a str,
    },
    /// A TCP answer line's text after its status (a line names no maker).
    Line { text: &'a [u8] },
}

/// What came back from a downstream, before it is judged.
pub(crate) struct Answer<'a> {
    /// The HTTP status or gRPC code.
    pub(crate) code: i32,
    /// Whether the code says success (2xx, OK).
    pub(crate) success: bool,
    /// Whether the code says the time ran out (gRPC DEADLINE_EXCEEDED):
    /// an answer without a report is then a `timeout`, not a `status`.
    pub(crate) out_of_time: bool,
    /// The status as an error names it: `503 Service Unavailable`,
    /// `UNAVAILABLE: no healthy upstream`; written only when needed.
    pub(crate) said: &'a dyn fmt::Display,
    /// The servicemock report it carried, or why there is none.
    pub(crate) report: Result<(Received, Gist), String>,
    pub(crate) carrier: Carrier<'a>,
}

/// The hop result an answer comes to.
pub(crate) fn judge(answer: Answer<'_>) -> HopResult {
    let Answer {
        code,
        success,
        out_of_time,
        said,
        report,
        carrier,
    } = answer;
    let why = match report {
        Ok(report) if success => return HopResult::from_ok_report(code, said, report),
        Ok(report) => {
            return HopResult::from_failed_report(code, format!("answered {said}"), report)
        }
        Err(why) => why,
    };
    let outcome = match (success, out_of_time) {
        (true, _) => Outcome::BadAnswer,
        (false, true) => Outcome::Timeout,
        (false, false) => Outcome::Status,
    };
    match carrier {
        Carrier::Http { headers, body } => {
            let who = answered_by(headers, body, false);
            let not_a_report = if success {
                format!(" with a body that is not a servicemock report ({why})")
            } else {
                String::new()
            };
            let error = format!(
                "answered {said}{not_a_report}, made by {who}{}",
                brief(body)
            );
            HopResult::made_by(code, outcome, error, who)
        }
        Carrier::Grpc { headers, message } => {
            let who = answered_by(headers, message.as_bytes(), true);
            let error = format!("answered {said}, made by {who}");
            HopResult::made_by(code, outcome, error, who)
        }
        Carrier::Line { text } => {
            let text = String::from_utf8_lossy(text);
            let quote = crate::report::text::sanitize(&text);
            HopResult::failed(outcome, format!("answered {said}: {quote}")).with_status(code)
        }
    }
}

/// What proxies write in the answers they make themselves: Envoy's local
/// replies and HAProxy's default error pages.
const PROXY_PHRASES: [&[u8]; 7] = [
    b"no healthy upstream",
    b"upstream connect error or disconnect/reset before headers",
    b"upstream request timeout",
    b"No server is available to handle this request",
    b"The server didn't respond in time",
    b"The server returned an invalid or incomplete response",
    b"<h1>503 Service Unavailable</h1>",
];

/// Who made an answer that is not a servicemock report: a proxy when it
/// says so (Envoy's `server: envoy` and `x-envoy-*` headers, the local
/// replies of Envoy and HAProxy), something else otherwise, with its
/// `server` header. A gRPC call answered without a gRPC content type was
/// answered by something between (gRPC servers always set it).
pub(crate) fn answered_by(
    headers: &HeaderMap,
    body: &[u8],
    grpc: bool,
) -> crate::report::AnsweredBy {
    let server = headers
        .get(http::header::SERVER)
        .and_then(|v| v.to_str().ok())
        .map(crate::report::text::sanitize);
    let envoy: Vec<String> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-envoy-"))
        .map(|(name, value)| {
            format!(
                "{name}: {}",
                crate::report::text::sanitize(&String::from_utf8_lossy(value.as_bytes()))
            )
        })
        .collect();
    let server_word = server.as_deref().unwrap_or("").to_ascii_lowercase();
    let local_reply = PROXY_PHRASES
        .iter()
        .any(|phrase| body.windows(phrase.len()).any(|w| w == *phrase));
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_ascii_lowercase());
    let not_grpc = grpc
        && content_type
            .as_deref()
            .is_some_and(|ct| !ct.starts_with(b"application/grpc"));
    let is_proxy = !envoy.is_empty()
        || server_word.contains("envoy")
        || server_word.contains("haproxy")
        || local_reply
        || not_grpc;
    let mut said = Vec::new();
    if let Some(server) = server {
        said.push(format!("server: {server}"));
    }
    if not_grpc {
        if let Some(ct) = &content_type {
            said.push(format!(
                "content-type: {}",
                crate::report::text::sanitize(&String::from_utf8_lossy(ct))
            ));
        }
    }
    said.extend(envoy);
    let maker = if is_proxy {
        crate::report::Maker::Proxy
    } else {
        crate::report::Maker::Other
    };
    crate::report::AnsweredBy::new(maker, &said)
}

/// `503 Service Unavailable`.
pub(crate) struct StatusLine(pub(crate) http::StatusCode);

impl fmt::Display for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.canonical_reason() {
            Some(reason) => write!(f, "{} {reason}", self.0.as_u16()),
            None => write!(f, "{}", self.0.as_u16()),
        }
    }
}

/// A short quote of a body that is not a report, for the error text.
pub(crate) fn brief(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    format!(
        ": \"{}\"",
        crate::report::text::sanitize(text.trim()).replace("\\n", " ")
    )
}
