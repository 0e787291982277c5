//! The one listener that speaks HTTP/1.1, h2c and gRPC.
//!
//! Every connection passes the connection seam ([`connection`]: accepted,
//! bounded, identified as TLS or plaintext by its first byte) and is then
//! served by hyper's auto builder, which tells HTTP/1.1 from the HTTP/2
//! preface (or ALPN). Each request passes
//! the one front service of `front.rs` (metrics, load shedding, attempts and
//! the reset directive) and is then steered: `application/grpc*` goes to the
//! tonic services (MockService, health, reflection), a request that runs a
//! plan, HTTP/2 included, to the planner of `http.rs`, and the rest to its
//! HTTP routes; both edges run plans through the one pipeline of
//! `pipeline.rs`. Shutdown drains, then is graceful and bounded
//! ([`shutdown`]).

pub mod connection;
pub mod control;
mod counted;
mod front;
mod grpc;
mod http;
mod pipeline;
pub mod recorder;
pub mod shutdown;
mod streams;
mod tcp;
mod websocket;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::attempts::Attempts;
use crate::behavior::{Directives, Here};
use crate::config::Identity;
use crate::exec::Executor;
use crate::metrics::Metrics;
use crate::report::Report;

/// One named service: who it is, the executor that runs its plans, and the
/// behaviour it shows when a request asks for none.
#[derive(Debug)]
pub struct Service {
    pub identity: Identity,
    pub executor: Executor,
    /// Process-wide behaviour defaults (`--delay`, `--status`, ...), and
    /// readiness and liveness, as `/control` may change them.
    pub control: control::Control,
    /// Which attempt each request is (for `@first=N`).
    pub attempts: Attempts,
    pub metrics: Metrics,
    /// The identity headers of every answer, made once.
    identity_headers: IdentityHeaders,
    draining: AtomicBool,
    in_flight: Arc<Semaphore>,
    /// Set when open streams must end: the shutdown grace is nearly over.
    streams_over: tokio::sync::watch::Sender<bool>,
    /// The plan a request whose target has no command runs (`--calls`).
    pub calls: Option<crate::plan::default::DefaultCalls>,
    /// The last requests received, with `--record N`.
    pub(crate) recorder: Option<recorder::Recorder>,
    /// Upgraded connections (WebSockets) open now: they outlive the
    /// connection hyper served, so shutdown waits for them itself.
    sockets: tokio::sync::watch::Sender<usize>,
    /// The spans it exports and where its traces can be seen.
    pub tracing: Tracing,
}

/// A service's spans (with an OTLP endpoint) and the page that shows a
/// trace (`--trace-url`, `{trace_id}` replaced).
#[derive(Debug, Clone, Default)]
pub struct Tracing {
    pub spans: Option<crate::spans::Spans>,
    pub trace_url: Option<String>,
}

impl Service {
    pub fn new(identity: Identity, executor: Executor, defaults: Directives) -> Arc<Service> {
        Service::calling(identity, executor, defaults, None, Tracing::default())
    }

    /// A service that runs `calls` for every request whose target has no
    /// command of its own (`serve --calls`), its spans as `tracing` says.
    pub fn calling(
        identity: Identity,
        executor: Executor,
        defaults: Directives,
        calls: Option<crate::plan::default::DefaultCalls>,
        tracing: Tracing,
    ) -> Arc<Service> {
        let limit = executor.settings().max_concurrent.max(1);
        let executor_record = executor.settings().record;
        crate::guard::proto::allow_hops(executor.settings().limits.max_hops);
        if executor.settings().control {
            tracing::warn!(
                service = %identity.service,
                "--control is on: anyone who reaches this port can change this service's behaviour, readiness and liveness through /control (for test clusters only)"
            );
        }
        let control = control::Control::new(executor.settings().control, defaults);
        let identity_headers = IdentityHeaders::new(&identity);
        let mut metrics = Metrics::default();
        if let Some(spans) = &tracing.spans {
            metrics.count_spans(spans.counts());
        }
        Arc::new(Service {
            identity_headers,
            identity,
            executor,
            control,
            attempts: Attempts::default(),
            metrics,
            tracing,
            draining: AtomicBool::new(false),
            in_flight: Arc::new(Semaphore::new(limit)),
            streams_over: tokio::sync::watch::channel(false).0,
            sockets: tokio::sync::watch::channel(0).0,
            calls,
            recorder: (executor_record > 0).then(|| recorder::Recorder::new(executor_record)),
        })
    }

