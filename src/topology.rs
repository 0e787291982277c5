//! A topology file: one YAML file that describes a whole mesh — its
//! services, their versions with replica counts and behaviour, their
//! default calls, ports and TLS — so that `servicemock mesh --topology FILE`
//! runs it in one process and `servicemock manifests --topology FILE`
//! deploys the same graph to a cluster. The shape follows isotope's service
//! graph where it fits (`services`, `numReplicas`, `errorRate`).
//!
//! Read with serde-saphyr: serde_yaml is archived and serde_yml is
//! deprecated; serde-saphyr is maintained, panic-free on malformed input,
//! bounds what a document may make it allocate, and gives every value its
//! line and column (`Spanned`), so a name used twice or a call to a
//! service the file does not define is reported where it is written.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::plan::default::DefaultCalls;
use crate::plan::Limits;

/// The behaviour keys a version may set: `serve`'s flags of the same names.
pub const BEHAVIOR_KEYS: &[&str] = &[
    "delay",
    "status",
    "grpc-status",
    "error-rate",
    "size",
    "reset-rate",
];

/// A checked topology.
#[derive(Debug, Clone)]
pub struct Topology {
    pub services: Vec<Service>,
    /// Names the default calls may reach that the file does not define.
    pub external: Vec<String>,
    /// Cycles among the default calls, one line each: allowed (the call
    /// budget and `--max-depth` end them), said at start.
    pub cycles: Vec<String>,
}

/// One service of a topology.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// Its default cascade (`--calls`), if it calls anyone.
    pub calls: Option<DefaultCalls>,
    pub versions: Vec<Version>,
    /// A raw TCP lines port (`--tcp-listen`; Service port `tcp`).
    pub tcp_port: Option<u16>,
    /// Serve TLS too (the mesh: a made certificate; manifests: Secret
    /// `NAME-tls` on 8443).
    pub tls: bool,
}

/// One version of a service.
#[derive(Debug, Clone)]
pub struct Version {
    pub name: String,
    pub replicas: u32,
    /// Behaviour flags (`delay` → `--delay`), in [`BEHAVIOR_KEYS`] order.
    pub behavior: Vec<(String, String)>,
}

/// Why a topology file was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for TopologyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    services: Vec<ServiceEntry>,
    #[serde(default)]
    external: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServiceEntry {
    name: Spanned<String>,
    #[serde(default)]
    calls: Option<Spanned<String>>,
    #[serde(default)]
    versions: Option<Vec<VersionEntry>>,
    /// The one version's replicas, when the service lists no versions.
    #[serde(default, alias = "numReplicas")]
    replicas: Option<Spanned<u32>>,
    #[serde(default)]
    ports: Ports,
    #[serde(default)]
    tls: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Ports {
    #[serde(default)]
    tcp: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct VersionEntry {
    name: Spanned<String>,
    #[serde(default, alias = "numReplicas")]
    replicas: Option<Spanned<u32>>,
    #[serde(default)]
    delay: Option<Spanned<String>>,
    #[serde(default)]
    status: Option<Spanned<String>>,
    #[serde(default)]
    grpc_status: Option<Spanned<String>>,
    #[serde(default, alias = "errorRate")]
    error_rate: Option<Spanned<String>>,
    #[serde(default, alias = "responseSize")]
    size: Option<Spanned<String>>,
    #[serde(default)]
    reset_rate: Option<Spanned<String>>,
}

/// Longest service name: a Deployment is `NAME-VERSION`, 63 characters at
/// most, and this leaves 8 for the version.
const NAME_WITH_ROOM_FOR_VERSION: usize = 63 - 1 - 8;

/// The name a service's versions get when it lists none.
pub const DEFAULT_VERSION: &str = "v1";

impl Topology {
    /// Reads `file`'s text: a bad file is an error with file, line and
    /// column; `limits` bound the default calls as `serve --calls`.
    pub fn parse(file: &str, text: &str, limits: &Limits) -> Result<Topology, TopologyError> {
        let at = |loc: serde_saphyr::Location, message: String| TopologyError {
            file: file.to_owned(),
            line: loc.line(),
            column: loc.column(),
            message,
        };
        let parsed: File = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map_or((1, 1), |loc| (loc.line().max(1), loc.column().max(1)));
            TopologyError {
                file: file.to_owned(),
                line,
                column,
                message: first_line(&e.to_string()),
            }
        })?;
        if parsed.services.is_empty() {
            return Err(TopologyError {
                file: file.to_owned(),
                line: 1,
                column: 1,
                message: "no services: write services: with at least one - name: ...".into(),
            });
        }
        let mut services: Vec<Service> = Vec::with_capacity(parsed.services.len());
        let mut seen: Vec<(String, serde_saphyr::Location)> = Vec::new();
        for entry in &parsed.services {
            let name = entry.name.value.clone();
            // Room for "-VERSION" in the Deployment's name (63 at most);
            // manifests checks each version's own length again.
            crate::config::check_name(&name, NAME_WITH_ROOM_FOR_VERSION)
                .map_err(|e| at(entry.name.referenced, e.to_string()))?;
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                return Err(at(
                    entry.name.referenced,
                    format!(
                        "service name \"{name}\" used twice (first at line {}, column {})",
                        first.line(),
                        first.column()
                    ),
                ));
            }
            seen.push((name.clone(), entry.name.referenced));
            let calls = match &entry.calls {
                None => None,
                Some(path) => Some(
                    DefaultCalls::from_path(&path.value, limits)
                        .map_err(|e| at(path.referenced, format!("calls of {name}: {e}")))?,
                ),
            };
            let versions = versions_of(entry, &at)?;
            services.push(Service {
                name,
                calls,
                versions,
                tcp_port: entry.ports.tcp,
                tls: entry.tls,
            });
        }
        // Every name a default calls must be a service of the file, or
        // listed as external.
        for (entry, service) in parsed.services.iter().zip(&services) {
            let (Some(calls), Some(written)) = (&service.calls, &entry.calls) else {
                continue;
            };
            for callee in called_names(calls) {
                let known = services
                    .iter()
                    .any(|s| s.name.eq_ignore_ascii_case(&callee))
                    || parsed
                        .external
                        .iter()
                        .any(|e| e.eq_ignore_ascii_case(&callee));
                if !known {
                    return Err(at(
                        written.referenced,
                        format!(
                            "{} calls \"{callee}\", which this file does not define: add it to services, or to external: if it lives outside",
                            service.name
                        ),
                    ));
                }
            }
        }
        let cycles = cycles(&services);
        Ok(Topology {
            services,
            external: parsed.external,
            cycles,
        })
    }

    /// Reads a topology file from disk.
    pub fn read(path: &std::path::Path, limits: &Limits) -> Result<Topology, TopologyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read it: {e}"),
        })?;
        Topology::parse(&file, &text, limits)
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).trim().to_owned()
}

