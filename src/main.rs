//! The `servicemock` command: `serve` one named service, run a demo `mesh`
//! in one process, print the `plan` of a path, `call` a server, or check its
//! `health`. `--help` on each is the manual.

use std::io::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderName;

use servicemock::behavior::{self, Directives};
use servicemock::config::{local_host_name, parse_duration, ConnectionLimits, Identity, Settings};
use servicemock::exec::context::default_propagated;
use servicemock::exec::resolve::Resolver;
use servicemock::exec::Executor;
use servicemock::manifests::{self, ManifestOptions};
use servicemock::mesh::{Mesh, MeshOptions};
use servicemock::pb;
use servicemock::plan::path::parse_path;
use servicemock::plan::Limits;
use servicemock::report::proto::decode_status_details;
use servicemock::report::text::render_tree;
use servicemock::report::Report;
use servicemock::server::{self, shutdown};

/// Many small allocations per request (headers, reports): mimalloc keeps
/// them off glibc's malloc locks and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc.h (v3, the version the mimalloc
/// crate builds); libmimalloc-sys names no constant for it.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// mimalloc commits its first arena eagerly, 8 MiB of resident memory in an
/// idle server; this asks it to commit on demand. It runs from `.init_array`,
/// before the Rust runtime's first allocation creates that arena.
#[used]
#[link_section = ".init_array"]
static MIMALLOC_COMMIT_ON_DEMAND: extern "C" fn() = {
    extern "C" fn commit_on_demand() {
        // SAFETY: sets a plain integer option; mimalloc reads options lazily.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
    }
    commit_on_demand
};

