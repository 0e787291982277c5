//! What many answers say together: for the call itself and for every
//! position of the tree (`1` the target, `1.1` the first hop it made, …),
//! the outcomes, statuses, who answered (service, version, pod), the
//! attempts, what was injected, and latency percentiles (HDR histograms).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::codes::grpc_code_name;
use crate::plan::Protocol;
use crate::report::{Forward, Outcome, Report};

/// Latencies are kept in microseconds, from 1 µs to 1 hour, 3 digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Counts of words (values seen), in a stable order.
pub type Counts = BTreeMap<String, u64>;

/// What was seen at one position of the tree.
#[derive(Debug, Clone)]
pub struct PositionTally {
    /// The host the hop at this position called, as written.
    pub target: String,
    /// Answers that reached this position.
    pub count: u64,
    pub results: Counts,
    /// HTTP status, or gRPC code name for gRPC hops; `-` when none came.
    pub statuses: Counts,
    /// Who answered: the service name, its version, its host (pod).
    pub services: Counts,
    pub versions: Counts,
    pub pods: Counts,
    /// `proxy`/`other` when something else than a servicemock answered.
    pub answered_by: Counts,
    pub attempts: Counts,
    pub injected: Counts,
    /// Who called the answering service, by principal (`-` when unknown).
    pub principals: Counts,
    /// How many tries the caller made (`[:retries=N]`; 1 when it does not
    /// retry), whatever the callee counted as `attempt`.
    pub tries: Counts,
    /// Microseconds.
    pub latency: Histogram<u64>,
}

impl PositionTally {
    fn new(target: String) -> PositionTally {
        PositionTally {
            target,
            count: 0,
            results: Counts::new(),
            statuses: Counts::new(),
            services: Counts::new(),
            versions: Counts::new(),
            pods: Counts::new(),
            answered_by: Counts::new(),
            attempts: Counts::new(),
            injected: Counts::new(),
            principals: Counts::new(),
            tries: Counts::new(),
            latency: histogram(),
        }
    }

    /// The counts of one field, by the name `--expect` uses.
    pub fn field(&self, name: &str) -> Option<&Counts> {
        Some(match name {
            "result" => &self.results,
            "status" => &self.statuses,
            "service" => &self.services,
            "version" => &self.versions,
            "pod" => &self.pods,
            "attempt" => &self.attempts,
            "principal" => &self.principals,
            "tries" => &self.tries,
            _ => return None,
        })
    }

    /// The fields `--expect` knows.
    pub const FIELDS: [&'static str; 8] = [
        "result",
        "status",
        "service",
        "version",
        "pod",
        "attempt",
        "principal",
        "tries",
    ];

    /// One hop that reached this position, and how long it took.
    fn observe(&mut self, hop: &Forward, micros: u64) {
        self.count += 1;
        bump(&mut self.results, hop.result.as_str());
        bump(&mut self.statuses, status_word(hop.protocol, hop.status));
        bump(&mut self.tries, hop.tries.len().max(1).to_string());
        if let Some(by) = &hop.answered_by {
            let word = match by.maker {
                crate::report::Maker::Unnamed => crate::report::Maker::Other,
                maker => maker,
            };
            bump(&mut self.answered_by, word.as_str());
        }
        let _ = self.latency.record(micros);
        if let Some(report) = hop.response.as_deref() {
            record_answerer(self, report);
        }
    }
}

/// Everything seen over a run.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Calls made and answered (or failed).
    pub requests: u64,
    /// Calls whose outcome was not `ok`.
    pub errors: u64,
    /// Microseconds, each call from when it was due to its answer.
    pub latency: Histogram<u64>,
    /// By position, in tree order.
    pub positions: BTreeMap<PositionKey, PositionTally>,
    /// With `--stream`: how many distinct pods answered each stream's
    /// messages (`1` when a proxy pins a stream to one pod).
    pub pods_per_stream: Counts,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            requests: 0,
            errors: 0,
            latency: histogram(),
            positions: BTreeMap::new(),
            pods_per_stream: Counts::new(),
        }
    }
}

/// A position (`1.2.1`) ordered as the tree is: by its numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PositionKey(pub Vec<u32>);

impl std::fmt::Display for PositionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.pad(&parts.join("."))
    }
}

impl PositionKey {
    /// Reads `1.2.1`.
    pub fn parse(text: &str) -> Option<PositionKey> {
        text.split('.')
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<u32>>>()
            .map(PositionKey)
    }
}

