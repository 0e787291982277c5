//! The `servicemock` command: `serve` one named service, run a demo `mesh`
//! in one process, print the `plan` of a path, `call` a server, or check its
//! `health`. `--help` on each is the manual.

mod cli;
mod commands;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use cli::{Cli, Command, LoadArgs, LogFormat, ServeArgs};
use servicemock::client::{self, ControlRequest};
use servicemock::config::{local_host_name, Identity};
use servicemock::exec::resolve::Resolver;
use servicemock::exec::Executor;
use servicemock::manifests::{self, ManifestOptions};
use servicemock::plan::path::parse_path;
use servicemock::plan::Limits;
use servicemock::server::{self, shutdown};

/// Stack of each runtime worker: what the main thread has, so a plan or a
/// report of `--max-depth` 128 levels (decoded, converted, serialised by
/// recursion bounded by `wire.rs`) has room to spare. Untouched pages cost
/// no memory.
const WORKER_STACK: usize = 8 * 1024 * 1024;

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
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static MIMALLOC_COMMIT_ON_DEMAND: extern "C" fn() = {
    extern "C" fn commit_on_demand() {
        // SAFETY: sets a plain integer option; mimalloc reads options lazily.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
    }
    commit_on_demand
};

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
            .thread_stack_size(WORKER_STACK)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .thread_stack_size(WORKER_STACK)
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

