//! Many named services in one process: the demo a newcomer starts with, and
//! the fixture integration tests build on.
//!
//! Each name gets its own server on loopback at consecutive ports; one shared
//! [`Resolver`] sends `@name` (with or without `:8080`) to that name's server,
//! so the original README's URLs work unchanged. Other names resolve normally.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::behavior::Directives;
use crate::config::{Identity, Settings};
use crate::exec::resolve::Resolver;
use crate::exec::Executor;
use crate::plan::default::DefaultCalls;
use crate::server::connection::tls::{TlsOptions, TlsServer};
use crate::server::connection::Speaks;
use crate::server::shutdown::Shutdown;
use crate::server::{serve_on, Listener, Service};

/// How to start a mesh.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// Address to bind every server to, normally 127.0.0.1.
    pub bind: IpAddr,
    /// Port of the first name; the others follow. 0: any free ports.
    pub base_port: u16,
    /// The version every member reports.
    pub version: String,
    pub settings: Settings,
    pub propagate: Vec<HeaderName>,
    pub grace: Duration,
    /// Behaviour every member shows when a request asks for none.
    pub defaults: Directives,
    /// Serve TLS beside plaintext on every port, each member with a
    /// certificate for its name from a CA made at start, which the
    /// members' `https:` and `grpcs:` hops trust.
    pub tls: bool,
    /// Where spans go (each member its own `service.name`), if anywhere,
    /// and the page that shows a trace.
    pub spans: Option<crate::spans::SpanSettings>,
    pub trace_url: Option<String>,
}

/// A running mesh.
pub struct Mesh {
    /// Each server's name and where it listens, in the order given (a
    /// name with replicas or versions once per server).
    pub members: Vec<(String, SocketAddr)>,
    /// The version each server of `members` reports.
    pub versions: Vec<String>,
    /// Each name and where its raw TCP port listens (`tcp:name` and
    /// `name:9000` reach it).
    pub tcp: Vec<(String, SocketAddr)>,
    shutdown: Shutdown,
    servers: JoinSet<std::io::Result<()>>,
    ca: Option<String>,
}

/// The certificates of a TLS mesh: a CA, a leaf per member, and the hop
/// trust that includes the CA.
struct MeshTls {
    ca: Option<String>,
    leaves: Vec<Option<crate::certs::Made>>,
    hops: crate::exec::tls::HopTls,
}

impl MeshTls {
    fn make(names: &[String], tls: bool) -> Result<MeshTls, MeshError> {
        let fail = |e: &dyn std::fmt::Display| MeshError::Tls(e.to_string());
        let (ca, leaves) = if tls {
            let (ca, leaves) = crate::certs::made(names, &crate::certs::CertsOptions::default())
                .map_err(|e| fail(&e))?;
            (Some(ca.cert_pem), leaves.into_iter().map(Some).collect())
        } else {
            (None, vec![None; names.len()])
        };
        let hops = crate::exec::tls::HopTls::new(&crate::exec::tls::HopTlsOptions {
            ca_pem: ca.clone(),
            ..Default::default()
        })
        .map_err(|e| fail(&e))?;
        Ok(MeshTls { ca, leaves, hops })
    }
}

/// Why a mesh did not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("no service names given")]
    NoNames,
    #[error("service name \"{0}\" given twice (names compare without case, as host names do)")]
    Duplicate(String),
    #[error("\"{0}\" is not a service name: use letters, digits, '-', '.' or '_', at most 63, starting with a letter or digit")]
    BadName(String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("port {base} + {count} names runs past 65535")]
    PortRange { base: u16, count: usize },
    #[error("TLS for the mesh: {0}")]
    Tls(String),
    #[error("spans: {0}")]
    Spans(String),
}

