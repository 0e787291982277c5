//! The command line: every subcommand, flag and environment variable of
//! `servicemock`. `--help` on each is the manual.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderName;

use servicemock::behavior::{self, Directives};
use servicemock::config::{parse_duration, ConnectionLimits, Settings};
use servicemock::exec::context::default_propagated;
use servicemock::plan::{Limits, Protocol};
use servicemock::server::connection::tls::{ClientAuth, TlsOptions};

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

/// `servicemock call`'s arguments.
#[derive(Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    pub(crate) via: ClientFlags,
    /// The service to call: host:port, host (port 8080) or http://host:port.
    pub(crate) addr: String,
    /// The @-path to send, e.g. '/@service2/@grpc:service3/end' (the
    /// leading '/' may be left out; not with --plan).
    #[arg(required_unless_present = "plan", value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// A JSON CallRequest file (as grpcurl -d takes it, e.g. from
    /// `servicemock plan`) instead of a path.
    #[arg(long, conflicts_with = "path")]
    pub(crate) plan: Option<std::path::PathBuf>,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Print the indented text tree instead of the JSON report.
    #[arg(long, conflicts_with = "flat")]
    pub(crate) tree: bool,
    /// Print one JSON object per hop with its position (for jq and scripts).
    #[arg(long)]
    pub(crate) flat: bool,
    /// A header on the call, 'name: value' (directives too:
    /// 'x-mock-status: 503'); repeatable.
    #[arg(short = 'H', long = "header")]
    pub(crate) headers: Vec<String>,
    /// Run the call N times on one gRPC stream (CallStream), printing
    /// each report as it comes, one per line (1 to 10000).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(servicemock::behavior::stream::MAX_STREAM_MESSAGES)))]
    pub(crate) stream: Option<u32>,
    /// With --stream: the pause between runs.
    #[arg(long, requires = "stream", value_parser = parse_duration)]
    pub(crate) interval: Option<Duration>,
    /// With --stream: end the stream at the first run that fails.
    #[arg(long, requires = "stream")]
    pub(crate) stop_on_failure: bool,
}

#[derive(Args)]
pub(crate) struct LoadArgs {
    /// The service to call: host:port, host (port 8080) or http://host:port.
    pub(crate) target: String,
    /// The @-path the target runs, e.g. '/@service2/end' (not with
    /// --plan); over tcp, a line that is no path is echoed.
    #[arg(required_unless_present = "plan", value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// A JSON CallRequest (as grpcurl -d takes it) instead of a path.
    #[arg(long, conflicts_with = "path")]
    pub(crate) plan: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) via: ClientFlags,
    /// Workers (closed loop), or most calls in flight (with --qps).
    #[arg(short = 'c', long, default_value_t = 8)]
    pub(crate) connections: usize,
    /// Calls to make (default 200 when -d is not given either).
    #[arg(short = 'n', long)]
    pub(crate) requests: Option<u64>,
    /// How long to run.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Open loop: calls per second, on a fixed schedule, timed from when
    /// each was due.
    #[arg(long)]
    pub(crate) qps: Option<f64>,
    /// Longest one call may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// A header on every call, 'name: value' (directives too: 'x-mock-status: 503@10%').
    #[arg(short = 'H', long = "header")]
    pub(crate) headers: Vec<String>,
    /// Expected shares, tested: '[PLACE.]FIELD=VALUE:PERCENT,…', e.g.
    /// 'service2.version=v1:90,v2:10' or 'status=200:90,503:10' (repeatable).
    #[arg(long)]
    pub(crate) expect: Vec<String>,
    /// Confidence of the --expect tests, in percent.
    #[arg(long, default_value_t = 99.0)]
    pub(crate) confidence: f64,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// With --protocol tcp: keep connections for the next call (by default
    /// each call opens one, as an Envoy TCP split is decided per connection).
    #[arg(long)]
    pub(crate) reuse: bool,
    /// Make each call one gRPC Converse stream of N messages: every message
    /// is tallied as a call, and the table says how many distinct pods
    /// answered each stream (a proxy balancing per stream pins it to one).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(servicemock::behavior::stream::MAX_STREAM_MESSAGES)))]
    pub(crate) stream: Option<u32>,
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