/// Writes a command's output. A reader that went away (`| head -1`) ends
/// the command quietly, as a Unix tool's SIGPIPE would, never in a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("servicemock: cannot write the output: {e}");
            std::process::exit(1);
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
        Command::Serve(args) => serve(*args).await,
        Command::Mesh(args) => commands::mesh::run(args).await,
        Command::Plan { path } => Ok(print_plan(&path)),
        Command::Call(args) => commands::call::run(args).await,
        Command::Requests { addr, follow, tree } => {
            Ok(commands::requests::run(&addr, follow, tree).await)
        }
        Command::Health { via, addr, timeout } => {
            let answer = client::health(&addr, via.protocol(), via.tls()?, timeout).await;
            Ok(match answer {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    ExitCode::FAILURE
                }
            })
        }
        Command::Control {
            addr,
            changes,
            reset,
        } => {
            let request = if reset {
                ControlRequest::Reset
            } else if changes.is_empty() {
                ControlRequest::Show
            } else {
                let mut pairs = Vec::new();
                for change in &changes {
                    let Some((key, value)) = change.split_once('=') else {
                        eprintln!("\"{change}\" is not a change: write KEY=VALUE, e.g. status=503 or ready=false");
                        return Ok(ExitCode::from(2));
                    };
                    pairs.push((key.to_owned(), value.to_owned()));
                }
                ControlRequest::Change(pairs)
            };
            Ok(match client::control(&addr, &request).await {
                Ok(state) => {
                    emit(&state);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            })
        }
        Command::Load(args) => load(args).await,
        Command::Certs {
            names,
            out,
            namespace,
            trust_domain,
            days,
        } => {
            let options = servicemock::certs::CertsOptions {
                namespace,
                trust_domain,
                days,
            };
            let written = servicemock::certs::write(&out, &names, &options)?;
            for file in written {
                emit(&format!("{}\n", out.join(file).display()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Manifests {
            names,
            topology,
            calls,
            namespace,
            version,
            image,
            replicas,
            control,
            tls,
            tcp_port,
            record,
        } => {
            let options = ManifestOptions {
                namespace,
                version,
                image,
                replicas,
                control,
                tls_secret: tls,
                tcp_port,
                record,
            };
            let services = match topology {
                Some(file) => {
                    let topology =
                        servicemock::topology::Topology::read(&file, &Limits::default())?;
                    for cycle in &topology.cycles {
                        eprintln!("note: the default calls form a cycle, {cycle}: each request's calls are bounded by --max-hops across the cascade");
                    }
                    manifests::ServiceSpec::from_topology(&topology)
                }
                None => with_calls(&names, &calls, &options)?,
            };
            emit(&manifests::render_services(&services, &options)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The services `manifests` names, each `--calls NAME=PLAN` checked as
/// `serve` will read it and given to its service.
fn with_calls(
    names: &[String],
    calls: &[String],
    options: &ManifestOptions,
) -> anyhow::Result<Vec<manifests::ServiceSpec>> {
    let mut services: Vec<manifests::ServiceSpec> = names
        .iter()
        .map(|n| manifests::ServiceSpec::named(n, options))
        .collect();
    for given in calls {
        let Some((name, path)) = given.split_once('=') else {
            anyhow::bail!("--calls {given}: write NAME=PLAN, e.g. --calls 'service1=/@service2/'");
        };
        servicemock::plan::default::DefaultCalls::from_path(path, &Limits::default())
            .with_context(|| format!("--calls {given}"))?;
        let Some(service) = services.iter_mut().find(|s| s.name == name) else {
            anyhow::bail!("--calls {given}: {name} is not one of the services named");
        };
        service.calls = Some(path.to_owned());
    }
    Ok(services)
}

/// `servicemock load`: the run, a live line on a terminal (plain lines
/// otherwise), then the table or JSON; the exit code is the verdict.
async fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let options = args.options()?;
    let what = format!(
        "servicemock load {} {}{}",
        args.target,
        args.path.as_deref().unwrap_or("(--plan)"),
        match options.protocol {
            servicemock::plan::Protocol::Grpc => " over gRPC",
            servicemock::plan::Protocol::H2c => " over h2c",
            servicemock::plan::Protocol::Https => " over https",
            servicemock::plan::Protocol::Grpcs => " over grpcs",
            servicemock::plan::Protocol::Tcp => " over tcp",
            servicemock::plan::Protocol::Http => "",
        }
    );
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new_spinner();
    if terminal {
        bar.enable_steady_tick(Duration::from_millis(200));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let line = bar.clone();
    let run = servicemock::load::run(options, move |progress| {
        if terminal {
            line.set_message(progress.to_string());
        } else {
            eprintln!("load: {progress}");
        }
    })
    .await;
    bar.finish_and_clear();
    if args.json {
        emit(&format!("{}\n", servicemock::load::render::json(&run)));
    } else {
        emit(&servicemock::load::render::table(&run, &what));
    }
    use servicemock::load::expect::Verdict;
    if let Some(why) = run.tally.nothing_answered() {
        eprintln!("servicemock load: no call was answered: {why}");
        return Ok(ExitCode::from(2));
    }
    let verdicts: Vec<Verdict> = run.judgements.iter().map(|j| j.verdict).collect();
    Ok(if verdicts.contains(&Verdict::Fail) {
        ExitCode::from(1)
    } else if verdicts.contains(&Verdict::CannotJudge) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
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
    let executor = Executor::with_transports(
        Resolver::default(),
        args.tuning.settings(),
        args.tuning.propagate(),
        servicemock::exec::transport::Transports::with_tls(args.tls.hops()?),
    );
    let defaults = args.tuning.behavior.directives(args.tuning.max_delay)?;
    let tls = match args.tls.options(&identity.service)? {
        Some(options) => Some(server::connection::tls::TlsServer::start(options)?),
        None => None,
    };
    let tcp = TcpPorts {
        listen: &args.tcp_listen,
        banner: args.tcp_banner.as_deref(),
    };
    let listeners = listeners(&args.listen, &args.tls, tls, tcp, &identity.service).await?;
    let calls = args.calls.default_calls(&executor.settings().limits)?;
    if let Some(calls) = &calls {
        tracing::info!(
            calls = calls.source(),
            "a request whose target has no command runs this plan"
        );
    }
    let service = server::Service::calling(identity, executor, defaults, calls);
    server::serve_on(
        listeners,
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

/// An address to listen on as people write it: `HOST:PORT`, a bare port
/// (`8080`) or `:PORT`, both meaning every interface.
fn listen_address(written: &str) -> anyhow::Result<String> {
    let text = written.trim();
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if port_only.parse::<u16>().is_ok() {
        return Ok(format!("0.0.0.0:{port_only}"));
    }
    let ok = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    anyhow::ensure!(
        ok,
        "\"{written}\" is not an address to listen on: write HOST:PORT (e.g. 0.0.0.0:8080), :PORT or PORT"
    );
    Ok(text.to_owned())
}

/// The raw TCP ports `serve` asks for (`--tcp-listen`, `--tcp-banner`).
struct TcpPorts<'a> {
    listen: &'a [String],
    banner: Option<&'a str>,
}

/// The listeners `serve` asks for: `--listen` (plaintext, TLS beside it,
/// or TLS only), `--tls-listen`, and each `--tcp-listen`.
async fn listeners(
    listen: &str,
    flags: &cli::TlsFlags,
    tls: Option<std::sync::Arc<server::connection::tls::TlsServer>>,
    tcp: TcpPorts<'_>,
    service: &str,
) -> anyhow::Result<Vec<server::Listener>> {
    use server::connection::{Speaks, TcpLines};
    anyhow::ensure!(
        tcp.banner.is_none() || tls.is_none(),
        "--tcp-banner and TLS cannot share a TCP port: a server that speaks first cannot wait to see whether a TLS ClientHello comes (drop --tcp-banner, or serve TLS elsewhere)"
    );
    let mut wanted = vec![(
        listen,
        Speaks {
            tls: tls.clone(),
            tls_only: flags.tls_only,
            lines: None,
        },
    )];
    if let Some(address) = &flags.tls_listen {
        wanted.push((
            address.as_str(),
            Speaks {
                tls: tls.clone(),
                tls_only: true,
                lines: None,
            },
        ));
    }
    for address in tcp.listen {
        wanted.push((
            address.as_str(),
            Speaks {
                tls: tls.clone(),
                tls_only: flags.tls_only,
                lines: Some(TcpLines {
                    banner: tcp.banner.map(std::sync::Arc::from),
                }),
            },
        ));
    }
    let mut listeners = Vec::new();
    for (written, speaks) in wanted {
        let address = listen_address(written)?;
        let tcp = match tokio::net::TcpListener::bind(&address).await {
            Ok(tcp) => tcp,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
                "cannot listen on {address}: another process holds that port ({e}; another servicemock? give another with --listen)"
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {address}")),
        };
        let what = match (&speaks.tls, speaks.tls_only, &speaks.lines) {
            (None, _, Some(_)) => "raw TCP lines",
            (Some(_), false, Some(_)) => "raw TCP lines; TLS and plaintext",
            (Some(_), true, Some(_)) => "raw TCP lines over TLS only",
            (None, _, None) => "HTTP/1.1, h2c, gRPC",
            (Some(_), false, None) => "HTTP/1.1, HTTP/2, gRPC; TLS and plaintext",
            (Some(_), true, None) => "HTTP/1.1, HTTP/2, gRPC over TLS only",
        };
        tracing::info!(addr = %tcp.local_addr()?, %service, "listening ({what})");
        listeners.push(server::Listener { tcp, speaks });
    }
    Ok(listeners)
}

fn print_plan(typed: &str) -> ExitCode {
    let path = match client::request_path(typed) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match parse_path(&path, &Limits::default()) {
        Ok(plan) => {
            if plan.parallel.is_empty() && path.contains('@') {
                eprintln!(
                    "note: {path} calls nobody: an @-command is read only as the first segment of the path"
                );
            }
            match serde_json::to_string_pretty(&servicemock::plan::proto::request_for(&plan)) {
                Ok(json) => {
                    emit(&format!("{json}\n"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot print the plan: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
