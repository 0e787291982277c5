//! The report of this service's own level before any hop ran: who
//! answers, the request as received, the attempt it answers and the trace
//! it is part of; and the time forms every level writes.

use std::time::{Duration, SystemTime};

use super::{Admission, Inbound};
use crate::config::Identity;
use crate::report::{Forwards, Report, RequestInfo};

/// `service version`, as a report's message names its writer.
pub(super) struct Who<'a>(pub(super) &'a Identity);

impl Who<'_> {
    /// `service version` followed by `rest`, without the formatting
    /// machinery: every level writes one such message per request.
    pub(super) fn then(&self, rest: &str) -> String {
        let Identity {
            service, version, ..
        } = self.0;
        // Room for what [`Who::called`] adds too.
        let mut text = String::with_capacity(service.len() + version.len() + rest.len() + 32);
        text.push_str(service);
        text.push(' ');
        text.push_str(version);
        text.push_str(rest);
        text
    }

    /// `service version called N hop(s), all ok` (or `F failed`), the
    /// message of a level that called someone, written as [`Who::then`].
    pub(super) fn called(&self, hops: usize, failed: usize) -> String {
        let mut count = itoa::Buffer::new();
        let mut text = self.then(" called ");
        text.push_str(count.format(hops));
        text.push_str(" hop(s), ");
        if failed == 0 {
            text.push_str("all ok");
        } else {
            text.push_str(count.format(failed));
            text.push_str(" failed");
        }
        text
    }
}

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.service, self.0.version)
    }
}

/// The report of a request before any hop ran: identity, request info,
/// the attempt it answers and the trace it is part of. Boxed where it is
/// made: a `Report` is 544 bytes, and returned by value through the
/// executor, the pipeline and the edge it was copied at every step.
pub(super) fn base_report(
    identity: &Identity,
    inbound: &Inbound,
    request_id: String,
    admission: &Admission,
    trace: Option<&crate::spans::Trace>,
) -> Box<Report> {
    // The request's own header map, shared: its lines are written from it.
    let request_info = RequestInfo::received(inbound.request_line.clone(), inbound.headers.clone());
    Box::new(Report {
        received_date: rfc3339(inbound.received),
        message: String::new(),
        request_info,
        service: identity.service.clone(),
        version: identity.version.clone(),
        host: identity.host.clone(),
        namespace: identity.namespace.clone(),
        pod_ip: identity.pod_ip.clone(),
        protocol: inbound.protocol,
        request_id,
        duration_ms: 0.0,
        parallel_forwards: Forwards::default(),
        injected: Vec::new(),
        padding: String::new(),
        timed_out: false,
        attempt: admission.attempt,
        try_number: admission.try_number,
        stream_message: 0,
        plan: String::new(),
        tls: inbound.tls.clone(),
        peer: inbound.peer.clone(),
        method: inbound.method.as_ref().map(method_text).unwrap_or_default(),
        body_bytes: inbound.body.as_ref().map_or(0, |(len, _)| *len),
        body_sha256: inbound
            .body
            .as_ref()
            .map(|(_, sha)| sha.clone())
            .unwrap_or_default(),
        trace_id: match trace {
            Some(trace) => trace.trace_id().to_owned(),
            None => crate::spans::propagate::carried_trace_id(&inbound.headers).unwrap_or_default(),
        },
        span_id: trace.map(|t| t.span_id().to_owned()).unwrap_or_default(),
        trace_url: String::new(),
    })
}

/// A method as the report says it: HTTP's own methods as constants, an
/// extension method copied.
fn method_text(method: &http::Method) -> std::borrow::Cow<'static, str> {
    const OWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    let text = method.as_str();
    match OWN.iter().find(|own| **own == text) {
        Some(own) => std::borrow::Cow::Borrowed(own),
        None => std::borrow::Cow::Owned(text.to_owned()),
    }
}

/// RFC 3339 in UTC with nanoseconds. The date and time to the second are
/// formatted once per second (per thread), the fraction for each call.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let Ok(since) = at.duration_since(SystemTime::UNIX_EPOCH) else {
        return String::new();
    };
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != since.as_secs() {
            let whole = at - Duration::from_nanos(u64::from(since.subsec_nanos()));
            let text = time::OffsetDateTime::from(whole)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            *cached = (since.as_secs(), text.trim_end_matches('Z').to_owned());
        }
        // `.{:09}Z` without the formatting machinery.
        let mut fraction = *b".000000000Z";
        let mut nanos = since.subsec_nanos();
        for digit in fraction[1..10].iter_mut().rev() {
            *digit = b'0' + (nanos % 10) as u8;
            nanos /= 10;
        }
        let mut out = String::with_capacity(cached.1.len() + fraction.len());
        out.push_str(&cached.1);
        out.push_str(std::str::from_utf8(&fraction).unwrap_or_default());
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_said_as_they_came() {
        use std::borrow::Cow;
        for method in [http::Method::GET, http::Method::PATCH, http::Method::TRACE] {
            let said = method_text(&method);
            assert!(matches!(said, Cow::Borrowed(_)), "{method} a constant");
            assert_eq!(said, method.as_str());
        }
        let purge = http::Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_text(&purge), "PURGE");
        let lower = http::Method::from_bytes(b"get").unwrap();
        assert_eq!(method_text(&lower), "get", "methods are case-sensitive");
    }

    #[test]
    fn messages_say_who_called_how_many_and_how_it_went() {
        let identity = Identity::named("reviews", "v2");
        let who = Who(&identity);
        assert_eq!(who.called(1, 0), "reviews v2 called 1 hop(s), all ok");
        assert_eq!(who.called(12, 3), "reviews v2 called 12 hop(s), 3 failed");
        assert_eq!(who.called(0, 0), format!("{who} called 0 hop(s), all ok"));
        assert_eq!(who.then(" answered"), "reviews v2 answered");
    }

    #[test]
    fn dates_carry_nanoseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_796_000_000, 7);
        assert_eq!(rfc3339(at), "2026-11-30T00:53:20.000000007Z");
    }
}
