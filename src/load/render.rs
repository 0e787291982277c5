//! How a run is shown: a table for people (the call, then each position of
//! the tree with who answered and how, then each expectation with its
//! verdict), or one JSON document for scripts (`--json`).

use std::fmt::Write as _;

use serde::Serialize;

use super::expect::{Judgement, Verdict};
use super::tally::{Counts, Percentiles};
use super::Finished;

/// `value count (share), …`, largest first.
fn shares(counts: &Counts, total: u64) -> String {
    let mut items: Vec<(&String, &u64)> = counts.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    items
        .iter()
        .map(|(value, n)| {
            let share = **n as f64 * 100.0 / total.max(1) as f64;
            format!("{value} {n} ({share:.1}%)")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table.
pub fn table(run: &Finished, what: &str) -> String {
    let t = &run.tally;
    let mut out = String::new();
    let streams: u64 = t.pods_per_stream.values().sum();
    let calls = if streams > 0 {
        format!("{} messages on {streams} streams", t.requests)
    } else {
        format!("{} calls", t.requests)
    };
    let _ = writeln!(
        out,
        "{what}: {calls} in {:.2} s, {:.0}/s, {} errors",
        run.elapsed.as_secs_f64(),
        run.rate(),
        t.errors
    );
    if let Some(qps) = run.asked_qps {
        if run.held {
            let _ = writeln!(out, "open loop at {qps}/s: held");
        } else {
            let _ = writeln!(
                out,
                "open loop at {qps}/s: NOT held (calls started late; the target or this machine is the limit; latency counts the wait)"
            );
        }
    }
    let l = Percentiles::of(&t.latency);
    let _ = writeln!(
        out,
        "latency  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        l.p50, l.p90, l.p99, l.max
    );
    if streams > 0 {
        let _ = writeln!(
            out,
            "pods per stream  {}",
            shares(&t.pods_per_stream, streams)
        );
    }
    for (key, p) in &t.positions {
        let l = Percentiles::of(&p.latency);
        let _ = writeln!(
            out,
            "\n{key:<8} {}  {} answers  p50 {:.2} ms  p99 {:.2} ms",
            p.target, p.count, l.p50, l.p99
        );
        let rows: [(&str, &Counts); 10] = [
            ("result", &p.results),
            ("status", &p.statuses),
            ("service", &p.services),
            ("version", &p.versions),
            ("pod", &p.pods),
            ("attempt", &p.attempts),
            ("injected", &p.injected),
            ("answered by", &p.answered_by),
            ("principal", &p.principals),
            ("tries", &p.tries),
        ];
        for (name, counts) in rows {
            // Principals are shown where some caller was known, tries
            // where some hop retried.
            let unknown_only = (name == "principal" && counts.keys().all(|k| k == "-"))
                || (name == "tries" && counts.keys().all(|k| k == "1"));
            if !counts.is_empty() && !unknown_only {
                let _ = writeln!(out, "  {name:<12} {}", shares(counts, p.count));
            }
        }
    }
    for j in &run.judgements {
        out.push('\n');
        out.push_str(&judgement(j));
    }
    out
}

/// One expectation and its verdict.
pub fn judgement(j: &Judgement) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "expect {}  ({} answers, {:.0}% confidence)",
        j.expect,
        j.answers,
        j.confidence * 100.0
    );
    for v in &j.values {
        let _ = writeln!(
            out,
            "  {:<12} observed {:5.1}% [{:5.1}, {:5.1}]  expected {:5.1}%",
            v.value,
            v.observed * 100.0,
            v.low * 100.0,
            v.high * 100.0,
            v.expected * 100.0
        );
    }
    if let (Some(chi), Some(p)) = (j.chi_square, j.p_value) {
        let _ = writeln!(out, "  chi-square {chi:.2}, p = {p:.3}");
    }
    let word = match j.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::CannotJudge => "CANNOT JUDGE",
    };
    match &j.problem {
        Some(problem) => {
            let _ = writeln!(out, "  {word}: {problem}");
        }
        None => {
            let _ = writeln!(out, "  {word}");
        }
    }
    out
}

#[derive(Serialize)]
struct Json<'a> {
    requests: u64,
    errors: u64,
    seconds: f64,
    rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    asked_qps: Option<f64>,
    /// Whether the asked rate was held (open loop only).
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<bool>,
    latency_ms: Percentiles,
    /// With `--stream`: distinct pods that answered a stream, and how many
    /// streams saw that many.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    pods_per_stream: &'a Counts,
    positions: Vec<PositionJson<'a>>,
    expectations: &'a [Judgement],
}

#[derive(Serialize)]
struct PositionJson<'a> {
    position: String,
    target: &'a str,
    answers: u64,
    latency_ms: Percentiles,
    results: &'a Counts,
    statuses: &'a Counts,
    services: &'a Counts,
    versions: &'a Counts,
    pods: &'a Counts,
    attempts: &'a Counts,
    injected: &'a Counts,
    answered_by: &'a Counts,
    principals: &'a Counts,
    tries: &'a Counts,
}

/// The JSON document.
pub fn json(run: &Finished) -> String {
    let t = &run.tally;
    let doc = Json {
        requests: t.requests,
        errors: t.errors,
        seconds: run.elapsed.as_secs_f64(),
        rate: run.rate(),
        asked_qps: run.asked_qps,
        held: run.asked_qps.map(|_| run.held),
        latency_ms: Percentiles::of(&t.latency),
        pods_per_stream: &t.pods_per_stream,
        positions: t
            .positions
            .iter()
            .map(|(key, p)| PositionJson {
                position: key.to_string(),
                target: &p.target,
                answers: p.count,
                latency_ms: Percentiles::of(&p.latency),
                results: &p.results,
                statuses: &p.statuses,
                services: &p.services,
                versions: &p.versions,
                pods: &p.pods,
                attempts: &p.attempts,
                injected: &p.injected,
                answered_by: &p.answered_by,
                principals: &p.principals,
                tries: &p.tries,
            })
            .collect(),
        expectations: &run.judgements,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