impl LoadArgs {
    /// The run these arguments ask for, or what is wrong with them.
    pub(crate) fn options(&self) -> anyhow::Result<servicemock::load::LoadOptions> {
        use servicemock::plan::path;
        let limits = Limits::default();
        let authority = servicemock::client::authority(&self.target)?;
        let target = path::parse_target_text(&authority)
            .map_err(|e| anyhow::anyhow!("target {:?}: {e}", self.target))?;
        let plan = match (&self.plan, &self.path) {
            (Some(file), _) => read_plan_file(file)?,
            // Over tcp, a line that is no path is echoed: who answered is
            // read from the echo's prefix.
            (None, Some(p)) if self.via.protocol() == Protocol::Tcp && !p.starts_with('/') => {
                servicemock::plan::Plan::leaf("/")
            }
            (None, Some(p)) => {
                let p = servicemock::client::request_path(p)?;
                path::parse_path(&p, &limits)?
            }
            (None, None) => anyhow::bail!("give a path or --plan FILE"),
        };
        let headers = parse_headers(&self.headers)?;
        anyhow::ensure!(
            (50.0..100.0).contains(&self.confidence),
            "--confidence {}: a percentage from 50 to below 100",
            self.confidence
        );
        anyhow::ensure!(
            (1..=servicemock::load::MAX_CONNECTIONS).contains(&self.connections),
            "-c {}: from 1 to {}",
            self.connections,
            servicemock::load::MAX_CONNECTIONS
        );
        if let Some(qps) = self.qps {
            anyhow::ensure!(qps > 0.0 && qps.is_finite(), "--qps {qps}: a positive rate");
        }
        let expectations = self
            .expect
            .iter()
            .map(|e| servicemock::load::expect::Expectation::parse(e).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let echo = self
            .path
            .as_ref()
            .filter(|p| self.via.protocol() == Protocol::Tcp && !p.starts_with('/'))
            .cloned();
        anyhow::ensure!(
            !self.reuse || self.via.protocol() == Protocol::Tcp,
            "--reuse keeps tcp connections: it needs --protocol tcp"
        );
        anyhow::ensure!(
            self.stream.is_none()
                || matches!(self.via.protocol(), Protocol::Grpc | Protocol::Grpcs),
            "--stream makes gRPC Converse streams: it needs --protocol grpc or grpcs"
        );
        Ok(servicemock::load::LoadOptions {
            target,
            echo,
            reuse: self.reuse,
            stream: self.stream,
            protocol: self.via.protocol(),
            tls: self.via.tls()?,
            plan,
            headers,
            connections: self.connections,
            requests: self.requests,
            duration: self.duration,
            qps: self.qps,
            timeout: self.timeout,
            expectations,
            confidence: self.confidence / 100.0,
        })
    }
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (also spelled --listenAddress, as in the original).
    #[arg(
        long,
        alias = "listenAddress",
        env = "SERVICEMOCK_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub(crate) listen: String,
    /// The name this copy answers as (default: the host name).
    #[arg(long, env = "SERVICEMOCK_NAME")]
    pub(crate) name: Option<String>,
    /// The version this copy reports, e.g. v2 for a canary (--version
    /// prints the program's).
    #[arg(
        id = "service_version",
        long = "service-version",
        env = "SERVICEMOCK_VERSION",
        default_value = "v1"
    )]
    pub(crate) version: String,
    /// Host or pod name to report (Kubernetes downward API: POD_NAME).
    #[arg(long, env = "POD_NAME")]
    pub(crate) host_name: Option<String>,
    /// Namespace to report (Kubernetes downward API: POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "")]
    pub(crate) namespace: String,
    /// Pod IP to report (Kubernetes downward API: POD_IP).
    #[arg(long, env = "POD_IP", default_value = "")]
    pub(crate) pod_ip: String,
    /// After SIGTERM: how long to keep serving new requests while `/ready`
    /// answers 503 and gRPC health NOT_SERVING, before the listener closes
    /// (Kubernetes takes seconds to take a pod out of its endpoints).
    /// Ctrl-C stops at once.
    #[arg(long, env = "SERVICEMOCK_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub(crate) drain_delay: Duration,
    /// Also serve raw TCP lines on this address (repeatable; off by
    /// default): a line starting with / runs that plan and is answered
    /// with the report as one JSON line, any other is echoed prefixed by
    /// who answered. TLS too when --tls-cert is set (first-byte rule).
    #[arg(long, env = "SERVICEMOCK_TCP_LISTEN", value_delimiter = ',')]
    pub(crate) tcp_listen: Vec<String>,
    /// Send this line first on every TCP connection (a server-first
    /// protocol, for Istio's protocol-sniffing experiment). Not with TLS.
    #[arg(long, env = "SERVICEMOCK_TCP_BANNER", requires = "tcp_listen")]
    pub(crate) tcp_banner: Option<String>,
    #[command(flatten)]
    pub(crate) calls: CallsFlags,
    #[command(flatten)]
    pub(crate) tls: TlsFlags,
    #[command(flatten)]
    pub(crate) tuning: Tuning,
}

