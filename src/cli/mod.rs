//! The command line: every subcommand, flag and environment variable of
//! `servicemock`. `--help` on each is the manual. The subcommands' own
//! arguments live beside it: the clients' ([`clients`]), `serve`'s
//! ([`serve`]) and the mesh's and manifests' ([`deploy`]).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderName;

use servicemock::behavior::{self, Directives};
use servicemock::config::{defaults, parse_duration, ConnectionLimits, Settings};
use servicemock::exec::context::default_propagated;
use servicemock::plan::{Limits, Protocol};
use servicemock::server::connection::tls::{ClientAuth, TlsOptions};

mod clients;
mod deploy;
mod serve;

pub(crate) use clients::{CallArgs, ClientFlags, LoadArgs};
pub(crate) use deploy::{ManifestsArgs, MeshArgs};
pub(crate) use serve::{ServeArgs, TlsFlags, Tuning};

/// A mock service for testing service meshes: deploy it under many names and
/// chain the copies with one URL (`/@service2|service3/@service1/end`) or one
/// gRPC message. HTTP/1.1, h2c and gRPC on one port.
#[derive(Parser)]
#[command(name = "servicemock", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long, global = true, env = "SERVICEMOCK_THREADS")]
    pub(crate) threads: Option<usize>,
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "SERVICEMOCK_LOG_FORMAT",
        default_value = "text"
    )]
    pub(crate) log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Serve one named service (HTTP/1.1, h2c and gRPC on one port).
    Serve(Box<ServeArgs>),
    /// Run several named services in this one process on consecutive
    /// loopback ports; `@name` calls between them resolve in-process.
    Mesh(MeshArgs),
    /// Print the CallRequest (proto3 JSON, what `grpcurl -d` takes) for a path,
    /// or the syntax error (exit status 2).
    Plan {
        /// An @-path, e.g. '/@service2|service3/@service1/end' (the leading
        /// '/' may be left out; a pasted URL's path is taken).
        path: String,
    },
    /// Call a running servicemock over HTTP or gRPC and print its report.
    #[command(
        after_help = "Exit status: 0 the call and every hop below it succeeded; \
        1 the service answered a failure (its report is printed); 2 the call could not be \
        made (a bad address, path, plan or header, or nothing answered)."
    )]
    Call(CallArgs),
    /// Drive a cascade with many calls and say what the mesh did, per position
    /// of the tree; with --expect, test the shares seen (exit 0 pass, 1 fail,
    /// 2 too few answers to judge).
    Load(LoadArgs),
    /// Print Kubernetes manifests (Service + Deployment) for named services:
    /// `kubectl apply -f <(servicemock manifests service1 service2 service3)`.
    Manifests(ManifestsArgs),
    /// Show or change a running service's /control (it must run with
    /// --control): `servicemock control localhost:8080 status=503@50% ready=false`;
    /// `KEY=` clears a directive; `--reset` goes back to its flags.
    Control {
        /// The server: host:port, host (port 8080) or http://host:port.
        addr: String,
        /// Changes: delay=, status=, grpcStatus=, size=, reset= (directive
        /// values, conditions included), ready=true|false, live=true|false.
        changes: Vec<String>,
        /// Back to the flags' defaults, ready and live.
        #[arg(long, conflicts_with = "changes")]
        reset: bool,
    },
    /// Write a CA and, for each name, a certificate and key usable as server
    /// and client (DNS names NAME, NAME.NS, NAME.NS.svc,
    /// NAME.NS.svc.cluster.local, localhost; IP 127.0.0.1; URI
    /// spiffe://TD/ns/NS/sa/NAME): ca.pem, ca-key.pem, NAME.pem, NAME-key.pem.
    Certs {
        /// Names of the services.
        #[arg(required = true)]
        names: Vec<String>,
        /// Folder to write into (made if missing).
        #[arg(long)]
        out: std::path::PathBuf,
        /// The namespace in the names and SPIFFE ids.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The SPIFFE trust domain.
        #[arg(long, default_value = "cluster.local")]
        trust_domain: String,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Print what a service received (its GET /requests; the service needs
    /// --record N), newest first; with --follow, then each new one as it
    /// arrives, one line each, until interrupted.
    Requests {
        /// The server: host:port, host (port 8080) or http://host:port.
        addr: String,
        /// Keep printing new requests as they arrive.
        #[arg(long)]
        follow: bool,
        /// One text line per request instead of JSON.
        #[arg(long)]
        tree: bool,
    },
    /// Check a server's /health, or its grpc.health.v1 with --protocol
    /// grpc|grpcs (for a container HEALTHCHECK; exit 0 if healthy).
    Health {
        #[command(flatten)]
        via: ClientFlags,
        /// The server: host:port, host (port 8080) or http://host:port.
        #[arg(default_value = "127.0.0.1:8080")]
        addr: String,
        /// Give up after this long.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// The plan in a `--plan` file: a JSON CallRequest, checked as a server
/// checks one.
pub(crate) fn read_plan_file(file: &std::path::Path) -> anyhow::Result<servicemock::plan::Plan> {
    let body =
        std::fs::read(file).with_context(|| format!("cannot read --plan {}", file.display()))?;
    servicemock::plan::json::plan_from_json(&body, &Limits::default())
        .with_context(|| format!("--plan {}", file.display()))
}

/// `-H 'name: value'` as the headers of a call, each checked by the one
/// rule for hop headers (directives included).
pub(crate) fn parse_headers(
    written: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut headers = std::collections::BTreeMap::new();
    for h in written {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("-H {h:?}: write 'name: value'"))?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        servicemock::plan::check_hop_header(&name, value)
            .map_err(|e| anyhow::anyhow!("-H {h:?}: {e}"))?;
        headers.insert(name, value.to_owned());
    }
    Ok(headers)
}

/// TLS for calls out: a CA file beside the public roots, a client
/// certificate and key, or any server certificate taken.
pub(crate) fn hop_tls(
    ca: &Option<std::path::PathBuf>,
    cert: &Option<std::path::PathBuf>,
    key: &Option<std::path::PathBuf>,
    insecure: bool,
) -> anyhow::Result<servicemock::exec::tls::HopTls> {
    Ok(servicemock::exec::tls::HopTls::new(
        &servicemock::exec::tls::HopTlsOptions {
            ca: ca.clone(),
            ca_pem: None,
            identity: cert.clone().zip(key.clone()),
            insecure,
        },
    )?)
}

/// A percentage written `10` or `10%`.
pub(crate) fn parse_percentage(text: &str) -> Result<f64, String> {
    behavior::flags::percentage(text)
}