/// A mock service for testing service meshes: deploy it under many names and
/// chain the copies with one URL (`/@service2|service3/@service1/end`) or one
/// gRPC message. HTTP/1.1, h2c and gRPC on one port.
#[derive(Parser)]
#[command(name = "servicemock")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long, global = true, env = "SERVICEMOCK_THREADS")]
    threads: Option<usize>,
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "SERVICEMOCK_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one named service (HTTP/1.1, h2c and gRPC on one port).
    Serve(ServeArgs),
    /// Run several named services in this one process on consecutive
    /// loopback ports; `@name` calls between them resolve in-process.
    Mesh(MeshArgs),
    /// Print the CallRequest (proto3 JSON, what `grpcurl -d` takes) for a path,
    /// or the syntax error (exit status 2).
    Plan {
        /// An @-path, e.g. '/@service2|service3/@service1/end'.
        path: String,
    },
    /// Call a running servicemock over HTTP or gRPC and print its report.
    Call {
        /// Use gRPC (servicemock.v1.MockService/Call) instead of HTTP/1.1.
        #[arg(long)]
        grpc: bool,
        /// host:port of the service to call.
        addr: String,
        /// The @-path to send, e.g. '/@service2/@grpc:service3/end'.
        path: String,
        /// Give up after this long.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
        /// Print the indented text tree instead of the JSON report.
        #[arg(long)]
        tree: bool,
    },
    /// Print Kubernetes manifests (Service + Deployment) for named services:
    /// `kubectl apply -f <(servicemock manifests service1 service2 service3)`.
    Manifests {
        /// Names of the services.
        #[arg(required = true)]
        names: Vec<String>,
        /// Namespace of every object (default: kubectl's current one).
        #[arg(long)]
        namespace: Option<String>,
        /// The version label and reported version.
        #[arg(long, default_value = "v1")]
        version: String,
        /// Container image.
        #[arg(long, default_value = "servicemock:latest")]
        image: String,
        /// Replicas per Deployment.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
    },
    /// Check a server's /health (for a container HEALTHCHECK; exit 0 if healthy).
    Health {
        /// host:port of the server.
        #[arg(default_value = "127.0.0.1:8080")]
        addr: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (also spelled --listenAddress, as in the original).
    #[arg(
        long,
        alias = "listenAddress",
        env = "SERVICEMOCK_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    listen: String,
    /// The name this copy answers as (default: the host name).
    #[arg(long, env = "SERVICEMOCK_NAME")]
    name: Option<String>,
    /// The version this copy reports, e.g. v2 for a canary.
    #[arg(long, env = "SERVICEMOCK_VERSION", default_value = "v1")]
    version: String,
    /// Host or pod name to report (Kubernetes downward API: POD_NAME).
    #[arg(long, env = "POD_NAME")]
    host_name: Option<String>,
    /// Namespace to report (Kubernetes downward API: POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "")]
    namespace: String,
    /// Pod IP to report (Kubernetes downward API: POD_IP).
    #[arg(long, env = "POD_IP", default_value = "")]
    pod_ip: String,
    /// After SIGTERM: how long to keep serving new requests while `/ready`
    /// answers 503 and gRPC health NOT_SERVING, before the listener closes
    /// (Kubernetes takes seconds to take a pod out of its endpoints).
    /// Ctrl-C stops at once.
    #[arg(long, env = "SERVICEMOCK_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    drain_delay: Duration,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Args)]
struct MeshArgs {
    /// Names of the services, e.g. service1 service2 service3.
    #[arg(required = true)]
    names: Vec<String>,
    /// Port of the first name; the others get the following ports.
    #[arg(long, env = "SERVICEMOCK_BASE_PORT", default_value_t = 8080)]
    base_port: u16,
    /// Address every member listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// The version every member reports.
    #[arg(long, env = "SERVICEMOCK_VERSION", default_value = "v1")]
    version: String,
    #[command(flatten)]
    tuning: Tuning,
}

/// Limits and timeouts shared by `serve` and `mesh`.
#[derive(Args)]
struct Tuning {
    /// Longest a single hop may take.
    #[arg(long, env = "SERVICEMOCK_HOP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    hop_timeout: Duration,
    /// Longest a whole request may take, hops included; callers pass on what is left.
    #[arg(long, env = "SERVICEMOCK_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Most services a request may pass through (1 to 128). A plan nesting
    /// deeper than what is left is refused before anyone is called (400 /
    /// INVALID_ARGUMENT at the entry); a request arriving past it gets 508.
    #[arg(long, env = "SERVICEMOCK_MAX_DEPTH", default_value_t = Limits::default().max_depth,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(servicemock::plan::MAX_DEPTH_CEILING)))]
    max_depth: u32,
    /// Longest accepted path, in bytes.
    #[arg(long, env = "SERVICEMOCK_MAX_PATH_LEN", default_value_t = Limits::default().max_path_len)]
    max_path_len: usize,
    /// Most targets in one @-command.
    #[arg(long, env = "SERVICEMOCK_MAX_TARGETS", default_value_t = Limits::default().max_targets)]
    max_targets: usize,
    /// Most bytes of trailers a failed gRPC call carries (its report in
    /// grpc-status-details-bin, trimmed to fit, and grpc-message). gRPC
    /// clients refuse over 8 KiB of metadata by default.
    #[arg(long, env = "SERVICEMOCK_GRPC_DETAILS_BUDGET", default_value_t = Settings::default().grpc_details_budget)]
    grpc_details_budget: usize,
    /// Most bytes of downstream reports one request may receive, and of
    /// padding (x-mock-size) and propagated headers its plan may ask for in
    /// all: a hop answer past it is cut, a plan asking more gets 400.
    #[arg(long, env = "SERVICEMOCK_MAX_REPORT_SIZE", default_value_t = Settings::default().max_report_size)]
    max_report_size: usize,
    /// Longest a request head may take from its first byte (slowloris).
    #[arg(long, env = "SERVICEMOCK_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    #[arg(long, env = "SERVICEMOCK_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Inbound connections served at once (lowered to leave a quarter of
    /// the open-file limit free); a new one past it is closed at once.
    #[arg(long, env = "SERVICEMOCK_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    max_connections: usize,
    /// Most calls one request's whole tree may make.
    #[arg(long, env = "SERVICEMOCK_MAX_HOPS", default_value_t = Limits::default().max_hops)]
    max_hops: usize,
    /// How long in-flight requests may take to finish once the listener has
    /// closed (after SIGTERM and the drain delay, or after Ctrl-C).
    #[arg(long, env = "SERVICEMOCK_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Another inbound header to pass on to every hop (repeatable), e.g. end-user.
    #[arg(
        long = "propagate-header",
        env = "SERVICEMOCK_PROPAGATE_HEADERS",
        value_delimiter = ','
    )]
    propagate_headers: Vec<HeaderName>,
    /// Requests served at once; more get 503 / RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "SERVICEMOCK_MAX_CONCURRENT", default_value_t = Settings::default().max_concurrent)]
    max_concurrent: usize,
    /// Longest delay a directive may ask for (a typo must not hold a connection for an hour).
    #[arg(long, env = "SERVICEMOCK_MAX_DELAY", default_value = "10s", value_parser = parse_duration)]
    max_delay: Duration,
    #[command(flatten)]
    behavior: BehaviorFlags,
}

