//! The trace a request arrived in, and the trace headers a hop carries.
//!
//! Read: W3C `traceparent`/`tracestate` first, else B3 (the single `b3`
//! header, else the `x-b3-*` ones). Written: in every format that arrived,
//! each with the hop's own client span id, so that the next service's
//! server span — and Envoy's, in a mesh — nests under the hop's; when none
//! arrived, W3C and B3 multi (what Envoy's Zipkin tracer reads) both.
//!
//! W3C is the SDK's propagator. B3 is written here: the only crate that
//! had one (opentelemetry-zipkin) is deprecated whole, and B3 is two
//! header layouts of hex ids and a sampling flag.

use bytes::Bytes;
use http::header::InvalidHeaderValue;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::hex::Hex;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const B3_SINGLE: HeaderName = HeaderName::from_static("b3");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_PARENT: HeaderName = HeaderName::from_static("x-b3-parentspanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which trace formats a request carried, so its hops carry the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub w3c: bool,
    pub b3_single: bool,
    pub b3_multi: bool,
}

impl Formats {
    /// The formats `headers` carry; W3C and B3 multi when none.
    pub fn of(headers: &HeaderMap) -> Formats {
        let carried = Carried::of(headers);
        let formats = Formats {
            w3c: carried.w3c.is_some(),
            b3_single: carried.b3_single.is_some(),
            b3_multi: carried.b3_multi.is_some(),
        };
        if formats.w3c || formats.b3_single || formats.b3_multi {
            formats
        } else {
            Formats {
                w3c: true,
                b3_single: false,
                b3_multi: true,
            }
        }
    }
}

/// The first value of each header that names a request's trace, found in
/// one pass over its names rather than by three hashed look-ups of names a
/// request mostly does not carry.
#[derive(Default)]
struct Carried<'a> {
    /// `traceparent`.
    w3c: Option<&'a HeaderValue>,
    /// `b3`.
    b3_single: Option<&'a HeaderValue>,
    /// `x-b3-traceid`.
    b3_multi: Option<&'a HeaderValue>,
}