/// One service of a mesh, as a topology file or `NAME=PLAN` describes it:
/// one version with its replicas, its own behaviour and default cascade.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    /// The version it reports; `None`: the mesh's.
    pub version: Option<String>,
    /// Servers of this name and version (each its own port, taken in turn
    /// with the name's other replicas); at least 1.
    pub replicas: usize,
    /// The plan a request whose target has no command runs (`--calls`).
    pub calls: Option<DefaultCalls>,
    /// Its behaviour when a request asks for none; `None`: the mesh's.
    pub defaults: Option<Directives>,
    /// Serve TLS beside plaintext, as the whole mesh does with `tls`.
    pub tls: bool,
}

impl Member {
    /// A member as `servicemock mesh` takes it: `NAME`, or `NAME=PLAN`
    /// with its default cascade (an @-path, as `serve --calls`).
    pub fn from_arg(
        arg: &str,
        limits: &crate::plan::Limits,
    ) -> Result<Member, crate::plan::PlanError> {
        match arg.split_once('=') {
            None => Ok(Member::named(arg)),
            Some((name, path)) => Ok(Member {
                calls: Some(DefaultCalls::from_path(path, limits)?),
                ..Member::named(name)
            }),
        }
    }

    /// A member with one replica and the mesh's version and behaviour.
    pub fn named(name: &str) -> Member {
        Member {
            name: name.to_owned(),
            version: None,
            replicas: 1,
            calls: None,
            defaults: None,
            tls: false,
        }
    }
}

/// Whether `name` can be a mesh member's name (a DNS label, mostly).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

/// One server of the mesh, bound and not yet serving.
struct Bound {
    member: usize,
    replica: usize,
    addr: SocketAddr,
    http: TcpListener,
    tcp: TcpListener,
}

impl Mesh {
    /// Binds one server per name and starts them all.
    pub async fn start(names: &[String], options: MeshOptions) -> Result<Mesh, MeshError> {
        let members: Vec<Member> = names.iter().map(|n| Member::named(n)).collect();
        Mesh::start_members(&members, options).await
    }