/// Process-wide behaviour, as x-mock-* headers would ask it of each request
/// (a header of the same name wins): deploy a "slow v2" or a "flaky v2".
#[derive(Args)]
struct BehaviorFlags {
    /// Delay every answer: 250ms, 50ms..200ms, 1s@10%, 150ms:10,2s:5.
    #[arg(long, env = "SERVICEMOCK_DELAY")]
    delay: Option<String>,
    /// Answer with this HTTP status: 503, 503@25%, 503:20,404:10.
    #[arg(long, env = "SERVICEMOCK_STATUS")]
    status: Option<String>,
    /// Answer gRPC calls with this code: UNAVAILABLE, 14@25%.
    #[arg(long, env = "SERVICEMOCK_GRPC_STATUS")]
    grpc_status: Option<String>,
    /// Fail this percentage of requests (503 over HTTP, UNAVAILABLE over gRPC).
    #[arg(long, env = "SERVICEMOCK_ERROR_RATE")]
    error_rate: Option<f64>,
    /// Pad every answer with this many bytes: 1024, 64KiB.
    #[arg(long, env = "SERVICEMOCK_SIZE")]
    size: Option<String>,
    /// Drop this percentage of connections without an answer: 5%.
    #[arg(long, env = "SERVICEMOCK_RESET_RATE")]
    reset_rate: Option<String>,
}

impl BehaviorFlags {
    fn directives(&self, max_delay: Duration) -> anyhow::Result<Directives> {
        let mut d = Directives::default();
        if let Some(v) = &self.delay {
            d.delay = Some(behavior::parse_delay(v, max_delay).context("--delay")?);
        }
        if let Some(rate) = self.error_rate {
            anyhow::ensure!(
                (0.0..=100.0).contains(&rate),
                "--error-rate {rate}: a percentage from 0 to 100"
            );
            d.status = Some(behavior::parse_status(&format!("503@{rate}%"))?);
            d.grpc_status = Some(behavior::parse_grpc_status(&format!(
                "UNAVAILABLE@{rate}%"
            ))?);
        }
        if let Some(v) = &self.status {
            d.status = Some(behavior::parse_status(v).context("--status")?);
        }
        if let Some(v) = &self.grpc_status {
            d.grpc_status = Some(behavior::parse_grpc_status(v).context("--grpc-status")?);
        }
        if let Some(v) = &self.size {
            d.size = Some(behavior::parse_size(v).context("--size")?);
        }
        if let Some(v) = &self.reset_rate {
            d.reset = Some(behavior::parse_reset(v).context("--reset-rate")?);
        }
        Ok(d)
    }
}