    /// Whether shutdown has begun (readiness answers 503 from then on).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Resolves when open streams must end (see [`serve_on`]).
    pub(crate) fn streams_over(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut over = self.streams_over.subscribe();
        async move {
            let _ = over.wait_for(|over| *over).await;
        }
    }

    /// Counts an upgraded connection as open until the guard is dropped.
    pub(crate) fn socket_open(&self) -> SocketOpen {
        self.sockets.send_modify(|n| *n += 1);
        SocketOpen(self.sockets.clone())
    }

    /// Puts the `--trace-url` of the report's trace in it.
    pub(crate) fn link_trace(&self, report: &mut Report) {
        if let (Some(template), false) = (&self.tracing.trace_url, report.trace_id.is_empty()) {
            report.trace_url = template
                .replace("{trace_id}", &report.trace_id)
                .replace("{span_id}", &report.span_id);
        }
    }

    /// This service answering `attempt` of a call from `caller` (its
    /// principal, when known): what directive conditions (`@version=`,
    /// `@first=`, `@from=`) are checked against.
    pub fn here<'a>(&'a self, attempt: u32, caller: Option<&'a str>) -> Here<'a> {
        Here {
            service: &self.identity.service,
            version: &self.identity.version,
            pod: &self.identity.host,
            attempt,
            caller,
        }
    }
}

/// `x-servicemock-service`, `x-servicemock-version` and `x-request-id` of
/// a report of this service, as response headers (HTTP, after its
/// `content-type`) or metadata (gRPC), so a `curl -sI` loop can count who
/// answered. The names are hashed once, into maps an answer clones and
/// writes its values into in place: inserted one by one, each custom name
/// was hashed a byte at a time on every answer.
#[derive(Debug)]
struct IdentityHeaders {
    /// `content-type` (written per answer), identity, request id.
    typed: ::http::HeaderMap,
    /// Identity and request id.
    bare: ::http::HeaderMap,
}

impl IdentityHeaders {
    fn new(identity: &crate::config::Identity) -> IdentityHeaders {
        const NAMES: [::http::HeaderName; 2] = [
            ::http::HeaderName::from_static("x-servicemock-service"),
            ::http::HeaderName::from_static("x-servicemock-version"),
        ];
        let made = |typed: bool| {
            let mut map = ::http::HeaderMap::with_capacity(4);
            if typed {
                let json = ::http::HeaderValue::from_static("application/json");
                map.insert(::http::header::CONTENT_TYPE, json);
            }
            for (name, text) in NAMES
                .into_iter()
                .zip([&identity.service, &identity.version])
            {
                if let Ok(value) = ::http::HeaderValue::from_str(text) {
                    map.insert(name, value);
                }
            }
            let id = ::http::HeaderValue::from_static("");
            map.insert(crate::exec::context::REQUEST_ID, id);
            map
        };
        IdentityHeaders {
            typed: made(true),
            bare: made(false),
        }
    }

    /// The headers of an answer: `content_type` first when given. The
    /// request id is the `carried` value itself when the report's is the
    /// one the request carried (shared, not checked and copied again).
    fn of(
        &self,
        content_type: Option<::http::HeaderValue>,
        report: &Report,
        carried: Option<&::http::HeaderValue>,
    ) -> ::http::HeaderMap {
        let mut headers = match content_type {
            Some(content_type) => {
                let mut headers = self.typed.clone();
                if let Some(slot) = headers.values_mut().next() {
                    *slot = content_type;
                }
                headers
            }
            None => self.bare.clone(),
        };
        // The request id is the last.
        let carried = carried.filter(|id| id.as_bytes() == report.request_id.as_bytes());
        match carried.map_or_else(
            || ::http::HeaderValue::from_str(&report.request_id),
            |id| Ok(id.clone()),
        ) {
            Ok(id) => {
                if let Some(slot) = headers.values_mut().last() {
                    *slot = id;
                }
            }
            Err(_) => {
                headers.remove(crate::exec::context::REQUEST_ID);
            }
        }
        headers
    }
}

/// Whether a request is gRPC: `content-type: application/grpc` or `+proto` etc.
pub fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The whole application for one service: gRPC and HTTP behind one front.
async fn app(service: Arc<Service>) -> (front::Front, grpc::Health) {
    let (grpc_router, health) = grpc::router(service.clone()).await;
    service.control.attach_health(health.clone());
    let http_router = http::router(service.clone());
    (front::Front::new(service, grpc_router, http_router), health)
}

