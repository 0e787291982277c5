//! Where a target is reached. Normally that is the target itself (DNS does the
//! rest, as in Kubernetes or Docker); in the one-process mesh, names of the
//! mesh are sent to their loopback servers.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::plan::{Target, DEFAULT_PORT};

/// Maps mesh names to local addresses; every other target resolves normally.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    names: HashMap<String, SocketAddr>,
}

/// The address to connect to, and the authority the call is made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resolved {
    /// `host:port` to open the connection to.
    pub connect: String,
    /// `host:port` as the caller wrote it: the Host header / `:authority`.
    pub authority: String,
}

impl Resolved {
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
    /// A resolver that sends `name` and `name:8080` to `addr` for each pair.
    pub fn with_names(names: impl IntoIterator<Item = (String, SocketAddr)>) -> Resolver {
        Resolver {
            names: names.into_iter().collect(),
        }
    }

    /// Where to connect for `target`.
    pub fn resolve(&self, target: &Target) -> Resolved {
        let authority = target.authority();
        let local = (target.port_or_default() == DEFAULT_PORT)
            .then(|| self.names.get(&target.host))
            .flatten();
        match local {
            Some(addr) => Resolved {
                connect: addr.to_string(),
                authority,
            },
            None => Resolved {
                connect: authority.clone(),
                authority,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_names_with_default_port_go_local() {
        let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let r = Resolver::with_names([("service2".to_string(), addr)]);
        let local = r.resolve(&Target::new("service2", None));
        assert_eq!(local.connect, "127.0.0.1:9001");
        assert_eq!(local.authority, "service2:8080");
        assert_eq!(
            r.resolve(&Target::new("service2", Some(8080))).connect,
            "127.0.0.1:9001"
        );
        assert_eq!(
            r.resolve(&Target::new("service2", Some(81))).connect,
            "service2:81"
        );
        assert_eq!(r.resolve(&Target::new("other", None)).connect, "other:8080");
    }
}