/// A service's default cascade.
#[derive(Args)]
pub(crate) struct CallsFlags {
    /// The plan a request runs when its own target has no command, as an
    /// @-path: `--calls '/@service2|service3/@service4/'` makes `GET /` (a
    /// browser, an ingress, fortio) call the whole cascade. The request's
    /// path and query are the remainder the last level is called with,
    /// unless the plan names its own (`/@reviews/details`).
    #[arg(long, env = "SERVICEMOCK_CALLS", conflicts_with = "calls_file")]
    pub(crate) calls: Option<String>,
    /// The same as a CallRequest in JSON (as a POST body carries one).
    #[arg(long, env = "SERVICEMOCK_CALLS_FILE")]
    pub(crate) calls_file: Option<std::path::PathBuf>,
}

impl CallsFlags {
    /// The default cascade, checked against `limits`; a mistake stops the
    /// service at start, naming where it is.
    pub(crate) fn default_calls(
        &self,
        limits: &Limits,
    ) -> anyhow::Result<Option<servicemock::plan::default::DefaultCalls>> {
        use servicemock::plan::default::DefaultCalls;
        if let Some(path) = &self.calls {
            return DefaultCalls::from_path(path, limits)
                .map(Some)
                .with_context(|| format!("--calls {path}"));
        }
        if let Some(file) = &self.calls_file {
            let json =
                std::fs::read(file).with_context(|| format!("--calls-file {}", file.display()))?;
            return DefaultCalls::from_json(&json, limits)
                .map(Some)
                .with_context(|| format!("--calls-file {}", file.display()));
        }
        Ok(None)
    }
}

/// How a client command (`call`, `load`, `health`) reaches the target.
#[derive(Args)]
pub(crate) struct ClientFlags {
    /// How to call the target: a hop scheme (http, h2c, grpc, https, grpcs, tcp).
    #[arg(long, value_parser = parse_protocol, default_value = "http")]
    pub(crate) protocol: Protocol,
    /// Same as --protocol grpc.
    #[arg(long, hide = true, conflicts_with_all = ["h2c", "protocol"])]
    pub(crate) grpc: bool,
    /// Same as --protocol h2c.
    #[arg(long, hide = true, conflicts_with = "protocol")]
    pub(crate) h2c: bool,
    /// CA certificates (PEM) to trust for https/grpcs, beside the public roots.
    #[arg(long)]
    pub(crate) cacert: Option<std::path::PathBuf>,
    /// A client certificate (PEM) to present, with --key (mTLS).
    #[arg(long, requires = "key")]
    pub(crate) cert: Option<std::path::PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, requires = "cert")]
    pub(crate) key: Option<std::path::PathBuf>,
    /// Accept any server certificate (as curl -k).
    #[arg(long, short = 'k')]
    pub(crate) insecure: bool,
}

