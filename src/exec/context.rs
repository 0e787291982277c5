//! What travels with a request from one service to the next, whatever the
//! protocol: the hop depth (loop protection), the time left (deadline), the
//! request id, and the trace headers that tie a cascade together.

use std::time::Duration;

use tokio::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::deadline::callee_budget;

/// How many services the request has passed through before this one.
pub const DEPTH_HEADER: &str = "x-servicemock-depth";
/// A random number per hop call: a proxy's retry resends it, two calls of
/// one plan never share it, so the callee can count attempts
/// ([`crate::attempts`]) even when a plan calls one service twice.
pub const CALL_HEADER: &str = "x-servicemock-call";
/// Which try of an application-level retry (`[:retries=N]`) a hop call
/// is: 1 for the first. Set only on hops that may retry.
pub const TRY_HEADER: &str = "x-servicemock-try";
/// Milliseconds left for the whole request, set on HTTP hops (gRPC hops use
/// the standard `grpc-timeout`).
pub const TIMEOUT_HEADER: &str = "x-servicemock-timeout-ms";
/// How many calls the request's whole subtree may still make: the entry
/// starts from `--max-hops`, every level spends its own calls and shares
/// what is left among them, so a cascade that loops back through default
/// plans (`--calls`) ends however it fans out.
pub const CALLS_LEFT_HEADER: &str = "x-servicemock-calls-left";
/// The route timeout Envoy (and so Istio) tells the upstream it will wait.
pub const ENVOY_TIMEOUT_HEADER: &str = "x-envoy-expected-rq-timeout-ms";
/// The request id that every level of the report shows.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

// The headers read on every request, as names made at compile time: a
// lookup by `HeaderName` does not parse the name again each time.
pub(crate) const DEPTH: HeaderName = HeaderName::from_static(DEPTH_HEADER);
pub(crate) const TIMEOUT: HeaderName = HeaderName::from_static(TIMEOUT_HEADER);
const ENVOY_TIMEOUT: HeaderName = HeaderName::from_static(ENVOY_TIMEOUT_HEADER);
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
pub(crate) const CALLS_LEFT: HeaderName = HeaderName::from_static(CALLS_LEFT_HEADER);
pub(crate) const CALL: HeaderName = HeaderName::from_static(CALL_HEADER);
pub(crate) const TRY: HeaderName = HeaderName::from_static(TRY_HEADER);

/// Headers passed on from each inbound request to every outbound hop, unless
/// configured otherwise: the request id and the trace context of every
/// tracer Istio and Envoy know.
pub const DEFAULT_PROPAGATED: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
];

/// Why an inbound request's own metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("header {name}: \"{value}\" is not a number")]
    BadNumber { name: HeaderName, value: String },
    #[error("header grpc-timeout: \"{0}\" is not a gRPC timeout (like 250m or 2S)")]
    BadGrpcTimeout(String),
}

/// The per-request state every hop of one request shares.
#[derive(Debug)]
pub struct HopContext {
    /// When this service received the request; hop start times count from it.
    pub started: Instant,
    /// How many services the request passed through before this one.
    pub depth: u32,
    /// When the whole request must be answered.
    pub deadline: Instant,
    /// Headers every outbound hop carries (propagated ones and the request id).
    pub outbound: HeaderMap,
    /// Bytes of downstream answers received so far by this request's hops.
    pub received: std::sync::atomic::AtomicUsize,
    /// The calls each direct hop's callee may make beyond what its own
    /// part of this plan asks (see [`CALLS_LEFT_HEADER`]).
    pub calls_share: usize,
    /// Calls go out as any client's, without servicemock's own headers
    /// (depth, call id, budget): a probe of a server's own endpoints.
    pub bare: bool,
    /// The trace this request is part of, when this service exports
    /// spans: each try of a hop is a CLIENT span of it.
    pub trace: Option<crate::spans::Trace>,
}

/// Which try of its caller's retries an inbound request is (0 when the
/// caller does not retry, or says nothing readable).
pub fn inbound_try(headers: &HeaderMap) -> u32 {
    headers
        .get(TRY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads the depth counter of an inbound request (0 when absent).
pub fn inbound_depth(headers: &HeaderMap) -> Result<u32, ContextError> {
    match headers.get(DEPTH) {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ContextError::BadNumber {
                name: DEPTH,
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            }),
    }
}

/// How many calls an inbound request's subtree may make: what its caller
/// said is left, never more than `max_hops`.
pub fn inbound_calls_left(headers: &HeaderMap, max_hops: usize) -> Result<usize, ContextError> {
    match headers.get(CALLS_LEFT) {
        None => Ok(max_hops),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(|left| left.min(max_hops))
            .ok_or_else(|| ContextError::BadNumber {
                name: CALLS_LEFT,
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            }),
    }
}

/// The time an inbound request allows: the smaller of this service's own
/// limit and what the caller said is left. Another servicemock says it in
/// `x-servicemock-timeout-ms`, with the answering margin already kept
/// (`exec::deadline`). A plain gRPC client's `grpc-timeout` and Envoy's
/// `x-envoy-expected-rq-timeout-ms` (an Istio route timeout) are the
/// instant the caller gives up, so the margin is kept here: the answer
/// leaves before the caller stops waiting.
pub fn inbound_budget(headers: &HeaderMap, own_limit: Duration) -> Result<Duration, ContextError> {
    let mut budget = own_limit;
    if let Some(ms) = millis_header(headers, TIMEOUT)? {
        budget = budget.min(Duration::from_millis(ms));
    }
    if let Some(ms) = millis_header(headers, ENVOY_TIMEOUT)? {
        budget = budget.min(callee_budget(Duration::from_millis(ms)));
    }
    if let Some(v) = headers.get(GRPC_TIMEOUT) {
        let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
        let timeout = parse_grpc_timeout(&text).ok_or(ContextError::BadGrpcTimeout(text))?;
        budget = budget.min(callee_budget(timeout));
    }
    Ok(budget)
}

/// A header holding a whole number of milliseconds, if present.
fn millis_header(headers: &HeaderMap, name: HeaderName) -> Result<Option<u64>, ContextError> {
    headers
        .get(&name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| ContextError::BadNumber {
                    name,
                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                })
        })
        .transpose()
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H M S m u n).
pub fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    // Any byte may arrive here; only ASCII can be split by length.
    if !text.is_ascii() || text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The headers an inbound request passes on: those named in `propagate`