fn versions_of(
    entry: &ServiceEntry,
    at: &impl Fn(serde_saphyr::Location, String) -> TopologyError,
) -> Result<Vec<Version>, TopologyError> {
    let name = &entry.name.value;
    let Some(listed) = &entry.versions else {
        let replicas = entry.replicas.as_ref().map_or(1, |r| r.value);
        if let Some(r) = entry.replicas.as_ref().filter(|r| r.value == 0) {
            return Err(at(
                r.referenced,
                format!("{name} has no replicas: write replicas: 1 or more"),
            ));
        }
        return Ok(vec![Version {
            name: DEFAULT_VERSION.to_owned(),
            replicas,
            behavior: Vec::new(),
        }]);
    };
    if let Some(r) = &entry.replicas {
        return Err(at(
            r.referenced,
            format!("{name} lists versions: give each version its replicas instead"),
        ));
    }
    if listed.is_empty() {
        return Err(at(
            entry.name.referenced,
            format!("{name} has versions: [] — list at least one, or leave versions out"),
        ));
    }
    let mut versions: Vec<Version> = Vec::with_capacity(listed.len());
    for v in listed {
        let version = v.name.value.clone();
        crate::config::check_name(&version, 63)
            .map_err(|e| at(v.name.referenced, format!("version of {name}: {e}")))?;
        if versions.iter().any(|seen| seen.name == version) {
            return Err(at(
                v.name.referenced,
                format!("version {version} of {name} listed twice"),
            ));
        }
        let replicas = match &v.replicas {
            None => {
                return Err(at(
                    v.name.referenced,
                    format!(
                    "version {version} of {name} has no replicas: write replicas: N (1 or more)"
                ),
                ))
            }
            Some(r) if r.value == 0 => {
                return Err(at(
                    r.referenced,
                    format!(
                    "version {version} of {name} has no replicas: write replicas: N (1 or more)"
                ),
                ))
            }
            Some(r) => r.value,
        };
        let behavior = [
            ("delay", &v.delay),
            ("status", &v.status),
            ("grpc-status", &v.grpc_status),
            ("error-rate", &v.error_rate),
            ("size", &v.size),
            ("reset-rate", &v.reset_rate),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (key, v)))
        .map(|(key, value)| {
            crate::behavior::flags::check(key, &value.value).map_err(|problem| {
                at(
                    value.referenced,
                    format!("{key} of {name} {version}: {problem}"),
                )
            })?;
            Ok((key.to_owned(), value.value.clone()))
        })
        .collect::<Result<Vec<_>, TopologyError>>()?;
        versions.push(Version {
            name: version,
            replicas,
            behavior,
        });
    }
    Ok(versions)
}