/// TLS for calls out: a CA file beside the public roots, a client
/// certificate and key, or any server certificate taken.
fn hop_tls(
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
fn parse_percentage(text: &str) -> Result<f64, String> {
    behavior::flags::percentage(text)
}

fn parse_protocol(word: &str) -> Result<Protocol, String> {
    Protocol::from_scheme(word).ok_or_else(|| {
        let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown protocol {word:?} (one of {})", known.join(", "))
    })
}

impl ClientFlags {
    pub(crate) fn protocol(&self) -> Protocol {
        match (self.grpc, self.h2c) {
            (true, _) => Protocol::Grpc,
            (_, true) => Protocol::H2c,
            _ => self.protocol,
        }
    }

    /// What https/grpcs calls trust and present.
    pub(crate) fn tls(&self) -> anyhow::Result<servicemock::exec::tls::HopTls> {
        hop_tls(&self.cacert, &self.cert, &self.key, self.insecure)
    }
}

/// TLS on the port: a connection that opens with a TLS ClientHello is
/// served over TLS (ALPN h2 and http/1.1: HTTP/1.1, HTTP/2 and gRPC),
/// any other in plaintext as without these flags.
#[derive(Args)]
#[command(next_help_heading = "TLS")]
pub(crate) struct TlsFlags {
    /// Certificate chain to serve, PEM (repeatable, each with its
    /// --tls-key: the one whose names match the SNI is served, else the
    /// first). Files are re-read when their contents change.
    #[arg(
        long = "tls-cert",
        env = "SERVICEMOCK_TLS_CERT",
        value_delimiter = ',',
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Vec<std::path::PathBuf>,
    /// Private key of each --tls-cert, PEM, in the same order.
    #[arg(
        long = "tls-key",
        env = "SERVICEMOCK_TLS_KEY",
        value_delimiter = ',',
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Vec<std::path::PathBuf>,
    /// Make a self-signed certificate for the service's name (and
    /// localhost, 127.0.0.1) at start, instead of reading files.
    #[arg(long, env = "SERVICEMOCK_TLS_SELF_SIGNED")]
    pub(crate) tls_self_signed: bool,
    /// Refuse plaintext connections on --listen (TLS only).
    #[arg(long, env = "SERVICEMOCK_TLS_ONLY")]
    pub(crate) tls_only: bool,
    /// Also serve TLS only on this address, beside --listen (e.g.
    /// 0.0.0.0:8443, with --listen kept in cleartext for probes).
    #[arg(long, env = "SERVICEMOCK_TLS_LISTEN")]
    pub(crate) tls_listen: Option<String>,
    /// CA certificates (PEM) client certificates are verified against (mTLS).
    #[arg(long, env = "SERVICEMOCK_TLS_CLIENT_CA")]
    pub(crate) tls_client_ca: Option<std::path::PathBuf>,
    /// With --tls-client-ca: whether a client must present a certificate.
    #[arg(
        long,
        env = "SERVICEMOCK_TLS_CLIENT_AUTH",
        default_value = "optional",
        requires = "tls_client_ca"
    )]
    pub(crate) tls_client_auth: ClientAuthFlag,
    /// CA certificates (PEM) that https: and grpcs: hops trust beside the
    /// public roots.
    #[arg(long, env = "SERVICEMOCK_HOP_CA")]
    pub(crate) hop_ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) https: and grpcs: hops present (mTLS
    /// origination), with --hop-key.
    #[arg(long, env = "SERVICEMOCK_HOP_CERT", requires = "hop_key")]
    pub(crate) hop_cert: Option<std::path::PathBuf>,
    /// The key of --hop-cert (PEM).
    #[arg(long, env = "SERVICEMOCK_HOP_KEY", requires = "hop_cert")]
    pub(crate) hop_key: Option<std::path::PathBuf>,
    /// How often the TLS files are read again to see whether they changed.
    #[arg(long, env = "SERVICEMOCK_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub(crate) tls_reload_interval: Duration,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ClientAuthFlag {
    Optional,
    Required,
}