/// A listener and what it speaks.
pub struct Listener {
    pub tcp: TcpListener,
    pub speaks: connection::Speaks,
}

impl From<TcpListener> for Listener {
    fn from(tcp: TcpListener) -> Listener {
        Listener {
            tcp,
            speaks: connection::Speaks::default(),
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves (see [`serve_on`]).
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = Duration> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    serve_on(vec![listener.into()], service, shutdown, grace).await
}

/// An upgraded connection counted open ([`Service::socket_open`]).
pub(crate) struct SocketOpen(tokio::sync::watch::Sender<usize>);

impl Drop for SocketOpen {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Serves `service` on every listener until `shutdown` resolves, then
/// drains in the order Kubernetes needs: at once `/ready` answers 503 and
/// gRPC health NOT_SERVING, while new requests are still served for the
/// drain delay `shutdown` resolved with (endpoints take seconds to stop
/// sending traffic); then the listeners close and in-flight requests may
/// finish for at most `grace` (open streams are ended with UNAVAILABLE just
/// before it ends).
pub async fn serve_on(
    listeners: Vec<Listener>,
    service: Arc<Service>,
    shutdown: impl Future<Output = Duration> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (app, health) = app(service.clone()).await;
    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let name = service.identity.service.clone();
    let signal = async move {
        let drain = shutdown.await;
        service.draining.store(true, Ordering::Relaxed);
        health.set(false).await;
        if !drain.is_zero() {
            tracing::info!(service = %name, drain = ?drain, "draining: not ready, still serving new requests");
            tokio::time::sleep(drain).await;
        }
        tracing::info!(service = %name, grace = ?grace, "stopped accepting; letting requests in flight finish");
        let _ = stop_tx.send(true);
        let _ = begun_tx.send(());
        // Streams were told with GOAWAY; those still open just before the
        // grace ends are ended with UNAVAILABLE, not cut.
        let margin = (grace / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(async move {
            tokio::time::sleep(grace.saturating_sub(margin)).await;
            service.streams_over.send_replace(true);
        });
    };
    let slots = connection::Slots::new(&app.service().executor.settings().connections);
    let loops = listeners.into_iter().map(|listener| {
        let mut stop = stop_rx.clone();
        connection::accept_until(
            listener.tcp,
            app.clone(),
            listener.speaks,
            slots.clone(),
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            },
        )
    });
    let mut sockets = app.service().sockets.subscribe();
    let server = async move {
        tokio::join!(signal, futures::future::join_all(loops));
        let _ = sockets.wait_for(|open| *open == 0).await;
    };
    let deadline = async move {
        if begun_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = server => {}
        () = deadline => {
            tracing::warn!(?grace, "shutdown grace period over, closing the connections still open");
        }
    }
    if let Some(spans) = &app.service().tracing.spans {
        // The last requests' spans go before the process ends.
        spans.flush(SPAN_FLUSH).await;
    }
    Ok(())
}

/// Longest the spans still waiting at shutdown may take to go out.
const SPAN_FLUSH: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(headers: &::http::HeaderMap) -> Vec<String> {
        let line = |(n, v): (&::http::HeaderName, &::http::HeaderValue)| {
            format!("{n}: {}", v.to_str().unwrap())
        };
        headers.iter().map(line).collect()
    }

    #[test]
    fn answers_say_who_made_them_after_their_content_type() {
        let made = IdentityHeaders::new(&crate::config::Identity::named("reviews", "v2"));
        let report = Report {
            request_id: "req-7".into(),
            ..Report::default()
        };
        assert_eq!(
            lines(&made.of(
                Some(crate::report::View::Tree.content_type()),
                &report,
                None
            )),
            [
                "content-type: text/plain; charset=utf-8",
                "x-servicemock-service: reviews",
                "x-servicemock-version: v2",
                "x-request-id: req-7",
            ]
        );
        // The id the request carried is answered when it is the report's,
        // never when it is not.
        let bare = [
            "x-servicemock-service: reviews",
            "x-servicemock-version: v2",
            "x-request-id: req-7",
        ];
        for carried in [None, Some("req-7"), Some("req-8"), Some("")] {
            let carried = carried.map(::http::HeaderValue::from_static);
            assert_eq!(lines(&made.of(None, &report, carried.as_ref())), bare);
        }
        let unsendable = Report {
            request_id: "a\nb".into(),
            ..Report::default()
        };
        assert_eq!(made.of(None, &unsendable, None).len(), 2, "no request id");
    }
}