impl Tuning {
    fn settings(&self) -> Settings {
        Settings {
            limits: Limits {
                max_path_len: self.max_path_len,
                max_targets: self.max_targets,
                max_hops: self.max_hops,
                max_depth: self.max_depth,
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
        }
    }

    fn propagate(&self) -> Vec<HeaderName> {
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

fn main() -> ExitCode {
    // The original server took Go-style `-listenAddress`; accept it too.
    let args = std::env::args().map(|a| match a.as_str() {
        "-listenAddress" => "--listenAddress".to_owned(),
        _ => a,
    });
    let cli = Cli::parse_from(args);
    init_logging(cli.log_format);
    let runtime = match cli.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("servicemock: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("servicemock: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Mesh(args) => mesh(args).await,
        Command::Plan { path } => Ok(print_plan(&path)),
        Command::Call {
            grpc,
            addr,
            path,
            timeout,
            tree,
        } => {
            let call = async {
                if grpc {
                    call_grpc(&addr, &path, tree).await
                } else {
                    call_http(&addr, &path, tree).await
                }
            };
            tokio::time::timeout(timeout, call)
                .await
                .with_context(|| format!("no answer from {addr} within {timeout:?}"))?
        }
        Command::Health { addr } => health(&addr).await,
        Command::Manifests {
            names,
            namespace,
            version,
            image,
            replicas,
        } => {
            let options = ManifestOptions {
                namespace,
                version,
                image,
                replicas,
            };
            print!("{}", manifests::render(&names, &options)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let host = args.host_name.unwrap_or_else(local_host_name);
    let identity = Identity {
        service: args.name.unwrap_or_else(|| host.clone()),
        version: args.version,
        host,
        namespace: args.namespace,
        pod_ip: args.pod_ip,
    };
    let executor = Executor::new(
        Resolver::default(),
        args.tuning.settings(),
        args.tuning.propagate(),
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, service = %identity.service, version = %identity.version, "listening (HTTP/1.1, h2c, gRPC)");
    let defaults = args.tuning.behavior.directives(args.tuning.max_delay)?;
    let service = server::Service::new(identity, executor, defaults);
    server::serve(
        listener,
        service,
        async move {
            match shutdown::signal().await {
                shutdown::Stop::Terminate => args.drain_delay,
                shutdown::Stop::Interrupt => Duration::ZERO,
            }
        },
        args.tuning.shutdown_grace,
    )
    .await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn mesh(args: MeshArgs) -> anyhow::Result<ExitCode> {
    let options = MeshOptions {
        bind: args.bind,
        base_port: args.base_port,
        version: args.version,
        settings: args.tuning.settings(),
        propagate: args.tuning.propagate(),
        grace: args.tuning.shutdown_grace,
        defaults: args.tuning.behavior.directives(args.tuning.max_delay)?,
    };
    let mesh = Mesh::start(&args.names, options).await?;
    println!(
        "servicemock mesh: {} services in this process (HTTP/1.1, h2c and gRPC on each port)\n",
        mesh.members.len()
    );
    println!("  {:<20} ADDRESS", "NAME");
    for (name, addr) in &mesh.members {
        println!("  {name:<20} {addr}");
    }
    let (first, entry) = &mesh.members[0];
    let rest: Vec<&str> = mesh.members[1..].iter().map(|(n, _)| n.as_str()).collect();
    let example = match rest.as_slice() {
        [] => format!("/@{first}/end"),
        [one] => format!("/@{one}/@{first}/end"),
        [a, b, ..] => format!("/@{a}|{b}/@{first}/end"),
    };
    println!("\n@name and @name:8080 reach these servers; other names resolve as usual. Try:\n");
    println!("  curl 'http://{entry}{example}'");
    println!("  curl --http2-prior-knowledge 'http://{entry}{example}'");
    println!(
        "  grpcurl -plaintext -d '{{\"path\":\"{example}\"}}' {entry} servicemock.v1.MockService/Call\n"
    );
    println!("Ctrl-C stops the mesh.");
    mesh.run_until(async {
        shutdown::signal().await;
    })
    .await?;
    println!("mesh stopped");
    Ok(ExitCode::SUCCESS)
}

/// A `CallRequest` with a structured plan, in proto3 JSON.
#[derive(serde::Serialize)]
struct CallRequestJson<'a> {
    plan: &'a servicemock::plan::Plan,
}

fn print_plan(path: &str) -> ExitCode {
    match parse_path(path, &Limits::default()) {
        Ok(plan) => match serde_json::to_string_pretty(&CallRequestJson { plan: &plan }) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot print the plan: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Prints a report as pretty JSON, or as the text tree.
fn print_report(report: &Report, tree: bool) -> anyhow::Result<()> {
    if tree {
        print!("{}", render_tree(report));
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(&report.to_pretty_json()?)?;
        writeln!(out)?;
    }
    Ok(())
}

async fn call_http(addr: &str, path: &str, tree: bool) -> anyhow::Result<ExitCode> {
    let url = format!("http://{addr}{path}");
    let accept = if tree {
        "text/plain"
    } else {
        "application/json"
    };
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&url)
        .header(http::header::ACCEPT, accept)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await?;
    print!("{body}");
    if !status.is_success() {
        eprintln!("servicemock: {url} answered {status}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn call_grpc(addr: &str, path: &str, tree: bool) -> anyhow::Result<ExitCode> {
    let mut client = pb::mock_service_client::MockServiceClient::connect(format!("http://{addr}"))
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let request = pb::CallRequest {
        request: Some(pb::call_request::Request::Path(path.to_owned())),
    };
    match client.call(request).await {
        Ok(response) => {
            print_report(&Report::from(response.into_inner()), tree)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            if let Some(response) = decode_status_details(status.details()) {
                print_report(&Report::from(response), tree)?;
            }
            eprintln!(
                "servicemock: {} answered {:?}: {}",
                addr,
                status.code(),
                status.message()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn health(addr: &str) -> anyhow::Result<ExitCode> {
    let url = format!("http://{addr}/health");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