fn bump(counts: &mut Counts, key: impl Into<String>) {
    *counts.entry(key.into()).or_default() += 1;
}

fn status_word(protocol: Protocol, status: Option<i32>) -> String {
    match (protocol, status) {
        (_, None) => "-".to_owned(),
        (Protocol::Grpc | Protocol::Grpcs, Some(code)) => grpc_code_name(code).to_owned(),
        (_, Some(s)) => s.to_string(),
    }
}

impl Tally {
    /// Adds one call: the hop to the target, its answer, and `latency`
    /// measured by the caller.
    pub fn record(&mut self, call: &Forward, latency: Duration) {
        self.requests += 1;
        if call.result != Outcome::Ok {
            self.errors += 1;
        }
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self.latency.record(micros);
        // The call is position 1; every hop below it gets the position the
        // flat view gives it, and the time its caller measured.
        let mut hops = vec![(PositionKey(vec![1]), call, micros)];
        if let Some(report) = call.response.as_deref() {
            collect_hops(report, &mut vec![1], &mut hops);
        }
        for (key, hop, micros) in hops {
            self.positions
                .entry(key)
                .or_insert_with(|| PositionTally::new(hop.called_host().to_owned()))
                .observe(hop, micros);
        }
    }

    /// One stream's answers: each counted as a call, and how many pods
    /// answered them.
    pub fn record_stream(&mut self, answers: &[(Forward, Duration)]) {
        for (answer, took) in answers {
            self.record(answer, *took);
        }
        // A pod: its service, version and host, as the table lists them.
        let pods: std::collections::BTreeSet<(&str, &str, &str)> = answers
            .iter()
            .filter_map(|(a, _)| a.response.as_deref())
            .map(|r| (r.service.as_str(), r.version.as_str(), r.host.as_str()))
            .collect();
        bump(&mut self.pods_per_stream, pods.len().to_string());
    }

    /// When calls were made and none was answered (nobody listened, no
    /// name resolved, every call timed out): what they ended as, e.g.
    /// `20 refused`; `None` when something answered.
    pub fn nothing_answered(&self) -> Option<String> {
        let root = self.positions.get(&PositionKey(vec![1]))?;
        let answered = ["ok", "status", "bad-answer"];
        if self.requests == 0 || root.results.keys().any(|r| answered.contains(&r.as_str())) {
            return None;
        }
        let ended: Vec<String> = root
            .results
            .iter()
            .map(|(result, n)| format!("{n} {result}"))
            .collect();
        Some(format!("{} (of {} calls)", ended.join(", "), self.requests))
    }

    /// The positions a `--expect` names: a position (`1.1`), or every
    /// position whose hop called that host or was answered by that service.
    pub fn positions_named(&self, place: &str) -> Vec<(&PositionKey, &PositionTally)> {
        if let Some(key) = PositionKey::parse(place) {
            return self.positions.get_key_value(&key).into_iter().collect();
        }
        self.positions
            .iter()
            .filter(|(_, p)| {
                p.target.eq_ignore_ascii_case(place)
                    || p.target
                        .split(':')
                        .next()
                        .is_some_and(|h| h.eq_ignore_ascii_case(place))
                    || p.services.keys().any(|s| s.eq_ignore_ascii_case(place))
            })
            .collect()
    }
}

/// Who answered at a position, from its report.
fn record_answerer(at: &mut PositionTally, report: &Report) {
    if report.service.is_empty() {
        return;
    }
    bump(&mut at.services, report.service.as_str());
    bump(&mut at.versions, report.version.as_str());
    bump(&mut at.pods, report.host.as_str());
    bump(&mut at.attempts, report.attempt.to_string());
    let principal = report.peer.as_ref().map_or("-", |p| p.principal.as_str());
    bump(
        &mut at.principals,
        if principal.is_empty() { "-" } else { principal },
    );
    for injected in &report.injected {
        bump(&mut at.injected, injected.as_str());
    }
}

/// The hops under `report`, each with its position and duration, depth
/// first in written order (the order of the flat view's rows).
fn collect_hops<'r>(
    report: &'r Report,
    position: &mut Vec<u32>,
    out: &mut Vec<(PositionKey, &'r Forward, u64)>,
) {
    let mut index = 0;
    for hop in report.forwards() {
        index += 1;
        position.push(index);
        let micros = (hop.duration_ms * 1000.0).max(1.0) as u64;
        out.push((PositionKey(position.clone()), hop, micros));
        if let Some(child) = hop.response.as_deref() {
            collect_hops(child, position, out);
        }
        position.pop();
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |v: u64| v as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}
