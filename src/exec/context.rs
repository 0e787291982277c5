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
/// Envoy's attempt header: 1 for the first attempt, 2 for the first retry
/// (read by [`crate::attempts`]).
pub const ENVOY_ATTEMPT_COUNT: &str = "x-envoy-attempt-count";
/// gRPC's retry header: how many attempts came before this one (read by
/// [`crate::attempts`]).
pub const GRPC_PREVIOUS_ATTEMPTS: &str = "grpc-previous-rpc-attempts";
/// The request id that every level of the report shows.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

// The headers read on every request, as names made at compile time: a
// lookup by `HeaderName` does not parse the name again each time.
pub(crate) const DEPTH: HeaderName = HeaderName::from_static(DEPTH_HEADER);
pub(crate) const TIMEOUT: HeaderName = HeaderName::from_static(TIMEOUT_HEADER);
const ENVOY_TIMEOUT: HeaderName = HeaderName::from_static(ENVOY_TIMEOUT_HEADER);
const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";
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
    pub outbound: Outbound,
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

/// The headers of this module, and the retry headers of proxies, that an
/// inbound request carries: found in one pass over its header names. A
/// request carries a few headers and most of these it does not carry, so
/// comparing the names present costs less than a hashed look-up of each of
/// them (a custom name is hashed byte by byte). The first value of a name
/// counts, as [`HeaderMap::get`] would give it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Told<'a> {
    depth: Option<&'a HeaderValue>,
    calls_left: Option<&'a HeaderValue>,
    timeout: Option<&'a HeaderValue>,
    envoy_timeout: Option<&'a HeaderValue>,
    grpc_timeout: Option<&'a HeaderValue>,
    try_number: Option<&'a HeaderValue>,
    /// `x-servicemock-call` ([`CALL_HEADER`]).
    pub call: Option<&'a HeaderValue>,
    /// `x-request-id`.
    pub request_id: Option<&'a HeaderValue>,
    /// `x-envoy-attempt-count` ([`crate::attempts`]).
    pub envoy_attempt: Option<&'a HeaderValue>,
    /// `grpc-previous-rpc-attempts` ([`crate::attempts`]).
    pub grpc_previous: Option<&'a HeaderValue>,
    /// `x-mock-reset`: read before anything else is done with the request
    /// (`server::front::attempt_or_reset`), the other directives after.
    pub reset: Option<&'a HeaderValue>,
    /// `x-forwarded-client-cert`: who a sidecar says called
    /// ([`crate::caller::of_request`]).
    pub forwarded: Option<&'a HeaderValue>,
}

