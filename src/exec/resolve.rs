//! Where a target is reached. Normally that is the target itself (DNS does the
//! rest, as in Kubernetes or Docker); in the one-process mesh, names of the
//! mesh are sent to their loopback servers, round-robin over a name's
//! replicas (per call, as a sidecar balances), so a split looks like one
//! in a cluster. The hop clients then look names up with
//! `transport::lookup`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::plan::{Target, DEFAULT_PORT, DEFAULT_TCP_PORT};

/// Maps mesh names to local addresses; every other target resolves normally.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    names: HashMap<String, Replicas>,
    /// Each name's raw TCP port, for `name:9000` (`tcp:name`).
    tcp_names: HashMap<String, Replicas>,
}

/// The servers of one name, taken in turn.
#[derive(Debug, Clone, Default)]
struct Replicas {
    addrs: Vec<SocketAddr>,
    next: Arc<AtomicUsize>,
}

impl Replicas {
    fn first(&self) -> SocketAddr {
        self.addrs[0]
    }

    fn take(&self) -> SocketAddr {
        match self.addrs.as_slice() {
            [one] => *one,
            many => many[self.next.fetch_add(1, Ordering::Relaxed) % many.len()],
        }
    }
}

/// Each name (lower case, as DNS compares) with all its servers.
fn grouped(names: impl IntoIterator<Item = (String, SocketAddr)>) -> HashMap<String, Replicas> {
    let mut map: HashMap<String, Replicas> = HashMap::new();
    for (name, addr) in names {
        map.entry(name.to_ascii_lowercase())
            .or_default()
            .addrs
            .push(addr);
    }
    map
}

/// The address to connect to, and the authority the call is made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resolved {
    /// `host:port` as the caller wrote it: the Host header / `:authority`.
    pub authority: String,
    /// `host:port` to open the connection to, when not the authority (a
    /// name of this mesh): most hops connect where they say, and need no
    /// second copy of it.
    elsewhere: Option<String>,
}

impl Resolved {
    /// A call for `authority` that connects to `connect`.
    pub fn new(connect: String, authority: String) -> Resolved {
        let elsewhere = (connect != authority).then_some(connect);
        Resolved {
            authority,
            elsewhere,
        }
    }

    /// A call that connects where its authority says.
    pub fn direct(authority: String) -> Resolved {
        Resolved {
            authority,
            elsewhere: None,
        }
    }

    /// `host:port` to open the connection to.
    pub fn connect(&self) -> &str {
        self.elsewhere.as_deref().unwrap_or(&self.authority)
    }

    /// The Host header of a plain HTTP/1.1 hop: the authority as the caller
    /// wrote it, without port 80 when it is also where the hop connects (as
    /// hyper-util's client writes it from the URI).
    pub fn http_host(&self) -> &str {
        match self.elsewhere {
            Some(_) => &self.authority,
            None => self
                .authority
                .strip_suffix(":80")
                .unwrap_or(&self.authority),
        }
    }

    /// The host part of the authority (no port, no brackets).
    pub fn host(&self) -> &str {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(&*self.authority, |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl Resolver {
    /// A resolver that sends `name` and `name:8080` to `addr` for each pair;
    /// a name given with several addresses (replicas) gets each in turn.
    /// Names match whatever their case, as DNS names do.
    pub fn with_names(names: impl IntoIterator<Item = (String, SocketAddr)>) -> Resolver {
        Resolver {
            names: grouped(names),
            tcp_names: HashMap::new(),
        }
    }

    /// The resolver that also sends `name:9000` to each name's TCP port.
    pub fn with_tcp_names(
        mut self,
        names: impl IntoIterator<Item = (String, SocketAddr)>,
    ) -> Resolver {
        self.tcp_names = grouped(names);
        self
    }

    /// Where to connect for `target`.
    pub fn resolve(&self, target: &Target) -> Resolved {
        let authority = target.authority();
        // Outside a mesh there are no names: nothing to look up.
        let names = match target.port_or_default() {
            DEFAULT_PORT => &self.names,
            DEFAULT_TCP_PORT => &self.tcp_names,
            _ => return Resolved::direct(authority),
        };
        let local = (!names.is_empty())
            .then(|| names.get(&target.host.to_ascii_lowercase()))
            .flatten();
        match local {
            Some(replicas) => Resolved::new(replicas.take().to_string(), authority),
            None => Resolved::direct(authority),
        }
    }
}

impl Resolver {
    /// A hint for a host that did not resolve, when the mesh explains it:
    /// a mesh name called on another port, or a name one typo away.
    pub fn hint(&self, host: &str, port: u16) -> Option<String> {
        if self.names.is_empty() {
            return None;
        }
        let lower = host.to_ascii_lowercase();
        if let Some(addr) = self.names.get(&lower).map(Replicas::first) {
            return Some(format!(
                "{host} is a service of this mesh and listens on port {DEFAULT_PORT} (here {addr}), not {port}: write @{host} or @{host}:{DEFAULT_PORT}"
            ));
        }
        let mut known: Vec<&String> = self.names.keys().collect();
        known.sort();
        let close = known
            .iter()
            .filter(|name| edit_distance(name, &lower) <= 2)
            .min_by_key(|name| edit_distance(name, &lower));
        let list = known
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Some(match close {
            Some(name) => format!("did you mean {name}? this mesh has {list}"),
            None => format!("this mesh has {list}"),
        })
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let replaced = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = replaced.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_names_with_default_port_go_local() {
        let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let r = Resolver::with_names([("service2".to_string(), addr)]);
        let local = r.resolve(&Target::new("service2", None));
        assert_eq!(local.connect(), "127.0.0.1:9001");
        assert_eq!(local.authority, "service2:8080");
        assert_eq!(
            r.resolve(&Target::new("service2", Some(8080))).connect(),
            "127.0.0.1:9001"
        );
        assert_eq!(
            r.resolve(&Target::new("service2", Some(81))).connect(),
            "service2:81"
        );
        assert_eq!(
            r.resolve(&Target::new("other", None)).connect(),
            "other:8080"
        );
        assert_eq!(
            r.resolve(&Target::new("Service2", None)).connect(),
            "127.0.0.1:9001",
            "names match whatever their case"
        );
    }

    #[test]
    fn hints_for_names_that_do_not_resolve() {
        let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let r = Resolver::with_names([("service2".to_string(), addr)]);
        assert!(r
            .hint("service2", 8081)
            .unwrap()
            .contains("listens on port 8080"));
        assert!(r
            .hint("servce2", 8080)
            .unwrap()
            .starts_with("did you mean service2?"));
        assert_eq!(r.hint("zzz", 8080).unwrap(), "this mesh has service2");
        assert_eq!(Resolver::default().hint("x", 8080), None);
    }

    #[test]
    fn replicas_of_a_name_are_taken_in_turn() {
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:9002".parse().unwrap();
        let r = Resolver::with_names([("reviews".to_string(), a), ("Reviews".to_string(), b)]);
        let taken: Vec<String> = (0..4)
            .map(|_| {
                r.resolve(&Target::new("reviews", None))
                    .connect()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            taken,
            [
                "127.0.0.1:9001",
                "127.0.0.1:9002",
                "127.0.0.1:9001",
                "127.0.0.1:9002"
            ]
        );
        let clone = r.clone();
        assert_eq!(
            clone.resolve(&Target::new("reviews", None)).connect(),
            "127.0.0.1:9001",
            "clones share the turn"
        );
    }
}