impl TlsFlags {
    /// What https: and grpcs: hops trust and present.
    pub(crate) fn hops(&self) -> anyhow::Result<servicemock::exec::tls::HopTls> {
        hop_tls(&self.hop_ca, &self.hop_cert, &self.hop_key, false)
    }

    /// The TLS options these flags ask for, or `None` for plaintext only.
    pub(crate) fn options(&self, service_name: &str) -> anyhow::Result<Option<TlsOptions>> {
        let wants = !self.tls_cert.is_empty() || self.tls_self_signed;
        if !wants {
            anyhow::ensure!(
                !self.tls_only && self.tls_listen.is_none() && self.tls_client_ca.is_none(),
                "--tls-only, --tls-listen and --tls-client-ca need a certificate: give --tls-cert and --tls-key, or --tls-self-signed"
            );
            return Ok(None);
        }
        anyhow::ensure!(
            self.tls_cert.len() == self.tls_key.len(),
            "{} --tls-cert but {} --tls-key: give one key per certificate, in the same order",
            self.tls_cert.len(),
            self.tls_key.len()
        );
        let mut self_signed = Vec::new();
        if self.tls_self_signed {
            self_signed.push(service_name.to_owned());
        }
        Ok(Some(TlsOptions {
            pairs: self
                .tls_cert
                .iter()
                .cloned()
                .zip(self.tls_key.iter().cloned())
                .collect(),
            self_signed,
            made: Vec::new(),
            client_ca: self.tls_client_ca.clone(),
            client_auth: match self.tls_client_auth {
                ClientAuthFlag::Optional => ClientAuth::Optional,
                ClientAuthFlag::Required => ClientAuth::Required,
            },
            reload_every: self.tls_reload_interval,
        }))
    }
}

/// `servicemock manifests`: what to generate.
#[derive(Args)]
pub(crate) struct ManifestsArgs {
    /// Names of the services.
    #[arg(required_unless_present = "topology", conflicts_with = "topology")]
    pub(crate) names: Vec<String>,
    /// The services of a topology file (YAML), each version its own
    /// Deployment with its replicas and behaviour flags.
    #[arg(long, value_name = "FILE")]
    pub(crate) topology: Option<std::path::PathBuf>,
    /// A service's default cascade, NAME=PLAN (repeatable), e.g.
    /// --calls 'productpage=/@details|reviews/': set as SERVICEMOCK_CALLS.
    #[arg(long, value_name = "NAME=PLAN", conflicts_with = "topology")]
    pub(crate) calls: Vec<String>,
    /// Namespace of every object (default: kubectl's current one).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// The version label and reported version (--version prints the
    /// program's).
    #[arg(id = "service_version", long = "service-version", default_value = "v1")]
    pub(crate) version: String,
    /// Container image.
    #[arg(long, default_value = "servicemock:latest")]
    pub(crate) image: String,
    /// Replicas per Deployment.
    #[arg(long, default_value_t = 1)]
    pub(crate) replicas: u32,
    /// Start each replica with --control (GET/PUT /control changes its
    /// behaviour, readiness and liveness at run time; for test clusters).
    #[arg(long)]
    pub(crate) control: bool,
    /// Serve TLS on port 8443 (Service port https, appProtocol tls) from
    /// this Secret of type kubernetes.io/tls; '{name}' stands for each
    /// service's name, e.g. --tls '{name}-tls'. 8080 stays cleartext.
    #[arg(long, value_name = "SECRET")]
    pub(crate) tls: Option<String>,
    /// Serve raw TCP lines on this port too (Service port tcp,
    /// appProtocol tcp), e.g. --tcp-port 9000 for Istio's TCP tasks.
    #[arg(long, value_name = "PORT")]
    pub(crate) tcp_port: Option<u16>,
    /// Start each replica with --record N (GET /requests answers the
    /// last N requests it received: the mirroring task's view).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=servicemock::server::recorder::MAX_RECORD as i64))]
    pub(crate) record: Option<u32>,
    /// Export each replica's spans to this OTLP endpoint (sets
    /// OTEL_EXPORTER_OTLP_ENDPOINT), e.g.
    /// http://opentelemetry-collector.observability:4318.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) otlp: Option<String>,
    /// The OTLP protocol of --otlp: grpc (port 4317) or http/protobuf (4318,
    /// the default).
    #[arg(long, value_name = "PROTOCOL", requires = "otlp")]
    pub(crate) otlp_protocol: Option<String>,
}

