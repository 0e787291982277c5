//! The report as a flat list: one JSON object per hop with its position in
//! the tree, for jq, spreadsheets and scripts (`?view=flat`, `call --flat`).
//! Nothing nests, so a report of any depth stays within jq 1.6's limits.
//!
//! Positions: the entry service is `1`; the hops it made are `1.1`, `1.2`, …
//! in written order (groups one after another); the hops those services
//! made are `1.1.1`, and so on. `Parent` is the position of the caller.

use serde::Serialize;

use super::Report;

/// One row of the flat view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    pub position: String,
    pub parent: String,
    /// The group (1-based) the hop was written in; 0 for the entry.
    pub group: usize,
    pub url: String,
    /// How the entry was reached (`http/1.1`, …), or the hop's protocol.
    pub protocol: &'static str,
    /// Who answered: service, version and host (pod), when a servicemock did.
    pub service: String,
    pub version: String,
    pub host: String,
    pub status: Option<i32>,
    /// `entry` for the first row, the hop's outcome for the others.
    pub result: &'static str,
    pub start_ms: f64,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// How the callee received it, when a proxy translated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_as: Option<&'static str>,
    /// Which attempt the answering service saw (1 for the first).
    pub attempt: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<String>,
    /// Who called the answering service, when it knew (its principal).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// The TLS version the request arrived over, when it did.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls: String,
    /// How the caller made the call, when it set options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// How many tries the caller made, when the hop may retry.
    #[serde(skip_serializing_if = "is_zero")]
    pub tries: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The caller's principal and the TLS version a level shows.
fn caller_of(report: Option<&Report>) -> (String, String) {
    let principal = report
        .and_then(|r| r.peer.as_ref())
        .map(|p| p.principal.clone())
        .unwrap_or_default();
    let tls = report
        .and_then(|r| r.tls.as_ref())
        .map(|t| t.version.clone())
        .unwrap_or_default();
    (principal, tls)
}

/// Every hop of the tree under `report`, the entry first, depth first in
/// written order.
pub fn rows(report: &Report) -> Vec<Row> {
    let (principal, tls) = caller_of(Some(report));
    let mut out = vec![Row {
        position: "1".into(),
        parent: String::new(),
        group: 0,
        url: String::new(),
        protocol: report.protocol.as_str(),
        service: report.service.to_string(),
        version: report.version.to_string(),
        host: report.host.to_string(),
        status: None,
        result: "entry",
        start_ms: 0.0,
        duration_ms: report.duration_ms,
        error: None,
        answered_by: None,
        received_as: None,
        attempt: report.attempt,
        injected: report.injected.clone(),
        principal,
        tls,
        options: None,
        tries: 0,
    }];
    // (report, its position); children pushed in reverse so they pop in order.
    let mut stack: Vec<(&Report, String)> = vec![(report, "1".into())];
    while let Some((level, position)) = stack.pop() {
        let mut children = Vec::new();
        let mut index = 0;
        for (g, group) in level.parallel_forwards.iter().enumerate() {
            for hop in &group.sequential_forwards {
                index += 1;
                let here = format!("{position}.{index}");
                let who = hop.response.as_deref();
                let (principal, tls) = caller_of(who);
                children.push((
                    Row {
                        position: here.clone(),
                        parent: position.clone(),
                        group: g + 1,
                        url: hop.url.clone(),
                        protocol: hop.protocol.as_str(),
                        service: who.map(|r| r.service.to_string()).unwrap_or_default(),
                        version: who.map(|r| r.version.to_string()).unwrap_or_default(),
                        host: who.map(|r| r.host.to_string()).unwrap_or_default(),
                        status: hop.status,
                        result: hop.result.as_str(),
                        start_ms: hop.start_ms,
                        duration_ms: hop.duration_ms,
                        error: hop.error.clone(),
                        answered_by: hop.answered_by.as_ref().map(ToString::to_string),
                        received_as: hop.received_as.map(super::InboundProtocol::as_str),
                        attempt: who.map_or(0, |r| r.attempt),
                        injected: who.map(|r| r.injected.clone()).unwrap_or_default(),
                        principal,
                        tls,
                        options: hop.options.clone(),
                        tries: hop.tries.len(),
                    },
                    who.map(|r| (r, here)),
                ));
            }
        }
        for (row, child) in children {
            out.push(row);
            if let Some(child) = child {
                stack.push(child);
            }
        }
    }
    // Depth first in written order, whatever order the walk took.
    out.sort_by_key(|row| position_key(&row.position));
    out
}

/// Positions sort as numbers, level by level: 1.2 before 1.10.
fn position_key(position: &str) -> Vec<usize> {
    position.split('.').filter_map(|p| p.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{hop, named};

    #[test]
    fn positions_follow_the_written_order() {
        let c = named("c", vec![]);
        let b = named("b", vec![vec![hop("http", 0.0, 1.0, Some(c))]]);
        let root = named(
            "a",
            vec![
                vec![hop("http", 0.0, 2.0, Some(b))],
                vec![hop("grpc", 0.0, 1.0, None)],
            ],
        );
        let rows = rows(&root);
        let seen: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.position.as_str(), r.parent.as_str(), r.service.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("1", "", "a"),
                ("1.1", "1", "b"),
                ("1.1.1", "1.1", "c"),
                ("1.2", "1", "")
            ]
        );
        assert_eq!(rows[3].group, 2);
    }
}
