//! Prometheus metrics of one service, served at `/metrics` in the text
//! format: inbound requests and their latency, outbound hops by protocol and
//! outcome, requests in flight, injected faults and refused requests.
//!
//! Recorded at the edges from the finished report, so the executor stays
//! free of bookkeeping.

use std::sync::atomic::AtomicI64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::behavior::Injection;
use crate::plan::Protocol;
use crate::report::{InboundProtocol, Outcome, Report};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `http/1.0`, `http/1.1`, `h2c` or `grpc`, as the report says it.
    protocol: &'static str,
    /// `plan`, `health`, `ready`, `metrics`, `ui`, `grpc`.
    route: &'static str,
    /// HTTP status, or gRPC code for gRPC calls.
    status: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HopLabels {
    protocol: &'static str,
    outcome: &'static str,
}

/// Rewrites an OpenMetrics exposition as Prometheus text 0.0.4.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_owned());
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The kind of an injected directive (`Injection::kind`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// The metrics of one service and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<ProtocolLabel, Histogram, fn() -> Histogram>,
    hops: Family<HopLabels, Counter>,
    hop_seconds: Family<HopLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge<i64, AtomicI64>,
    injected: Family<KindLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    grpc_channels: Gauge<i64, AtomicI64>,
    connections: Gauge<i64, AtomicI64>,
    tls_failures: Family<ReasonLabel, Counter>,
    /// The series of each inbound protocol and of each hop protocol and
    /// outcome, taken from their families on first use: a family hashes its
    /// labels under a lock on every lookup, and these are counted on every
    /// request and hop. (Series appear in `/metrics` once used, as before.)
    request_seconds_by_protocol: [OnceLock<Histogram>; InboundProtocol::ALL.len()],
    hop_series: [[OnceLock<(Counter, Histogram)>; Outcome::ALL.len()]; Protocol::ALL.len()],
    /// The request counter most requests are counted in, by inbound
    /// protocol: a plan that succeeded (200, or gRPC OK), taken from its
    /// family on first use as the series above are.
    plan_ok_by_protocol: [OnceLock<Counter>; InboundProtocol::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("servicemock");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            Family::<ProtocolLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
        let hops = Family::<HopLabels, Counter>::default();
        let hop_seconds = Family::<HopLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let injected = Family::<KindLabel, Counter>::default();
        let refused = Family::<ReasonLabel, Counter>::default();
        let grpc_channels = Gauge::<i64, AtomicI64>::default();
        let connections = Gauge::<i64, AtomicI64>::default();
        let tls_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "Inbound TLS handshakes that failed, by reason (no_client_certificate, bad_client_certificate, bad_hello, timeout, ...)",
            tls_failures.clone(),
        );
        registry.register(
            "grpc_channels",
            "gRPC channels the hop clients keep open (bounded, least recently used dropped)",
            grpc_channels.clone(),
        );
        registry.register(
            "open_connections",
            "Inbound connections open now (bounded by --max-connections)",
            connections.clone(),
        );
        registry.register(
            "requests",
            "Inbound requests by protocol, route class and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Inbound request latency, hops included",
            request_seconds.clone(),
        );
        registry.register(
            "hops",
            "Outbound hop calls by protocol and outcome",
            hops.clone(),
        );
        registry.register(
            "hop_duration_seconds",
            "Outbound hop latency by protocol and outcome",
            hop_seconds.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being served now",
            in_flight.clone(),
        );
        registry.register(
            "injected_faults",
            "Behaviour directives that took effect, by kind",
            injected.clone(),
        );
        registry.register(
            "refused_requests",
            "Requests refused by a limit, by reason",
            refused.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            hops,
            hop_seconds,
            in_flight,
            injected,
            refused,
            grpc_channels,
            connections,
            tls_failures,
            request_seconds_by_protocol: Default::default(),
            hop_series: Default::default(),
            plan_ok_by_protocol: Default::default(),
        }
    }
}

/// Why a request was refused, for `servicemock_refused_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `--max-concurrent`.
    Overloaded,
    /// Past `--max-depth`.
    Loop,
    /// A path, plan or directive that does not parse, or over a size limit.
    BadRequest,
}

/// The route class of an HTTP request that runs a plan, as requests are
/// counted (`server::front`).
pub const PLAN_ROUTE: &str = "plan";
/// The route class of every gRPC request.
pub const GRPC_ROUTE: &str = "grpc";