impl<'a> Carried<'a> {
    fn of(headers: &'a HeaderMap) -> Carried<'a> {
        let mut carried = Carried::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "traceparent" => &mut carried.w3c,
                "b3" => &mut carried.b3_single,
                "x-b3-traceid" => &mut carried.b3_multi,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        carried
    }
}

/// The remote parent `headers` name, if any (an empty context otherwise).
pub fn extract(headers: &HeaderMap) -> Context {
    let from = HeaderExtractor(headers);
    let w3c = TraceContextPropagator::new().extract(&from);
    if w3c.span().span_context().is_valid() {
        return w3c;
    }
    match b3_single(headers).or_else(|| b3_multi(headers)) {
        Some(parent) => Context::new().with_remote_span_context(parent),
        None => Context::new(),
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A B3 trace id: 16 or 32 hex digits (a 64-bit id is the low half).
fn b3_trace_id(text: &str) -> Option<TraceId> {
    let ok = matches!(text.len(), 16 | 32) && text.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| TraceId::from_hex(text).ok())
        .flatten()
        .filter(|id| *id != TraceId::INVALID)
}

fn b3_span_id(text: &str) -> Option<SpanId> {
    let ok = text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| SpanId::from_hex(text).ok())
        .flatten()
        .filter(|id| *id != SpanId::INVALID)
}

/// B3's sampling state: `1`/`true`/`d` (debug) sampled, `0`/`false` not;
/// absent means "decide here", which servicemock's sampler does as for a
/// sampled parent.
fn b3_sampled(text: Option<&str>) -> Option<TraceFlags> {
    match text {
        None | Some("1" | "true" | "d") => Some(TraceFlags::SAMPLED),
        Some("0" | "false") => Some(TraceFlags::default()),
        Some(_) => None,
    }
}

fn remote(trace: TraceId, span: SpanId, flags: TraceFlags) -> SpanContext {
    SpanContext::new(trace, span, flags, true, TraceState::default())
}

/// `b3: TRACEID-SPANID[-SAMPLED[-PARENTSPANID]]`.
fn b3_single(headers: &HeaderMap) -> Option<SpanContext> {
    let mut parts = text(headers, &B3_SINGLE)?.split('-');
    let trace = b3_trace_id(parts.next()?)?;
    let span = b3_span_id(parts.next()?)?;
    let flags = b3_sampled(parts.next())?;
    Some(remote(trace, span, flags))
}

/// `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`, `x-b3-flags: 1` (debug).
fn b3_multi(headers: &HeaderMap) -> Option<SpanContext> {
    let trace = b3_trace_id(text(headers, &B3_TRACE_ID)?)?;
    let span = b3_span_id(text(headers, &B3_SPAN_ID)?)?;
    let flags = if text(headers, &B3_FLAGS) == Some("1") {
        TraceFlags::SAMPLED
    } else {
        b3_sampled(text(headers, &B3_SAMPLED))?
    };
    Some(remote(trace, span, flags))
}

/// The trace headers a hop's headers may carry from its request (they are
/// propagated, [`crate::exec::context::DEFAULT_PROPAGATED`]), replaced by
/// [`inject`].
const TRACE_HEADERS: [HeaderName; 8] = [
    TRACEPARENT,
    TRACESTATE,
    B3_SINGLE,
    B3_TRACE_ID,
    B3_SPAN_ID,
    B3_PARENT,
    B3_SAMPLED,
    B3_FLAGS,
];

/// Replaces the trace headers in `headers` with the span of `cx` (a hop's
/// client span, child of `parent_span_id`), in `formats`.
///
/// Written here rather than by the SDK's W3C propagator: it formats the
/// ids through `fmt` and names each header by parsing a `&str`, which cost
/// more than the rest of a hop's span (`bench/instructions`, `spans`).
/// W3C's form is the propagator's: `00-TRACEID-SPANID-FLAGS`, the flags
/// only the sampled bit, and `tracestate` only when it says something.
pub fn inject(cx: &Context, parent_span_id: &str, formats: Formats, headers: &mut HeaderMap) {
    // One pass over the names: a request mostly carries none of them.
    if headers.keys().any(|name| TRACE_HEADERS.contains(name)) {
        for name in TRACE_HEADERS {
            headers.remove(name);
        }
    }
    let span = cx.span();
    let context = span.span_context();
    if !context.is_valid() {
        return;
    }
    let trace = Hex::<32>::of(context.trace_id().to_bytes());
    let id = Hex::<16>::of(context.span_id().to_bytes());
    let sampled = context.is_sampled();
    let mut put = |name: HeaderName, value: Result<HeaderValue, InvalidHeaderValue>| {
        if let Ok(value) = value {
            headers.insert(name, value);
        }
    };
    // A value joined here is handed to the header as it is, not copied again.
    let joined = |parts: &[&[u8]]| HeaderValue::from_maybe_shared(Bytes::from(parts.concat()));
    if formats.w3c {
        let flags: &[u8] = if sampled { b"01" } else { b"00" };
        put(
            TRACEPARENT,
            joined(&[b"00-", trace.as_bytes(), b"-", id.as_bytes(), b"-", flags]),
        );
        // W3C says a vendor SHOULD avoid sending an empty `tracestate`.
        let state = context.trace_state().header();
        if !state.is_empty() {
            put(
                TRACESTATE,
                HeaderValue::from_maybe_shared(Bytes::from(state)),
            );
        }
    }
    let sampled = if sampled { "1" } else { "0" };
    if formats.b3_single {
        put(
            B3_SINGLE,
            joined(&[
                trace.as_bytes(),
                b"-",
                id.as_bytes(),
                b"-",
                sampled.as_bytes(),
                b"-",
                parent_span_id.as_bytes(),
            ]),
        );
    }
    if formats.b3_multi {
        put(B3_TRACE_ID, HeaderValue::from_bytes(trace.as_bytes()));
        put(B3_SPAN_ID, HeaderValue::from_bytes(id.as_bytes()));
        put(B3_PARENT, HeaderValue::from_str(parent_span_id));
        put(B3_SAMPLED, Ok(HeaderValue::from_static(sampled)));
    }
}

/// The trace id a request names in its headers (W3C, else B3), when spans
/// are off: the report still shows which trace it belongs to.
pub fn carried_trace_id(headers: &HeaderMap) -> Option<String> {
    let Carried {
        w3c,
        b3_single,
        b3_multi,
    } = Carried::of(headers);
    if let Some(parent) = w3c.and_then(|v| v.to_str().ok()) {
        return parent
            .split('-')
            .nth(1)
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned);
    }
    let b3 = b3_single
        .and_then(|v| v.to_str().ok())
        .and_then(|single| single.split('-').next())
        .or_else(|| b3_multi.and_then(|v| v.to_str().ok()))?;
    let ok = matches!(b3.len(), 16 | 32) && b3.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| b3.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn child() -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ))
    }

    #[test]
    fn reads_w3c_then_b3() {
        let w3c = headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        let cx = extract(&w3c);
        assert_eq!(cx.span().span_context().trace_id().to_string(), TRACE);
        let single = headers(&[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")]);
        assert_eq!(
            extract(&single)
                .span()
                .span_context()
                .trace_id()
                .to_string(),
            TRACE
        );
        let multi = headers(&[
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(
            extract(&multi).span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
        assert!(!extract(&HeaderMap::new()).span().span_context().is_valid());
        // A 64-bit trace id is the low half; a sampling-only b3 names no parent.
        let short = headers(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-0")]);
        let cx = extract(&short);
        let parent = cx.span().span_context().clone();
        assert_eq!(
            parent.trace_id().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert!(!parent.is_sampled());
        assert!(!extract(&headers(&[("b3", "1")]))
            .span()
            .span_context()
            .is_valid());
        let bad = headers(&[("x-b3-traceid", "xyz"), ("x-b3-spanid", "00f067aa0ba902b7")]);
        assert!(!extract(&bad).span().span_context().is_valid());
        assert_eq!(carried_trace_id(&multi).as_deref(), Some(TRACE));
        assert_eq!(
            carried_trace_id(&headers(&[("traceparent", "00-zz-1-01")])),
            None
        );
    }

    #[test]
    fn the_carried_trace_id_prefers_w3c_and_reads_single_b3() {
        let both = headers(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ]);
        assert_eq!(carried_trace_id(&both).as_deref(), Some(TRACE));
        let single = headers(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")]);
        assert_eq!(
            carried_trace_id(&single).as_deref(),
            Some("a3ce929d0e0e4736")
        );
        assert_eq!(carried_trace_id(&headers(&[("x-other", "1")])), None);
    }

    #[test]
    fn w3c_headers_are_as_the_sdks_propagator_writes_them() {
        use opentelemetry_http::HeaderInjector;
        let w3c = Formats {
            w3c: true,
            b3_single: false,
            b3_multi: false,
        };
        let with_state = TraceState::from_key_value([("vendor", "x"), ("other", "y")]).unwrap();
        for (trace, span, flags, state) in [
            (
                TRACE,
                "00f067aa0ba902b7",
                TraceFlags::SAMPLED,
                TraceState::default(),
            ),
            (
                "000000000000000000000000000000ff",
                "0a0b0c0d0e0f1011",
                TraceFlags::default(),
                with_state,
            ),
        ] {
            let cx = Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_hex(trace).unwrap(),
                SpanId::from_hex(span).unwrap(),
                flags,
                false,
                state,
            ));
            let mut ours = HeaderMap::new();
            inject(&cx, "1111111111111111", w3c, &mut ours);
            let mut sdk = HeaderMap::new();
            TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut sdk));
            if sdk.get(TRACESTATE).is_some_and(|v| v.is_empty()) {
                sdk.remove(TRACESTATE);
            }
            assert_eq!(ours, sdk);
        }
    }

    #[test]
    fn ids_are_written_as_their_own_display_writes_them() {
        for trace in [
            TRACE,
            "000000000000000000000000000000ff",
            "f0000000000000000000000000000001",
        ] {
            let id = TraceId::from_hex(trace).unwrap();
            assert_eq!(Hex::<32>::of(id.to_bytes()).as_str(), id.to_string());
        }
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(Hex::<16>::of(span.to_bytes()).as_str(), span.to_string());
    }

    #[test]
    fn no_empty_tracestate_is_sent() {
        let arrived = headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        let mut out = arrived.clone();
        inject(
            &child(),
            "00f067aa0ba902b7",
            Formats::of(&arrived),
            &mut out,
        );
        assert!(out.get("traceparent").is_some());
        assert!(out.get("tracestate").is_none(), "{out:?}");
        let with_state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        let cx = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            with_state,
        ));
        inject(&cx, "00f067aa0ba902b7", Formats::of(&arrived), &mut out);
        assert_eq!(out.get("tracestate").unwrap(), "vendor=x");
    }

    #[test]
    fn writes_what_arrived_with_the_new_span() {
        let arrived = headers(&[
            ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-1"),
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "1111111111111111"),
            ("x-b3-parentspanid", "2222222222222222"),
        ]);
        let formats = Formats::of(&arrived);
        assert_eq!(
            (formats.w3c, formats.b3_single, formats.b3_multi),
            (false, true, true)
        );
        let mut out = arrived.clone();
        inject(&child(), "3333333333333333", formats, &mut out);
        assert!(out.get("traceparent").is_none());
        assert_eq!(
            out["b3"],
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-3333333333333333"
        );
        assert_eq!(out["x-b3-spanid"], "00f067aa0ba902b7");
        assert_eq!(out["x-b3-parentspanid"], "3333333333333333");
        let fresh = Formats::of(&HeaderMap::new());
        let mut out = HeaderMap::new();
        inject(&child(), "3333333333333333", fresh, &mut out);
        assert_eq!(
            out["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(out["x-b3-traceid"], TRACE);
        assert_eq!(out["x-b3-sampled"], "1");
    }
}