impl<'a> Told<'a> {
    /// What `headers` tell, in one pass.
    pub fn of(headers: &'a HeaderMap) -> Told<'a> {
        let mut told = Told::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                DEPTH_HEADER => &mut told.depth,
                CALLS_LEFT_HEADER => &mut told.calls_left,
                TIMEOUT_HEADER => &mut told.timeout,
                ENVOY_TIMEOUT_HEADER => &mut told.envoy_timeout,
                GRPC_TIMEOUT_HEADER => &mut told.grpc_timeout,
                TRY_HEADER => &mut told.try_number,
                CALL_HEADER => &mut told.call,
                REQUEST_ID_HEADER => &mut told.request_id,
                ENVOY_ATTEMPT_COUNT => &mut told.envoy_attempt,
                GRPC_PREVIOUS_ATTEMPTS => &mut told.grpc_previous,
                crate::behavior::RESET => &mut told.reset,
                crate::caller::XFCC_HEADER => &mut told.forwarded,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        told
    }

    /// Which try of its caller's retries the request is (0 when the caller
    /// does not retry, or says nothing readable).
    pub fn try_number(&self) -> u32 {
        self.try_number.and_then(header_number).unwrap_or(0)
    }

    /// The depth counter of the request (0 when absent).
    pub fn depth(&self) -> Result<u32, ContextError> {
        Ok(number(self.depth, DEPTH)?.unwrap_or(0))
    }

    /// How many calls the request's subtree may make: what its caller said
    /// is left, never more than `max_hops`.
    pub fn calls_left(&self, max_hops: usize) -> Result<usize, ContextError> {
        Ok(number(self.calls_left, CALLS_LEFT)?.map_or(max_hops, |left: usize| left.min(max_hops)))
    }

    /// The time the request allows: the smaller of this service's own
    /// limit and what the caller said is left. Another servicemock says it
    /// in `x-servicemock-timeout-ms`, with the answering margin already kept
    /// (`exec::deadline`). A plain gRPC client's `grpc-timeout` and Envoy's
    /// `x-envoy-expected-rq-timeout-ms` (an Istio route timeout) are the
    /// instant the caller gives up, so the margin is kept here: the answer
    /// leaves before the caller stops waiting.
    pub fn budget(&self, own_limit: Duration) -> Result<Duration, ContextError> {
        let mut budget = own_limit;
        if let Some(ms) = number::<u64>(self.timeout, TIMEOUT)? {
            budget = budget.min(Duration::from_millis(ms));
        }
        if let Some(ms) = number::<u64>(self.envoy_timeout, ENVOY_TIMEOUT)? {
            budget = budget.min(callee_budget(Duration::from_millis(ms)));
        }
        if let Some(v) = self.grpc_timeout {
            let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
            let timeout = parse_grpc_timeout(&text).ok_or(ContextError::BadGrpcTimeout(text))?;
            budget = budget.min(callee_budget(timeout));
        }
        Ok(budget)
    }
}

/// A header holding a whole number, if present; `name` names it when it
/// holds something else. Read from its bytes as `to_str`, `trim` and
/// `parse` read it (a test holds them together): a header value holds no
/// control character but tab, so trimming ASCII whitespace trims what
/// `trim` would, and a byte that is not visible ASCII is no digit either.
fn number<N: TryFrom<u64>>(
    value: Option<&HeaderValue>,
    name: HeaderName,
) -> Result<Option<N>, ContextError> {
    let Some(value) = value else {
        return Ok(None);
    };
    header_number(value)
        .map(Some)
        .ok_or_else(|| ContextError::BadNumber {
            name,
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
}

/// The whole number a header value holds, read as [`number`] reads it;
/// `None` when it holds anything else.
pub fn header_number<N: TryFrom<u64>>(value: &HeaderValue) -> Option<N> {
    whole_number(value.as_bytes().trim_ascii()).and_then(|n| N::try_from(n).ok())
}

/// Decimal digits after an optional `+`, as an unsigned integer's
/// `from_str` reads them; none past `u64::MAX`.
fn whole_number(text: &[u8]) -> Option<u64> {
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
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
/// that it carries, plus its request id (made up here if it had none), in
/// that order. Returns them and the request id. A list, not a map: it is
/// only copied into each hop's own headers, and a map would hash every
/// name twice.
pub fn outbound_headers(inbound: &HeaderMap, propagate: &[HeaderName]) -> (Outbound, String) {
    let mut out = Vec::new();
    for name in carried(inbound, propagate) {
        for value in inbound.get_all(name) {
            out.push((name.clone(), value.clone()));
        }
    }
    let request_id = match carried_request_id(inbound) {
        Some(id) => id.to_owned(),
        None => {
            let id = new_request_id();
            // An empty one carried is replaced.
            out.retain(|(name, _)| name != REQUEST_ID);
            if let Ok(v) = HeaderValue::from_str(&id) {
                out.push((REQUEST_ID, v));
            }
            id
        }
    };
    (out, request_id)
}

/// Headers passed on to every hop of a request, in order.
pub type Outbound = Vec<(HeaderName, HeaderValue)>;

/// The request id an inbound request carries, if any.
pub fn carried_request_id(inbound: &HeaderMap) -> Option<&str> {
    first_value(inbound, &REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// The first value of `name`, as `HeaderMap::get` finds it, by comparing
/// the names a request carries (a dozen or so, each compared by length
/// first) instead of hashing a custom name byte by byte.
pub fn first_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    headers
        .iter()
        .find_map(|(carried, value)| (carried == name).then_some(value))
}

/// The names of `propagate` that `inbound` carries, in `propagate`'s
/// order. A request carries a few headers and the list names a dozen, so
/// the names it carries are compared instead of each name looked up (which
/// parses and hashes it), and only a name of a length some carried name
/// has is compared at all. A leaf passes on nothing: an empty list reads
/// no name.
pub fn carried<'a>(
    inbound: &'a HeaderMap,
    propagate: &'a [HeaderName],
) -> impl Iterator<Item = &'a HeaderName> {
    let lengths = match propagate {
        [] => 0,
        _ => inbound
            .keys()
            .fold(0u64, |lengths, name| lengths | length_bit(name)),
    };
    propagate
        .iter()
        .filter(move |name| lengths & length_bit(name) != 0 && inbound.keys().any(|k| k == *name))
}

/// A bit for the length of `name` (names of 63 bytes and more share one).
fn length_bit(name: &HeaderName) -> u64 {
    1 << name.as_str().len().min(63)
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
        assert_eq!(Told::of(&h).budget(own).unwrap(), own);
        h.insert(TIMEOUT_HEADER, HeaderValue::from_static("1500"));
        assert_eq!(
            Told::of(&h).budget(own).unwrap(),
            Duration::from_millis(1500)
        );
        // A client's own deadline: the answering margin is kept from it.
        h.insert("grpc-timeout", HeaderValue::from_static("100m"));
        assert_eq!(Told::of(&h).budget(own).unwrap(), Duration::from_millis(90));
        h.insert(ENVOY_TIMEOUT_HEADER, HeaderValue::from_static("50"));
        assert_eq!(Told::of(&h).budget(own).unwrap(), Duration::from_millis(45));
        h.insert(TIMEOUT_HEADER, HeaderValue::from_static("soon"));
        assert!(Told::of(&h).budget(own).is_err());
    }

    #[test]
    fn carried_names_are_found_in_the_list_order_whatever_their_length() {
        let long = "x-".repeat(40);
        let mut h = HeaderMap::new();
        // x-b3-sampled has the length of x-request-id and x-b3-traceid,
        // and tracestate that of x-b3-flags: lengths alone do not decide.
        for name in ["x-b3-sampled", "tracestate", "accept", long.as_str()] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        let mut list = default_propagated();
        list.push(HeaderName::from_bytes(long.as_bytes()).unwrap());
        list.push(HeaderName::from_bytes("x".repeat(70).as_bytes()).unwrap());
        let found: Vec<&str> = carried(&h, &list).map(HeaderName::as_str).collect();
        assert_eq!(found, ["tracestate", "x-b3-sampled", long.as_str()]);
        assert_eq!(carried(&h, &[]).count(), 0, "a leaf's empty list");
    }

    #[test]
    fn the_first_value_is_the_one_get_finds() {
        let mut h = HeaderMap::new();
        assert!(first_value(&h, &REQUEST_ID).is_none());
        h.append("x-request-id", HeaderValue::from_static("one"));
        h.append("x-b3-traceid", HeaderValue::from_static("t"));
        h.append("x-request-id", HeaderValue::from_static("two"));
        assert_eq!(first_value(&h, &REQUEST_ID), h.get(REQUEST_ID));
        assert_eq!(first_value(&h, &REQUEST_ID).unwrap(), "one");
        assert!(first_value(&h, &HeaderName::from_static("x-request-ix")).is_none());
    }

    #[test]
    fn request_id_is_kept_or_made() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("00-abc-def-01"));
        h.insert("cookie", HeaderValue::from_static("secret"));
        let texts = |out: &Outbound| -> Vec<(String, String)> {
            out.iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect()
        };
        let (out, id) = outbound_headers(&h, &default_propagated());
        assert_eq!(id.len(), 36);
        assert_eq!(
            texts(&out),
            [
                ("traceparent".to_owned(), "00-abc-def-01".to_owned()),
                ("x-request-id".to_owned(), id.clone())
            ],
            "the cookie is not passed on"
        );
        h.insert("x-request-id", HeaderValue::from_static("given"));
        let (out, id) = outbound_headers(&h, &default_propagated());
        assert_eq!(id, "given");
        assert_eq!(texts(&out)[0], ("x-request-id".into(), "given".into()));
        // A leaf passes nothing on; its report keeps the id all the same.
        let (out, id) = outbound_headers(&h, &[]);
        assert_eq!((texts(&out).len(), id.as_str()), (0, "given"));
        // An empty id carried is replaced by a new one, not sent twice.
        h.insert("x-request-id", HeaderValue::from_static(""));
        let (out, id) = outbound_headers(&h, &default_propagated());
        let ids: Vec<_> = texts(&out)
            .into_iter()
            .filter(|(n, _)| n == "x-request-id")
            .collect();
        assert_eq!(ids, [("x-request-id".to_owned(), id)]);
    }