/// The hosts a default plan calls, at any level, each once, in order.
fn called_names(calls: &DefaultCalls) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut levels = vec![calls.plan()];
    while let Some(level) = levels.pop() {
        for hop in level.hops() {
            if !names.contains(&hop.target.host) {
                names.push(hop.target.host.clone());
            }
            levels.push(&hop.next);
        }
    }
    names
}

/// Every cycle among the services' default calls, as `a → b → a`.
fn cycles(services: &[Service]) -> Vec<String> {
    let edges: BTreeMap<String, Vec<String>> = services
        .iter()
        .map(|s| {
            let callees = s.calls.as_ref().map(called_names).unwrap_or_default();
            let callees = callees
                .into_iter()
                .filter(|c| services.iter().any(|t| t.name.eq_ignore_ascii_case(c)))
                .map(|c| c.to_ascii_lowercase())
                .collect();
            (s.name.to_ascii_lowercase(), callees)
        })
        .collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    // Depth-first from each service; a cycle is kept once, from its
    // smallest name, so `a → b → a` is not said again as `b → a → b`.
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    found.push(cycle);
                } else if !path.contains(next) && next > start {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found.into_iter().map(|c| c.join(" → ")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Topology, TopologyError> {
        Topology::parse("t.yaml", text, &Limits::default())
    }

    const BOOKINFO: &str = "\
services:
  - name: productpage
    calls: /@details|reviews/
  - name: details
  - name: reviews
    calls: /@ratings/
    versions:
      - name: v1
        replicas: 1
      - name: v2
        replicas: 2
        delay: 100ms
      - name: v3
        numReplicas: 1
        errorRate: 10
  - name: ratings
    tls: true
    ports:
      tcp: 9000
";

    #[test]
    fn a_graph_with_versions_replicas_and_calls() {
        let t = parse(BOOKINFO).unwrap();
        assert_eq!(t.services.len(), 4);
        let reviews = &t.services[2];
        assert_eq!(reviews.versions.len(), 3);
        assert_eq!(reviews.versions[1].replicas, 2);
        assert_eq!(
            reviews.versions[1].behavior,
            [("delay".to_owned(), "100ms".to_owned())]
        );
        assert_eq!(
            reviews.versions[2].behavior,
            [("error-rate".to_owned(), "10".to_owned())]
        );
        assert_eq!(t.services[1].versions[0].name, "v1");
        assert_eq!(t.services[3].tcp_port, Some(9000));
        assert!(t.services[3].tls);
        assert!(t.cycles.is_empty());
    }

    #[test]
    fn mistakes_name_line_and_column() {
        let twice = parse("services:\n  - name: a\n  - name: a\n").unwrap_err();
        assert_eq!((twice.line, twice.column), (3, 11), "{twice}");
        assert!(
            twice.message.contains("used twice (first at line 2"),
            "{twice}"
        );
        let unknown = parse("services:\n  - name: a\n    calls: /@b/\n").unwrap_err();
        assert_eq!((unknown.line, unknown.column), (3, 12), "{unknown}");
        assert!(unknown
            .message
            .contains("calls \"b\", which this file does not define"));
        assert!(parse("external: [b]\nservices:\n  - name: a\n    calls: /@b/\n").is_ok());
        let no_replicas =
            parse("services:\n  - name: a\n    versions:\n      - name: v2\n").unwrap_err();
        assert_eq!(no_replicas.line, 4, "{no_replicas}");
        assert!(no_replicas.message.contains("v2 of a has no replicas"));
        let bad_path = parse("services:\n  - name: a\n    calls: /@b||c/\n").unwrap_err();
        assert_eq!(bad_path.line, 3);
        assert!(bad_path.message.contains("position"), "{bad_path}");
        let typo = parse("services:\n  - name: a\n    replica: 2\n").unwrap_err();
        assert_eq!(typo.line, 3, "{typo}");
        assert!(typo.message.contains("replica"), "{typo}");
        let bad_delay = parse(
            "services:\n  - name: a\n    versions:\n      - name: v1\n        replicas: 1\n        delay: soon\n",
        )
        .unwrap_err();
        assert_eq!(bad_delay.line, 6, "{bad_delay}");
        assert!(
            bad_delay.to_string().starts_with("t.yaml:6:"),
            "{bad_delay}"
        );
    }

    #[test]
    fn cycles_are_found_once() {
        let t = parse(
            "services:\n  - name: a\n    calls: /@b/\n  - name: b\n    calls: /@a|c/\n  - name: c\n",
        )
        .unwrap();
        assert_eq!(t.cycles, ["a → b → a"]);
    }
}