/// that it carries, plus its request id (made up here if it had none).
/// Returns them and the request id.
pub fn outbound_headers(inbound: &HeaderMap, propagate: &[HeaderName]) -> (HeaderMap, String) {
    let mut out = HeaderMap::with_capacity(propagate.len() + 1);
    for name in carried(inbound, propagate) {
        for value in inbound.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    let request_id = match carried_request_id(inbound) {
        Some(id) => id.to_owned(),
        None => {
            let id = new_request_id();
            if let Ok(v) = HeaderValue::from_str(&id) {
                out.insert(REQUEST_ID, v);
            }
            id
        }
    };
    (out, request_id)
}

/// The request id an inbound request carries, if any.
pub fn carried_request_id(inbound: &HeaderMap) -> Option<&str> {
    inbound
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// The names of `propagate` that `inbound` carries, in `propagate`'s
/// order. A request carries a few headers and the list names a dozen, so
/// the names it carries are compared instead of each name looked up (which
/// parses and hashes it).
pub fn carried<'a>(
    inbound: &'a HeaderMap,
    propagate: &'a [HeaderName],
) -> impl Iterator<Item = &'a HeaderName> {
    propagate
        .iter()
        .filter(|name| inbound.keys().any(|k| k == *name))
}

/// The trace id of a request, from `traceparent` (W3C) or `x-b3-traceid`.
pub fn trace_id(headers: &HeaderMap) -> Option<&str> {
    if let Some(parent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        return parent.split('-').nth(1);
    }
    headers.get("x-b3-traceid").and_then(|v| v.to_str().ok())
}

/// A random request id in the UUID v4 text form Envoy uses.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The default propagation list as header names.
pub fn default_propagated() -> Vec<HeaderName> {
    DEFAULT_PROPAGATED
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("123456789m"), None);
        // A multi-byte character where the unit should be: no panic.
        assert_eq!(parse_grpc_timeout("1\u{ff}"), None);
        assert_eq!(parse_grpc_timeout("1€"), None);
    }

    #[test]
    fn budget_takes_the_smallest() {
        let mut h = HeaderMap::new();
        let own = Duration::from_secs(30);
        assert_eq!(inbound_budget(&h, own).unwrap(), own);
        h.insert(TIMEOUT_HEADER, HeaderValue::from_static("1500"));
        assert_eq!(
            inbound_budget(&h, own).unwrap(),
            Duration::from_millis(1500)
        );
        // A client's own deadline: the answering margin is kept from it.
        h.insert("grpc-timeout", HeaderValue::from_static("100m"));
        assert_eq!(inbound_budget(&h, own).unwrap(), Duration::from_millis(90));
        h.insert(ENVOY_TIMEOUT_HEADER, HeaderValue::from_static("50"));
        assert_eq!(inbound_budget(&h, own).unwrap(), Duration::from_millis(45));
        h.insert(TIMEOUT_HEADER, HeaderValue::from_static("soon"));
        assert!(inbound_budget(&h, own).is_err());
    }

    #[test]
    fn request_id_is_kept_or_made() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("00-abc-def-01"));
        h.insert("cookie", HeaderValue::from_static("secret"));
        let (out, id) = outbound_headers(&h, &default_propagated());
        assert_eq!(id.len(), 36);
        assert_eq!(out["x-request-id"], id.as_str());
        assert_eq!(out["traceparent"], "00-abc-def-01");
        assert!(out.get("cookie").is_none());
        h.insert("x-request-id", HeaderValue::from_static("given"));
        let (out, id) = outbound_headers(&h, &default_propagated());
        assert_eq!(
            (id.as_str(), &out["x-request-id"]),
            ("given", &HeaderValue::from_static("given"))
        );
    }

    #[test]
    fn depth_must_be_a_number() {
        let mut h = HeaderMap::new();
        assert_eq!(inbound_depth(&h), Ok(0));
        h.insert(DEPTH_HEADER, HeaderValue::from_static("7"));
        assert_eq!(inbound_depth(&h), Ok(7));
        h.insert(DEPTH_HEADER, HeaderValue::from_static("x"));
        assert!(inbound_depth(&h).is_err());
    }
}