    #[test]
    fn one_pass_finds_what_a_look_up_would() {
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("curl"));
        h.append(DEPTH_HEADER, HeaderValue::from_static("3"));
        h.append(DEPTH_HEADER, HeaderValue::from_static("9"));
        h.insert(TRY_HEADER, HeaderValue::from_static(" 2 "));
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("r1"));
        h.insert(crate::behavior::RESET, HeaderValue::from_static("1"));
        assert_eq!(Told::of(&h).forwarded, None);
        h.append(crate::caller::XFCC, HeaderValue::from_static("By=a;URI=b"));
        h.append(crate::caller::XFCC, HeaderValue::from_static("By=c;URI=d"));
        let told = Told::of(&h);
        assert_eq!(told.depth(), Ok(3), "the first value, as get() gives");
        assert_eq!(told.try_number(), 2);
        assert_eq!(told.request_id, h.get(REQUEST_ID_HEADER));
        assert_eq!(told.reset, h.get(crate::behavior::RESET));
        assert_eq!(told.forwarded, h.get(crate::caller::XFCC));
        assert_eq!(told.forwarded, first_value(&h, &crate::caller::XFCC));
        assert_eq!((told.call, told.envoy_attempt), (None, None));
        assert_eq!(told.calls_left(50), Ok(50), "none said: all of them");
        h.insert(CALLS_LEFT_HEADER, HeaderValue::from_static("70"));
        assert_eq!(Told::of(&h).calls_left(50), Ok(50), "never more");
    }

    #[test]
    fn depth_must_be_a_number() {
        let mut h = HeaderMap::new();
        assert_eq!(Told::of(&h).depth(), Ok(0));
        h.insert(DEPTH_HEADER, HeaderValue::from_static("7"));
        assert_eq!(Told::of(&h).depth(), Ok(7));
        h.insert(DEPTH_HEADER, HeaderValue::from_static("x"));
        assert!(Told::of(&h).depth().is_err());
    }

    #[test]
    fn numbers_are_read_as_str_trim_and_parse_read_them() {
        fn as_before<N: std::str::FromStr>(value: &HeaderValue) -> Option<N> {
            value.to_str().ok()?.trim().parse().ok()
        }
        let said: [&[u8]; 24] = [
            b"7",
            b" 7\t",
            b"\t 12 ",
            b"+7",
            b"-7",
            b"0x7",
            b"7 7",
            b"",
            b"  ",
            b"+",
            b"++7",
            b"7+",
            b"007",
            b"4294967295",
            b"4294967296",
            b"18446744073709551615",
            b"18446744073709551616",
            b"99999999999999999999",
            "\u{a0}7".as_bytes(),
            "7\u{85}".as_bytes(),
            "\u{2003}7".as_bytes(),
            "\u{ff17}".as_bytes(),
            b"\xff7",
            b"7\x80",
        ];
        for bytes in said {
            let value = HeaderValue::from_bytes(bytes).unwrap();
            let shown = String::from_utf8_lossy(bytes);
            let read = number::<u32>(Some(&value), DEPTH).ok().flatten();
            assert_eq!(read, as_before::<u32>(&value), "u32 {shown:?}");
            let wide = number::<u64>(Some(&value), DEPTH).ok().flatten();
            assert_eq!(wide, as_before::<u64>(&value), "u64 {shown:?}");
            let mut h = HeaderMap::new();
            h.insert(DEPTH_HEADER, value);
            assert_eq!(Told::of(&h).depth().ok(), read, "as the depth {shown:?}");
        }
    }
}
