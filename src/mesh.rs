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
}

/// A running mesh.
pub struct Mesh {
    /// Each name and where it listens, in the order given.
    pub members: Vec<(String, SocketAddr)>,
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
}

impl Mesh {
    /// Binds one server per name and starts them all.
    pub async fn start(names: &[String], options: MeshOptions) -> Result<Mesh, MeshError> {
        if names.is_empty() {
            return Err(MeshError::NoNames);
        }
        let mut listeners = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            // Names resolve as DNS names do: whatever their case.
            if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(MeshError::Duplicate(name.clone()));
            }
            let is_name = !name.is_empty()
                && name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
            if !is_name {
                return Err(MeshError::BadName(name.clone()));
            }
            let port = match options.base_port {
                0 => 0,
                base => u16::try_from(usize::from(base) + i).map_err(|_| MeshError::PortRange {
                    base,
                    count: names.len(),
                })?,
            };
            let addr = SocketAddr::new(options.bind, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| MeshError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| MeshError::Bind { addr, source })?;
            // The raw TCP port: any free port beside the HTTP one.
            let tcp_addr = SocketAddr::new(options.bind, 0);
            let tcp = TcpListener::bind(tcp_addr)
                .await
                .map_err(|source| MeshError::Bind {
                    addr: tcp_addr,
                    source,
                })?;
            listeners.push((name.clone(), local, listener, tcp));
        }
        let members: Vec<(String, SocketAddr)> = listeners
            .iter()
            .map(|(n, a, _, _)| (n.clone(), *a))
            .collect();
        let mut tcp_members = Vec::with_capacity(listeners.len());
        for (name, _, _, tcp) in &listeners {
            let addr = tcp.local_addr().map_err(|source| MeshError::Bind {
                addr: SocketAddr::new(options.bind, 0),
                source,
            })?;
            tcp_members.push((name.clone(), addr));
        }
        let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let tls = MeshTls::make(&names, options.tls)?;
        let executor = Executor::with_transports(
            Resolver::with_names(members.iter().cloned())
                .with_tcp_names(tcp_members.iter().cloned()),
            options.settings,
            options.propagate.clone(),
            crate::exec::transport::Transports::with_tls(tls.hops.clone()),
        );
        let shutdown = Shutdown::default();
        let mut servers = JoinSet::new();
        for ((name, _, listener, tcp), leaf) in listeners.into_iter().zip(tls.leaves) {
            let service = Service::new(
                Identity::named(&name, &options.version),
                executor.clone(),
                options.defaults.clone(),
            );
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
                        tcp: listener,
                        speaks,
                    },
                    Listener { tcp, speaks: lines },
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
            members,
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
