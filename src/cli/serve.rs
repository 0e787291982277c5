//! `servicemock serve`'s arguments: identity, default calls, TLS,
//! tuning, tracing and behaviour flags (the mesh reuses some).

use super::*;

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

/// Limits and timeouts shared by `serve` and `mesh`.
#[derive(Args)]
pub(crate) struct Tuning {
    /// Longest a single hop may take.
    #[arg(long, env = "SERVICEMOCK_HOP_TIMEOUT", default_value = defaults::HOP_TIMEOUT, value_parser = parse_duration)]
    pub(crate) hop_timeout: Duration,
    /// Longest a whole request may take, hops included; callers pass on what is left.
    #[arg(long, env = "SERVICEMOCK_REQUEST_TIMEOUT", default_value = defaults::REQUEST_TIMEOUT, value_parser = parse_duration)]
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
    #[arg(long, env = "SERVICEMOCK_HEADER_READ_TIMEOUT", default_value = defaults::HEADER_READ_TIMEOUT, value_parser = parse_duration)]
    pub(crate) header_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    #[arg(long, env = "SERVICEMOCK_IDLE_TIMEOUT", default_value = defaults::IDLE_TIMEOUT, value_parser = parse_duration)]
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
    #[arg(long, env = "SERVICEMOCK_MAX_DELAY", default_value = defaults::MAX_DELAY, value_parser = parse_duration)]
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
