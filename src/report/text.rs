//! The report as an indented tree for terminals (`?view=tree`): one line per
//! service and hop with protocol, status, duration and error, and the
//! slowest path — the chain of hops that set the total time — marked `*`.
//! Hops are labelled by the positions the flat view and `servicemock load`
//! use: `1.2` the entry's second hop in written order, `1.2.1` the first hop
//! of the service it called.

use std::fmt::Write as _;

use super::{Forward, Report};

/// Renders the whole cascade below `report`.
pub fn render_tree(report: &Report) -> String {
    let mut out = String::new();
    let attempt = if report.attempt > 1 {
        format!("  attempt {}", report.attempt)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} {}  {}  {}  {}{attempt}",
        sanitize(&report.service),
        sanitize(&report.version),
        report.protocol,
        ms(report.duration_ms),
        sanitize(&report.message)
    );
    if let Some(caller) = caller_line(report) {
        let under = if report.forwards().next().is_some() {
            "│  "
        } else {
            "   "
        };
        write_wrapped(under, &caller, &mut out);
    }
    write_children(report, "", true, "1", &mut out);
    let _ = writeln!(
        out,
        "request {}   * slowest path",
        sanitize(&report.request_id)
    );
    out
}

/// Text from elsewhere (a downstream's report, a proxy's headers) made safe
/// for a terminal or a log line: control characters — newlines, escape
/// sequences that clear a screen or set a title — are shown escaped.
pub fn sanitize(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn ms(value: f64) -> String {
    format!("{value:.2} ms")
}

/// The group that finished last (ties: the first), if any: the slowest
/// path runs through every hop of it, one after another, and through none
/// of the groups that ran beside it.
fn slowest_group(report: &Report) -> Option<usize> {
    report
        .parallel_forwards
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let end = group
                .sequential_forwards
                .iter()
                .map(|f| f.start_ms + f.duration_ms)
                .fold(0.0_f64, f64::max);
            (g, end)
        })
        .fold(None::<(usize, f64)>, |best, (g, end)| match best {
            Some((_, b)) if b >= end => best,
            _ => Some((g, end)),
        })
        .map(|(g, _)| g)
}

/// The width the tree fits where it can: continuation lines wrap at it.
const WIDTH: usize = 100;

/// Writes the hops below `report`; `on_path` says whether `report` lies on
/// the slowest path, so only that path's hops get the mark. Each hop is one
/// line of short parts; its long parts (options, who answered, the error,
/// each try, how the callee was reached) go on continuation lines under it.
fn write_children(report: &Report, indent: &str, on_path: bool, position: &str, out: &mut String) {
    let slowest = slowest_group(report).filter(|_| on_path);
    let total = report.forwards().count();
    let mut index = 0;
    for (g, group) in report.parallel_forwards.iter().enumerate() {
        let group_on_path = slowest == Some(g);
        for hop in &group.sequential_forwards {
            let last = index + 1 == total;
            let (branch, next_indent) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let mark = if group_on_path { " *" } else { "" };
            let here = format!("{position}.{}", index + 1);
            let _ = writeln!(out, "{indent}{branch}{here} {}", hop_line(hop, mark));
            let child_indent = format!("{indent}{next_indent}");
            let has_children = hop
                .response
                .as_ref()
                .is_some_and(|r| r.forwards().next().is_some());
            let under = format!("{child_indent}{}", if has_children { "│  " } else { "   " });
            let mut notes = hop_notes(hop);
            notes.extend(
                hop.tries
                    .iter()
                    .enumerate()
                    .map(|(t, one)| try_line(hop, one, t + 1 == hop.tries.len())),
            );
            notes.extend(hop.response.as_deref().and_then(caller_line));
            for note in notes {
                write_wrapped(&under, &note, out);
            }
            if let Some(child) = &hop.response {
                write_children(child, &child_indent, group_on_path, &here, out);
            }
            index += 1;
        }
    }
}