impl Metrics {
    /// Counts one finished inbound request.
    pub fn request(
        &self,
        protocol: InboundProtocol,
        route: &'static str,
        status: i32,
        elapsed: Duration,
    ) {
        let labels = || RequestLabels {
            protocol: protocol.as_str(),
            route,
            status,
        };
        // The route class and status of a plan that succeeded.
        let (plan, ok) = if protocol == InboundProtocol::Grpc {
            (GRPC_ROUTE, 0)
        } else {
            (PLAN_ROUTE, 200)
        };
        if route == plan && status == ok {
            self.plan_ok_by_protocol[protocol as usize]
                .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                .inc();
        } else {
            self.requests.get_or_create(&labels()).inc();
        }
        self.request_seconds_by_protocol[protocol as usize]
            .get_or_init(|| {
                let label = ProtocolLabel {
                    protocol: protocol.as_str(),
                };
                self.request_seconds.get_or_create(&label).clone()
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the hops of a finished report (its own level only: deeper
    /// levels are counted by the services that made them) and the
    /// directives that took effect on the request.
    pub fn report(&self, report: &Report, injected: &[Injection]) {
        for hop in report.forwards() {
            let (count, seconds) = self.hop_series[hop.protocol as usize][hop.result as usize]
                .get_or_init(|| {
                    let labels = HopLabels {
                        protocol: hop.protocol.as_str(),
                        outcome: hop.result.as_str(),
                    };
                    (
                        self.hops.get_or_create(&labels).clone(),
                        self.hop_seconds.get_or_create(&labels).clone(),
                    )
                });
            count.inc();
            seconds.observe(hop.duration_ms / 1000.0);
        }
        for injection in injected {
            let kind = injection.kind();
            self.injected.get_or_create(&KindLabel { kind }).inc();
        }
    }

    /// Counts a connection dropped on purpose (`x-mock-reset`).
    pub fn reset(&self) {
        self.injected
            .get_or_create(&KindLabel { kind: "reset" })
            .inc();
    }

    /// Counts a refused request.
    pub fn refused(&self, why: Refusal) {
        let reason = match why {
            Refusal::Overloaded => "overloaded",
            Refusal::Loop => "loop",
            Refusal::BadRequest => "bad_request",
        };
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Serves what became of the spans `counts` counts (`--otlp-endpoint`).
    pub fn count_spans(&mut self, counts: &crate::spans::SpanCounts) {
        self.registry.register(
            "spans_exported",
            "Spans sent to the OTLP collector",
            counts.exported.clone(),
        );
        self.registry.register(
            "spans_dropped",
            "Spans not sent, by reason: queue_full (the collector is slower than the requests), export_failed (down, refused or timed out)",
            counts.dropped.clone(),
        );
    }

    /// Counts an inbound TLS handshake that failed.
    pub fn tls_handshake_failed(&self, reason: &'static str) {
        self.tls_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Marks a request as started until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Marks a stream as started until the guard is dropped.
    pub fn in_flight_owned(&self) -> OwnedInFlight {
        self.in_flight.inc();
        OwnedInFlight(self.in_flight.clone())
    }

    /// Sets how many gRPC channels are open, before an encode.
    pub fn set_grpc_channels(&self, count: usize) {
        self.grpc_channels
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The gauge of open inbound connections, for the listener to keep.
    pub fn connections(&self) -> &Gauge<i64, AtomicI64> {
        &self.connections
    }

    /// The Prometheus text format 0.0.4 (what a scraper gets unless it
    /// asks for OpenMetrics): counter families are named with their
    /// `_total` samples, and there is no `# EOF` or `# UNIT`.
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }

    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight<'a>(&'a Gauge<i64, AtomicI64>);

/// [`InFlight`] that may outlive the borrow: a stream is in flight until
/// its body ends.
pub struct OwnedInFlight(Gauge<i64, AtomicI64>);

impl Drop for OwnedInFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_list_every_metric() {
        let m = Metrics::default();
        m.request(
            InboundProtocol::Http11,
            "plan",
            200,
            Duration::from_millis(1),
        );
        let mut report = crate::report::fixtures::named("a", vec![]);
        report.parallel_forwards = crate::report::fixtures::named(
            "a",
            vec![vec![crate::report::fixtures::hop("http", 0.0, 1.0, None)]],
        )
        .parallel_forwards;
        m.report(&report, &[]);
        m.reset();
        m.refused(Refusal::Loop);
        m.tls_handshake_failed("timeout");
        m.set_grpc_channels(1);
        m.connections().inc();
        let _busy = m.in_flight();
        let readme = include_str!("../docs/report.md");
        let text = m.encode_text();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(names.len(), 10, "{names:?}");
        for name in names {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "docs/report.md's metrics table lacks {name}"
            );
        }
    }

    #[test]
    fn series_tables_are_indexed_by_each_word_in_order() {
        // The tables index by discriminant: each list of words must name
        // every variant, in declaration order.
        for (i, p) in Protocol::ALL.into_iter().enumerate() {
            assert_eq!(p as usize, i);
        }
        for (i, o) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(o as usize, i);
        }
        for (i, p) in InboundProtocol::ALL.into_iter().enumerate() {
            assert_eq!(p as usize, i);
        }
    }

    #[test]
    fn hops_and_requests_are_counted_under_their_labels() {
        let metrics = Metrics::default();
        let hop = |protocol, result| crate::report::Forward {
            protocol,
            result,
            duration_ms: 2.0,
            ..Default::default()
        };
        let report = crate::report::fixtures::named(
            "a",
            vec![vec![
                hop(Protocol::Grpc, Outcome::Timeout),
                hop(Protocol::Http, Outcome::Ok),
                hop(Protocol::Grpc, Outcome::Timeout),
            ]],
        );
        metrics.report(&report, &[]);
        metrics.request(InboundProtocol::H2c, "plan", 200, Duration::from_millis(3));
        let text = metrics.encode();
        for line in [
            "servicemock_hops_total{protocol=\"grpc\",outcome=\"timeout\"} 2",
            "servicemock_hops_total{protocol=\"http\",outcome=\"ok\"} 1",
            "servicemock_hop_duration_seconds_count{protocol=\"grpc\",outcome=\"timeout\"} 2",
            "servicemock_request_duration_seconds_count{protocol=\"h2c\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("outcome=\"dns\""), "unused series stay out");
    }
}