    /// Binds one server per replica of each member and starts them all. A
    /// name may come back only as another version of the same service.
    pub async fn start_members(
        members: &[Member],
        options: MeshOptions,
    ) -> Result<Mesh, MeshError> {
        if members.is_empty() {
            return Err(MeshError::NoNames);
        }
        let version_of = |m: &Member| m.version.clone().unwrap_or_else(|| options.version.clone());
        for (i, member) in members.iter().enumerate() {
            // Names resolve as DNS names do: whatever their case.
            let again = members[..i].iter().any(|m| {
                m.name.eq_ignore_ascii_case(&member.name) && version_of(m) == version_of(member)
            });
            if again {
                return Err(MeshError::Duplicate(member.name.clone()));
            }
            if !is_name(&member.name) {
                return Err(MeshError::BadName(member.name.clone()));
            }
        }
        let count: usize = members.iter().map(|m| m.replicas.max(1)).sum();
        let mut bound = Vec::with_capacity(count);
        for (m, member) in members.iter().enumerate() {
            for replica in 0..member.replicas.max(1) {
                let port = match options.base_port {
                    0 => 0,
                    base => u16::try_from(usize::from(base) + bound.len())
                        .map_err(|_| MeshError::PortRange { base, count })?,
                };
                let addr = SocketAddr::new(options.bind, port);
                let http = TcpListener::bind(addr)
                    .await
                    .map_err(|source| MeshError::Bind { addr, source })?;
                let addr = http
                    .local_addr()
                    .map_err(|source| MeshError::Bind { addr, source })?;
                // The raw TCP port: any free port beside the HTTP one.
                let any = SocketAddr::new(options.bind, 0);
                let tcp = TcpListener::bind(any)
                    .await
                    .map_err(|source| MeshError::Bind { addr: any, source })?;
                bound.push(Bound {
                    member: m,
                    replica,
                    addr,
                    http,
                    tcp,
                });
            }
        }
        let mut servers_of = Vec::with_capacity(bound.len());
        let mut tcp_members = Vec::with_capacity(bound.len());
        for b in &bound {
            let name = members[b.member].name.clone();
            let tcp = b.tcp.local_addr().map_err(|source| MeshError::Bind {
                addr: SocketAddr::new(options.bind, 0),
                source,
            })?;
            servers_of.push((name.clone(), b.addr));
            tcp_members.push((name, tcp));
        }
        let mut names: Vec<String> = Vec::new();
        for member in members {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&member.name)) {
                names.push(member.name.clone());
            }
        }
        let tls = MeshTls::make(&names, options.tls || members.iter().any(|m| m.tls))?;
        let executor = Executor::with_transports(
            Resolver::with_names(servers_of.iter().cloned())
                .with_tcp_names(tcp_members.iter().cloned()),
            options.settings,
            options.propagate.clone(),
            crate::exec::transport::Transports::with_tls(tls.hops.clone()),
        );
        let shutdown = Shutdown::default();
        let mut servers = JoinSet::new();
        let mut versions = Vec::with_capacity(bound.len());
        for b in bound {
            let member = &members[b.member];
            let version = version_of(member);
            let mut identity = Identity::named(&member.name, &version);
            if count > members.len() || member.version.is_some() {
                // A pod's name, so replicas tell apart in a report.
                identity.host = format!("{}-{version}-{}", member.name, b.replica).into();
            }
            versions.push(version);
            let spans = match &options.spans {
                Some(settings) => Some(
                    crate::spans::Spans::start(settings, &identity, crate::spans::Naming::Member)
                        .map_err(MeshError::Spans)?,
                ),
                None => None,
            };
            let service = Service::calling(
                identity,
                executor.clone(),
                member
                    .defaults
                    .clone()
                    .unwrap_or_else(|| options.defaults.clone()),
                member.calls.clone(),
                crate::server::Tracing {
                    spans,
                    trace_url: options.trace_url.clone(),
                },
            );
            let leaf = names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(&member.name))
                .filter(|_| options.tls || member.tls)
                .and_then(|i| tls.leaves[i].clone());
            let speaks = match leaf {
                None => Speaks::default(),
                Some(leaf) => Speaks {
                    tls: Some(
                        TlsServer::start(TlsOptions {
                            made: vec![leaf],
                            ..TlsOptions::default()
                        })
                        .map_err(|e| MeshError::Tls(e.to_string()))?,
                    ),
                    tls_only: false,
                    lines: None,
                },
            };
            let lines = Speaks {
                lines: Some(crate::server::connection::TcpLines::default()),
                ..speaks.clone()
            };
            servers.spawn(serve_on(
                vec![
                    Listener {
                        tcp: b.http,
                        speaks,
                    },
                    Listener {
                        tcp: b.tcp,
                        speaks: lines,
                    },
                ],
                Arc::clone(&service),
                {
                    let wait = shutdown.wait();
                    async move {
                        wait.await;
                        Duration::ZERO
                    }
                },
                options.grace,
            ));
        }
        Ok(Mesh {
            members: servers_of,
            versions,
            tcp: tcp_members,
            shutdown,
            servers,
            ca: tls.ca,
        })
    }

    /// The CA the members' certificates are signed by, PEM (TLS meshes).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_deref()
    }

    /// Where `name` listens.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// Where `name`'s raw TCP port listens.
    pub fn tcp_addr(&self, name: &str) -> Option<SocketAddr> {
        self.tcp.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Starts the graceful shutdown of every member and waits for all.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.trigger();
        while let Some(done) = self.servers.join_next().await {
            done.map_err(std::io::Error::other)??;
        }
        Ok(())
    }

    /// Waits for `signal`, then stops.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        signal.await;
        self.stop().await
    }
}

/// A mesh dropped without [`Mesh::stop`] stops too: its members are told
/// to shut down and their tasks are aborted with the set that holds them
/// (a test's mesh ends with its scope).
impl Drop for Mesh {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