/// `text` as lines after `prefix`, broken at spaces to fit [`WIDTH`] where
/// it can (a word longer than the room is kept whole).
fn write_wrapped(prefix: &str, text: &str, out: &mut String) {
    let room = WIDTH.saturating_sub(prefix.chars().count()).max(40);
    let mut line = String::new();
    for word in text.split(' ') {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > room {
            let _ = writeln!(out, "{prefix}{line}");
            line.clear();
            // Later lines of one note are indented under its first.
            line.push_str("  ");
        }
        if !line.trim().is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = writeln!(out, "{prefix}{line}");
}

/// How a level's request arrived and who sent it, when either is known:
/// `tls TLSv1.3 h2 sni service2, from spiffe://cluster.local/ns/a/sa/b (tls)`.
fn caller_line(report: &Report) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(tls) = &report.tls {
        let mut part = format!("tls {}", sanitize(&tls.version));
        for (label, value) in [("", &tls.alpn), ("sni ", &tls.sni)] {
            if !value.is_empty() {
                let _ = write!(part, " {label}{}", sanitize(value));
            }
        }
        parts.push(part);
    }
    if let Some(peer) = &report.peer {
        let who = if !peer.principal.is_empty() {
            sanitize(&peer.principal).into_owned()
        } else if !peer.error.is_empty() {
            format!("? (unreadable: {})", sanitize(&peer.error))
        } else if !peer.subject.is_empty() {
            sanitize(&peer.subject).into_owned()
        } else {
            "?".to_owned()
        };
        parts.push(format!("from {who} ({})", sanitize(&peer.source)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// One try of a hop that may retry: `try 1  503 status  3.10 ms  b v2`.
fn try_line(hop: &Forward, one: &super::Try, last: bool) -> String {
    let status = one.status.map_or("-".to_owned(), |s| s.to_string());
    let mut line = format!(
        "try {}  {status} {}  {}",
        one.number,
        one.result,
        ms(one.duration_ms)
    );
    if let Some(who) = one.who(hop, last) {
        let _ = write!(line, "  {}", sanitize(&who));
    }
    if let Some(error) = &one.error {
        let _ = write!(line, "  {}", sanitize(error));
    }
    line
}

fn hop_line(hop: &Forward, mark: &str) -> String {
    let who = match &hop.response {
        Some(r) if !r.service.is_empty() => format!("{} {}", r.service, r.version),
        _ => hop.called_host().to_owned(),
    };
    let status = hop.status.map_or("-".to_owned(), |s| s.to_string());
    // Sent one way, received another: a proxy translated it (`http→h2c`).
    let protocol = match &hop.received_as {
        Some(received) => format!("{}→{received}", hop.protocol),
        None => hop.protocol.as_str().to_owned(),
    };
    let mut line = format!(
        "{protocol:<5} {}  {status} {}  {}{mark}",
        sanitize(&who),
        hop.result,
        ms(hop.duration_ms)
    );
    if let Some(attempt) = hop.response.as_ref().map(|r| r.attempt).filter(|a| *a > 1) {
        let _ = write!(line, "  attempt {attempt}");
    }
    if let Some(injected) = hop.response.as_ref().filter(|r| !r.injected.is_empty()) {
        let _ = write!(line, "  [{}]", sanitize(&injected.injected.join(", ")));
    }
    line
}

/// A hop's long parts, each a continuation line: the options it was called
/// with, who answered when that was no servicemock (once: an error that
/// names it already says it), and the error.
fn hop_notes(hop: &Forward) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(options) = &hop.options {
        notes.push(format!("{{{}}}", sanitize(options)));
    }
    let error = hop.error.as_deref().unwrap_or_default();
    if let Some(by) = hop
        .answered_by
        .as_ref()
        .filter(|by| !error.contains(&by.who()))
    {
        notes.push(format!("answered by {}", sanitize(&by.to_string())));
    }
    if !error.is_empty() {
        notes.push(sanitize(error).into_owned());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{hop, named};

    #[test]
    fn tree_marks_the_slowest_path() {
        let leaf = named("c", vec![]);
        let b = named("b", vec![vec![hop("grpc", 0.1, 5.0, Some(leaf))]]);
        let mut failed = hop("http", 0.2, 1.0, None);
        failed.url = "http://gone:9/".into();
        failed.result = crate::report::Outcome::Refused;
        failed.status = None;
        failed.error = Some("connection refused by gone:9".into());
        let root = named(
            "a",
            vec![vec![hop("http", 0.0, 6.0, Some(b))], vec![failed]],
        );
        let text = render_tree(&root);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("a v1  http/1.1"), "{text}");
        assert_eq!(lines[1], "├─ 1.1 http  b v1  200 ok  6.00 ms *");
        assert_eq!(lines[2], "│  └─ 1.1.1 grpc  c v1  200 ok  5.00 ms *");
        assert_eq!(lines[3], "└─ 1.2 http  gone:9  - refused  1.00 ms");
        assert_eq!(lines[4], "      connection refused by gone:9");
        assert!(text.ends_with("* slowest path\n"));
    }

    #[test]
    fn each_level_says_how_it_arrived_and_from_whom() {
        let mut leaf = named("c", vec![]);
        leaf.tls = Some(Box::new(crate::caller::Tls {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            alpn: "h2".into(),
            sni: "c".into(),
        }));
        leaf.peer = Some(Box::new(crate::caller::Peer {
            source: "tls".into(),
            principal: "spiffe://cluster.local/ns/m/sa/a".into(),
            ..Default::default()
        }));
        let root = named("a", vec![vec![hop("http", 0.0, 6.0, Some(leaf))]]);
        let text = render_tree(&root);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2], "      tls TLSv1.3 h2 sni c, from spiffe://cluster.local/ns/m/sa/a (tls)",
            "{text}"
        );
    }

    #[test]
    fn a_hop_that_retried_shows_its_options_and_each_try() {
        let mut v1 = named("b", vec![]);
        v1.attempt = 2;
        let mut retried = hop("http", 0.0, 9.0, Some(v1));
        retried.options = Some("timeout 3s, retries 2".into());
        retried.tries = vec![
            crate::report::Try {
                number: 1,
                result: crate::report::Outcome::Status,
                status: Some(503),
                duration_ms: 4.0,
                error: Some("answered 503 Service Unavailable".into()),
                response: Some(named("b", vec![]).into()),
                ..Default::default()
            },
            crate::report::Try {
                number: 2,
                result: crate::report::Outcome::Ok,
                status: Some(200),
                start_ms: 4.5,
                duration_ms: 4.5,
                ..Default::default()
            },
        ];
        let text = render_tree(&named("a", vec![vec![retried]]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1], "└─ 1.1 http  b v1  200 ok  9.00 ms *  attempt 2",
            "{text}"
        );
        assert_eq!(lines[2], "      {timeout 3s, retries 2}");
        assert_eq!(
            lines[3],
            "      try 1  503 status  4.00 ms  b v1  answered 503 Service Unavailable"
        );
        assert_eq!(lines[4], "      try 2  200 ok  4.50 ms  b v1");
    }

    #[test]
    fn every_hop_of_the_slowest_sequence_is_on_the_path() {
        // 1.1 took 22.7 ms, then 1.2 0.97 ms; beside them 2.1 took 10 ms.
        let root = named(
            "a",
            vec![
                vec![hop("http", 0.0, 22.7, None), hop("http", 22.8, 0.97, None)],
                vec![hop("http", 0.0, 10.0, None)],
            ],
        );
        let text = render_tree(&root);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("22.70 ms *"), "{text}");
        assert!(lines[2].ends_with("0.97 ms *"), "{text}");
        assert!(lines[3].ends_with("10.00 ms"), "{text}");
    }

    #[test]
    fn long_parts_wrap_under_the_hop_within_the_width() {
        let mut failed = hop("http", 0.0, 1.0, None);
        failed.result = crate::report::Outcome::Dns;
        failed.status = None;
        failed.answered_by = Some(crate::report::AnsweredBy::parse("proxy (server: envoy)"));
        failed.error = Some(format!("cannot resolve \"x\": {}", "word ".repeat(40)));
        let inner = named("b", vec![vec![failed]]);
        let root = named("a", vec![vec![hop("http", 0.0, 2.0, Some(inner))]]);
        let text = render_tree(&root);
        let lines: Vec<&str> = text.lines().collect();
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert_eq!(
            lines[2], "   └─ 1.1.1 http  x:8080  - dns  1.00 ms *",
            "{text}"
        );
        assert_eq!(
            lines[3], "         answered by proxy (server: envoy)",
            "{text}"
        );
        assert!(lines[4].starts_with("         cannot resolve"), "{text}");
        assert!(lines[5].starts_with("           word"), "{text}");
        assert_eq!(text.matches("envoy").count(), 1, "said once: {text}");
    }
}