#[derive(Args)]
pub(crate) struct MeshArgs {
    /// Names of the services, e.g. service1 service2 service3; NAME=PLAN
    /// gives one its default cascade (as serve --calls):
    /// `mesh service1=/@service2/ service2=/@service3/ service3`.
    #[arg(required_unless_present = "topology", conflicts_with = "topology")]
    pub(crate) names: Vec<String>,
    /// Run the services of this topology file (YAML: services, versions
    /// with replicas and behaviour, default calls, TCP ports, TLS), each
    /// replica its own port, replicas of a name called in turn.
    #[arg(long, value_name = "FILE")]
    pub(crate) topology: Option<std::path::PathBuf>,
    /// Port of the first name; the others get the following ports.
    #[arg(long, env = "SERVICEMOCK_BASE_PORT", default_value_t = 8080)]
    pub(crate) base_port: u16,
    /// Address every member listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) bind: IpAddr,
    /// The version every member reports (--version prints the program's).
    #[arg(
        id = "service_version",
        long = "service-version",
        env = "SERVICEMOCK_VERSION",
        default_value = "v1"
    )]
    pub(crate) version: String,
    /// Serve TLS beside plaintext on every port: a CA is made at start, each
    /// member gets a certificate for its name, and https:/grpcs: hops
    /// between members trust it (curl -k, or --cacert with the CA printed).
    #[arg(long)]
    pub(crate) tls: bool,
    #[command(flatten)]
    pub(crate) tuning: Tuning,
}

