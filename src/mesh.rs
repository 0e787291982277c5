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
use crate::server::shutdown::Shutdown;
use crate::server::{serve, Service};

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
}

/// A running mesh.
pub struct Mesh {
    /// Each name and where it listens, in the order given.
    pub members: Vec<(String, SocketAddr)>,
    shutdown: Shutdown,
    servers: JoinSet<std::io::Result<()>>,
}

/// Why a mesh did not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("no service names given")]
    NoNames,
    #[error("service name \"{0}\" given twice")]
    Duplicate(String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("port {base} + {count} names runs past 65535")]
    PortRange { base: u16, count: usize },
}

impl Mesh {
    /// Binds one server per name and starts them all.
    pub async fn start(names: &[String], options: MeshOptions) -> Result<Mesh, MeshError> {
        if names.is_empty() {
            return Err(MeshError::NoNames);
        }
        let mut listeners = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(MeshError::Duplicate(name.clone()));
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
            listeners.push((name.clone(), local, listener));
        }
        let members: Vec<(String, SocketAddr)> =
            listeners.iter().map(|(n, a, _)| (n.clone(), *a)).collect();
        let executor = Executor::new(
            Resolver::with_names(members.iter().cloned()),
            options.settings,
            options.propagate.clone(),
        );
        let shutdown = Shutdown::default();
        let mut servers = JoinSet::new();
        for (name, _, listener) in listeners {
            let service = Service::new(
                Identity::named(&name, &options.version),
                executor.clone(),
                options.defaults.clone(),
            );
            servers.spawn(serve(
                listener,
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
            shutdown,
            servers,
        })
    }

    /// Where `name` listens.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
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
