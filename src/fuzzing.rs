//! The properties the fuzz targets check, one function per input a service
//! reads from the network: the @-path, a JSON plan, a proto `CallRequest`,
//! behaviour directives, durations and `grpc-timeout`, a report received
//! from a downstream (JSON, or a failed call's status details), and Envoy's
//! `x-forwarded-client-cert` header.
//!
//! `fuzz/` (cargo-fuzz, nightly) drives these with generated inputs; the
//! test `tests/fuzz_corpus.rs` replays every file of `fuzz/corpus/` through
//! them on stable, so a crash once found stays fixed. Each function panics
//! only when a property is broken: no input may panic, and where a round
//! trip exists it must give back what went in.

use crate::guard::json::{from_json_unbounded, json_nesting, MAX_REPORT_NESTING};
use crate::plan::json::{plan_from_json, request_json};
use crate::plan::path::{parse_path, render_path};
use crate::plan::proto::{plan_from_request, request_for};
use crate::plan::Limits;
use crate::report::{Received, Report};

/// A property one fuzz target checks on one input.
pub type Property = fn(&[u8]);

/// The fuzz targets, by the name of their corpus folder.
pub const TARGETS: [(&str, Property); 8] = [
    ("path", path),
    ("json_plan", json_plan),
    ("proto_request", proto_request),
    ("directives", directives),
    ("durations", durations),
    ("grpc_timeout", grpc_timeout),
    ("received_report", received_report),
    ("xfcc", xfcc),
];

/// Any `x-forwarded-client-cert` value: reading never panics; it is read
/// whole or kept as received and marked (never both, never neither); at
/// most [`crate::caller::xfcc::MAX_ELEMENTS`] elements are kept, the
/// principal is the last one's, and what is kept of an unreadable header
/// is bounded.
pub fn xfcc(data: &[u8]) {
    use crate::caller::xfcc;
    let peer = xfcc::peer(data);
    assert_eq!(peer.source, crate::caller::FROM_XFCC);
    // An unreadable header is kept (an empty one has nothing to keep).
    assert!(peer.error.is_empty() || !peer.unparsed.is_empty() || data.is_empty());
    assert!(peer.unparsed.is_empty() || !peer.error.is_empty());
    if peer.error.is_empty() {
        assert!(peer.elements.len() <= xfcc::MAX_ELEMENTS);
        assert!(!peer.elements.is_empty(), "read whole yet no element");
        let last = peer
            .elements
            .last()
            .map(|e| e.uri.clone())
            .unwrap_or_default();
        assert!(peer.principal.is_empty() || last.contains(&peer.principal));
    } else {
        assert!(peer.elements.is_empty());
        assert!(peer.unparsed.chars().count() <= 513);
    }
}

/// Any request target: parsing never panics, and a plan that parses and
/// passes the size limit renders back to a path that parses to the same plan.
pub fn path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    // As the product does: a plan is sized before anything walks all of it
    // (a wide path shares its levels, so it can stand for 64^32 hops).
    if let Ok(plan) = parse_path(text, &limits).and_then(|p| p.check_size(&limits).map(|()| p)) {
        if let Ok(rendered) = render_path(&plan) {
            let back = parse_path(&rendered, &limits)
                .unwrap_or_else(|e| panic!("{rendered:?} does not parse again: {e}"));
            assert_eq!(back, plan, "path round trip of {text:?} via {rendered:?}");
        }
    }
}

/// Any POST body: a plan that is accepted survives JSON and proto.
pub fn json_plan(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(plan) = plan_from_json(data, &limits) {
        let json = request_json(&plan).expect("a plan always encodes");
        let again = plan_from_json(&json, &limits)
            .unwrap_or_else(|e| panic!("re-encoded JSON refused: {e}"));
        assert_eq!(again, plan, "JSON round trip");
        let via_proto = plan_from_request(&request_for(&plan), &limits)
            .unwrap_or_else(|e| panic!("re-encoded proto refused: {e}"));
        assert_eq!(via_proto, plan, "proto round trip");
    }
}

/// Any gRPC message body: decoding is guarded, and an accepted plan
/// survives re-encoding.
pub fn proto_request(data: &[u8]) {
    let limits = Limits::default();
    let Ok(request) = crate::guard::proto::decode_guarded::<crate::pb::CallRequest>(data) else {
        return;
    };
    if let Ok(plan) = plan_from_request(&request, &limits) {
        let again = plan_from_request(&request_for(&plan), &limits)
            .unwrap_or_else(|e| panic!("re-encoded plan refused: {e}"));
        assert_eq!(again, plan, "proto round trip");
    }
}

/// Any directive value, under every directive name.
pub fn directives(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in crate::behavior::DIRECTIVES {
        let _ = crate::behavior::check_directive(name, text);
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(text) {
            headers.insert(name, value);
            if let Ok(d) = crate::behavior::Directives::from_headers(
                &headers,
                std::time::Duration::from_secs(10),
            ) {
                let _ = d.decide(&crate::behavior::Here::ANYWHERE, &mut rand::rng());
            }
        }
    }
}

/// Any duration a flag or directive may carry.
pub fn durations(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::parse_duration(text);
    }
}

/// Any `grpc-timeout` header, whatever its bytes (one once panicked).
pub fn grpc_timeout(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::exec::context::parse_grpc_timeout(&text);
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        headers.insert("grpc-timeout", value.clone());
        headers.insert(crate::exec::context::TIMEOUT_HEADER, value);
        let _ = crate::exec::context::Told::of(&headers).budget(std::time::Duration::from_secs(30));
    }
}

/// Any answer from a downstream: as a JSON report (measured before parsing,
/// then shown in every view) and as a failed call's status details.
pub fn received_report(data: &[u8]) {
    // As a caller reads it: judged from the text, passed on and re-indented
    // from the text, and parsed whole only when looked at, which must then
    // succeed.
    if let Ok((received, _)) = Received::read(bytes::Bytes::copy_from_slice(data)) {
        serde_json::to_vec(&received).expect("a received report passes on as it came");
        let _ = crate::report::pretty::to_vec(&received);
        let text = std::str::from_utf8(data).expect("read checks UTF-8");
        if let Err(e) = from_json_unbounded::<Report>(text) {
            panic!("a report read when it arrived does not parse whole: {e}");
        }
    }
    if json_nesting(data) <= MAX_REPORT_NESTING {
        // The scanner that judges reports holds any text to JSON's grammar
        // as serde_json does.
        if let Ok(text) = std::str::from_utf8(data) {
            let mut scan = crate::guard::scan::Scan::new(text);
            let scanned = scan.skip().is_ok() && scan.end().is_ok();
            let parsed = from_json_unbounded::<serde::de::IgnoredAny>(text).is_ok();
            assert_eq!(scanned, parsed, "the scanner and serde_json disagree");
        }
        if let Ok(report) = serde_json::from_slice::<Report>(data) {
            let _ = report.to_pretty_json();
            let _ = crate::report::text::render_tree(&report);
            let _ = crate::pb::CallResponse::from(&report);
        }
    }
    if let Some(response) = crate::report::proto::decode_status_details(data) {
        let report = Report::from(response);
        let _ = report.to_pretty_json();
        let _ = crate::report::trim::fit(crate::pb::CallResponse::from(&report), 8 * 1024);
    }
}
