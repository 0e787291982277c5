//! `servicemock serve`: one named service on its listeners (HTTP/1.1, h2c
//! and gRPC on one port, TLS by the first byte, raw TCP lines beside),
//! drained on SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use servicemock::config::{local_host_name, Identity};
use servicemock::exec::resolve::Resolver;
use servicemock::exec::Executor;
use servicemock::server::{self, shutdown};

use crate::cli::{self, ServeArgs};

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let host = args.host_name.unwrap_or_else(local_host_name);
    let identity = Identity {
        service: args.name.unwrap_or_else(|| host.clone()).into(),
        version: args.version.into(),
        host: host.into(),
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
    let spans = match args.tuning.tracing.settings()? {
        Some(settings) => {
            let spans = servicemock::spans::Spans::start(
                &settings,
                &identity,
                servicemock::spans::Naming::Service,
            )
            .map_err(anyhow::Error::msg)?;
            tracing::info!(
                endpoint = spans.endpoint(),
                protocol = settings.protocol.as_str(),
                "exporting spans of every request and hop (OpenTelemetry)"
            );
            Some(spans)
        }
        None => None,
    };
    let traced = server::Tracing {
        spans,
        trace_url: args.tuning.tracing.trace_url.clone(),
    };
    let service = server::Service::calling(identity, executor, defaults, calls, traced);
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