/// Limits and timeouts shared by `serve` and `mesh`.
#[derive(Args)]
pub(crate) struct Tuning {
    /// Longest a single hop may take.
    #[arg(long, env = "SERVICEMOCK_HOP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) hop_timeout: Duration,
    /// Longest a whole request may take, hops included; callers pass on what is left.
    #[arg(long, env = "SERVICEMOCK_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub(crate) request_timeout: Duration,
    /// Most services a request may pass through (1 to 128). A plan nesting
    /// deeper than what is left is refused before anyone is called (400 /
    /// INVALID_ARGUMENT at the entry); a request arriving past it gets 508.
    #[arg(long, env = "SERVICEMOCK_MAX_DEPTH", default_value_t = Limits::default().max_depth,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(servicemock::plan::MAX_DEPTH_CEILING)))]
    pub(crate) max_depth: u32,
    /// Longest accepted path, in bytes.
    #[arg(long, env = "SERVICEMOCK_MAX_PATH_LEN", default_value_t = Limits::default().max_path_len)]
    pub(crate) max_path_len: usize,
    /// Most targets in one @-command.
    #[arg(long, env = "SERVICEMOCK_MAX_TARGETS", default_value_t = Limits::default().max_targets)]
    pub(crate) max_targets: usize,
    /// Most bytes of trailers a failed gRPC call carries (its report in
    /// grpc-status-details-bin, trimmed to fit, and grpc-message). gRPC
    /// clients refuse over 8 KiB of metadata by default.
    #[arg(long, env = "SERVICEMOCK_GRPC_DETAILS_BUDGET", default_value_t = Settings::default().grpc_details_budget)]
    pub(crate) grpc_details_budget: usize,
    /// Most bytes of downstream reports one request may receive, and of
    /// padding (x-mock-size) and propagated headers its plan may ask for in
    /// all: a hop answer past it is cut, a plan asking more gets 400.
    #[arg(long, env = "SERVICEMOCK_MAX_REPORT_SIZE", default_value_t = Settings::default().max_report_size)]
    pub(crate) max_report_size: usize,
    /// Largest request body read, of any method (a JSON plan included);
    /// a larger one gets 413.
    #[arg(long, env = "SERVICEMOCK_MAX_BODY", default_value_t = Limits::default().max_body)]
    pub(crate) max_body: usize,
    /// Longest a request head may take from its first byte (slowloris).
    #[arg(long, env = "SERVICEMOCK_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) header_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    #[arg(long, env = "SERVICEMOCK_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub(crate) idle_timeout: Duration,
    /// Inbound connections served at once (lowered to leave a quarter of
    /// the open-file limit free); a new one past it is closed at once.
    #[arg(long, env = "SERVICEMOCK_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub(crate) max_connections: usize,
    /// Most calls one request's whole tree may make.
    #[arg(long, env = "SERVICEMOCK_MAX_HOPS", default_value_t = Limits::default().max_hops)]
    pub(crate) max_hops: usize,
    /// Serve GET/PUT/DELETE /control: anyone who reaches the port may then
    /// change this process's default behaviour, readiness and liveness at
    /// run time (for outlier-detection and readiness experiments). Off by
    /// default.
    #[arg(long, env = "SERVICEMOCK_CONTROL")]
    pub(crate) control: bool,
    /// Log one line per request at info level (request id, trace id,
    /// protocol, path, status, duration). Off, the line is at debug level
    /// (RUST_LOG=servicemock=debug shows it).
    #[arg(long, env = "SERVICEMOCK_ACCESS_LOG")]
    pub(crate) access_log: bool,
    /// Keep the last N requests this service received (0 to 10000) and
    /// answer them at GET /requests (off by default: then /requests is a
    /// path like any other).
    #[arg(long, value_name = "N", env = "SERVICEMOCK_RECORD", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=servicemock::server::recorder::MAX_RECORD as i64))]
    pub(crate) record: u32,
    /// How long in-flight requests may take to finish once the listener has
    /// closed (after SIGTERM and the drain delay, or after Ctrl-C).
    #[arg(long, env = "SERVICEMOCK_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub(crate) shutdown_grace: Duration,
    /// Another inbound header to pass on to every hop (repeatable), e.g. end-user.
    #[arg(
        long = "propagate-header",
        env = "SERVICEMOCK_PROPAGATE_HEADERS",
        value_delimiter = ','
    )]
    pub(crate) propagate_headers: Vec<HeaderName>,
    /// Requests served at once; more get 503 / RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "SERVICEMOCK_MAX_CONCURRENT", default_value_t = Settings::default().max_concurrent)]
    pub(crate) max_concurrent: usize,
    /// Longest delay a directive may ask for (a typo must not hold a connection for an hour).
    #[arg(long, env = "SERVICEMOCK_MAX_DELAY", default_value = "10s", value_parser = parse_duration)]
    pub(crate) max_delay: Duration,
    #[command(flatten)]
    pub(crate) behavior: BehaviorFlags,
    #[command(flatten)]
    pub(crate) tracing: TracingFlags,
}

/// OpenTelemetry spans. The standard OTEL_* variables configure them too
/// (OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL, OTEL_SERVICE_NAME,
/// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*); with no
/// endpoint set, none are made.
#[derive(Args)]
pub(crate) struct TracingFlags {
    /// Export spans of every request and hop to this OTLP collector, as
    /// OTEL_EXPORTER_OTLP_ENDPOINT would (which it overrides): a base URL,
    /// http://HOST:4318 for http/protobuf (the default protocol), or
    /// http://HOST:4317 with OTEL_EXPORTER_OTLP_PROTOCOL=grpc.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
    /// A page that shows a trace, `{trace_id}` (and `{span_id}`) replaced
    /// with the request's: every level of the report links to it, e.g.
    /// 'http://jaeger:16686/trace/{trace_id}'.
    #[arg(long, env = "SERVICEMOCK_TRACE_URL", value_name = "TEMPLATE")]
    pub(crate) trace_url: Option<String>,
}

impl TracingFlags {
    /// The span settings these flags and the OTEL_* variables give.
    pub(crate) fn settings(&self) -> anyhow::Result<Option<servicemock::spans::SpanSettings>> {
        if let Some(template) = &self.trace_url {
            anyhow::ensure!(
                template.contains("{trace_id}"),
                "--trace-url {template:?}: the template must hold {{trace_id}}, where the trace id goes"
            );
        }
        Ok(servicemock::spans::SpanSettings::from_env(
            self.otlp_endpoint.as_deref(),
        )?)
    }
}

/// Process-wide behaviour, as x-mock-* headers would ask it of each request
/// (a header of the same name wins): deploy a "slow v2" or a "flaky v2".
#[derive(Args)]
pub(crate) struct BehaviorFlags {
    /// Delay every answer: 250ms, 50ms..200ms, 1s@10%, 150ms:10,2s:5.
    #[arg(long, env = "SERVICEMOCK_DELAY")]
    pub(crate) delay: Option<String>,
    /// Answer with this HTTP status: 503, 503@25%, 503:20,404:10.
    #[arg(long, env = "SERVICEMOCK_STATUS")]
    pub(crate) status: Option<String>,
    /// Answer gRPC calls with this code: UNAVAILABLE, 14@25%.
    #[arg(long, env = "SERVICEMOCK_GRPC_STATUS")]
    pub(crate) grpc_status: Option<String>,
    /// Fail this percentage of requests (503 over HTTP, UNAVAILABLE over
    /// gRPC): 10 or 10%.
    #[arg(long, env = "SERVICEMOCK_ERROR_RATE", value_parser = parse_percentage)]
    pub(crate) error_rate: Option<f64>,
    /// Pad every answer with this many bytes: 1024, 64KiB.
    #[arg(long, env = "SERVICEMOCK_SIZE")]
    pub(crate) size: Option<String>,
    /// Drop this percentage of connections without an answer: 5 or 5%.
    #[arg(long, env = "SERVICEMOCK_RESET_RATE")]
    pub(crate) reset_rate: Option<String>,
}

impl BehaviorFlags {
    pub(crate) fn directives(&self, max_delay: Duration) -> anyhow::Result<Directives> {
        let error_rate = self.error_rate.map(|rate| rate.to_string());
        let given: Vec<(&str, &str)> = [
            ("error-rate", &error_rate),
            ("delay", &self.delay),
            ("status", &self.status),
            ("grpc-status", &self.grpc_status),
            ("size", &self.size),
            ("reset-rate", &self.reset_rate),
        ]
        .into_iter()
        .filter_map(|(flag, value)| value.as_deref().map(|v| (flag, v)))
        .collect();
        behavior::flags::directives(&given, max_delay).map_err(anyhow::Error::msg)
    }
}

impl Tuning {
    pub(crate) fn settings(&self) -> Settings {
        Settings {
            limits: Limits {
                max_path_len: self.max_path_len,
                max_targets: self.max_targets,
                max_hops: self.max_hops,
                max_depth: self.max_depth,
                max_body: self.max_body,
            },
            hop_timeout: self.hop_timeout,
            request_timeout: self.request_timeout,
            max_delay: self.max_delay,
            max_concurrent: self.max_concurrent,
            grpc_details_budget: self.grpc_details_budget,
            max_report_size: self.max_report_size,
            connections: ConnectionLimits {
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
                max_connections: self.max_connections,
            },
            control: self.control,
            access_log: self.access_log,
            record: self.record as usize,
        }
    }

    pub(crate) fn propagate(&self) -> Vec<HeaderName> {
        let mut names = default_propagated();
        for name in &self.propagate_headers {
            if name.as_str().starts_with("x-mock-") {
                tracing::warn!(%name, "not propagated: x-mock-* directives are consumed by the service they are sent to");
                continue;
            }
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}
