//! The one listener that speaks HTTP/1.1, h2c and gRPC.
//!
//! Every connection is served by hyper's auto builder (through `axum::serve`),
//! which tells HTTP/1.1 from the HTTP/2 preface. Each request is then steered
//! by its content type: `application/grpc*` goes to the tonic services
//! (MockService, health, reflection), everything else, HTTP/2 included, to the
//! HTTP routes of [`http`]. Shutdown is graceful and bounded ([`shutdown`]).

pub mod grpc;
pub mod http;
pub mod listener;
pub mod pipeline;
pub mod shutdown;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service as _;

use crate::behavior::{self, Directives};
use crate::config::Identity;
use crate::exec::context::DEPTH_HEADER;
use crate::exec::Executor;
use crate::metrics::{Metrics, Refusal};
use crate::report::Report;

/// One named service: who it is, the executor that runs its plans, and the
/// behaviour it shows when a request asks for none.
#[derive(Debug)]
pub struct Service {
    pub identity: Identity,
    pub executor: Executor,
    /// Process-wide behaviour defaults (`--delay`, `--status`, ...).
    pub defaults: Directives,
    pub metrics: Metrics,
    draining: AtomicBool,
    in_flight: Arc<Semaphore>,
}

impl Service {
    pub fn new(identity: Identity, executor: Executor, defaults: Directives) -> Arc<Service> {
        let limit = executor.settings().max_concurrent.max(1);
        crate::wire::allow_hops(executor.settings().limits.max_hops);
        Arc::new(Service {
            identity,
            executor,
            defaults,
            metrics: Metrics::default(),
            draining: AtomicBool::new(false),
            in_flight: Arc::new(Semaphore::new(limit)),
        })
    }

    /// Whether shutdown has begun (readiness answers 503 from then on).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// `x-servicemock-service`, `x-servicemock-version` and `x-request-id` of a
/// report, as response headers (HTTP) or metadata (gRPC), so a `curl -sI`
/// loop can count who answered.
pub fn identity_headers(headers: &mut ::http::HeaderMap, report: &Report) {
    for (name, value) in [
        ("x-servicemock-service", &report.service),
        ("x-servicemock-version", &report.version),
        ("x-request-id", &report.request_id),
    ] {
        if let Ok(v) = ::http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
}

/// Whether a request is gRPC: `content-type: application/grpc` or `+proto` etc.
pub fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The whole application for one service: gRPC and HTTP behind one router.
pub async fn app(service: Arc<Service>) -> (Router, grpc::Health) {
    let (grpc_router, health) = grpc::router(service.clone()).await;
    let http_router = http::router(service.clone());
    let planner_router = http::planner_router(service.clone());
    let app = Router::new().fallback_service(tower::service_fn(move |request: Request| {
        let grpc = is_grpc(&request);
        // Requests from another servicemock (they carry the depth header)
        // always reach the planner, so a remainder such as `/health` or
        // `/ui` at a leaf is answered with a report like any other.
        let mut target = if grpc {
            grpc_router.clone()
        } else if request.headers().contains_key(DEPTH_HEADER) {
            planner_router.clone()
        } else {
            http_router.clone()
        };
        let service = service.clone();
        async move {
            let started = std::time::Instant::now();
            let protocol = if grpc {
                "grpc"
            } else {
                http::protocol_word(request.version())
            };
            let route = route_class(grpc, request.uri().path());
            let metrics = &service.metrics;
            let _in_flight = metrics.in_flight();
            // Probes and metrics are never shed: a busy pod is not a dead one.
            let permit = if is_probe(grpc, route, request.uri().path()) {
                None
            } else {
                Some(service.in_flight.clone().try_acquire_owned())
            };
            let response = match permit {
                Some(Err(_)) => {
                    metrics.refused(Refusal::Overloaded);
                    overloaded(grpc, service.executor.settings().max_concurrent)
                }
                _ if wants_reset(&request, &service.defaults) => {
                    metrics.reset();
                    reset()
                }
                _permit => target.call(request).await?,
            };
            metrics.request(
                protocol,
                route,
                response_status(grpc, &response),
                started.elapsed(),
            );
            Ok(response)
        }
    }));
    (app, health)
}

/// Whether a request is a probe or a scrape, which load shedding spares:
/// `/health`, `/ready`, `/metrics` and gRPC health.
fn is_probe(grpc: bool, route: &str, path: &str) -> bool {
    if grpc {
        path.starts_with("/grpc.health.v1.Health/")
    } else {
        matches!(route, "health" | "ready" | "metrics")
    }
}

/// The route class a request is counted under.
fn route_class(grpc: bool, path: &str) -> &'static str {
    match path {
        _ if grpc => "grpc",
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        p if p == "/ui" || p.starts_with("/ui/") => "ui",
        _ => "plan",
    }
}

/// The status a request is counted with: the HTTP status, or for gRPC the
/// `grpc-status` of a trailers-only answer (0 when it comes in trailers: OK).
fn response_status(grpc: bool, response: &Response) -> i32 {
    if grpc {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0)
    } else {
        i32::from(response.status().as_u16())
    }
}

/// The answer to a request over the concurrency limit: shed, not queued.
fn overloaded(grpc: bool, limit: usize) -> Response {
    let message = format!("overloaded: {limit} requests in flight (--max-concurrent)");
    if grpc {
        tonic::Status::resource_exhausted(message)
            .into_http::<axum::body::Body>()
            .map(axum::body::Body::new)
    } else {
        (::http::StatusCode::SERVICE_UNAVAILABLE, message + "\n").into_response()
    }
}

/// Whether `x-mock-reset` (or `--reset-rate`) drops this request. A bad
/// value does not reset; the handlers refuse it with 400/INVALID_ARGUMENT.
fn wants_reset(request: &Request, defaults: &Directives) -> bool {
    let rate = match request.headers().get(behavior::RESET) {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| behavior::parse_reset(t.trim()).ok()),
        None => defaults.reset,
    };
    behavior::decide_reset(rate, &mut rand::rng())
}

/// An answer whose body fails at once: hyper aborts the connection
/// (HTTP/1.1) or resets the stream (HTTP/2), what a crashing peer does.
fn reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<bytes::Bytes, _>(std::io::Error::other(
            "connection reset on purpose (x-mock-reset)",
        ))
    });
    Response::new(axum::body::Body::from_stream(failing))
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains
/// in the order Kubernetes needs: at once `/ready` answers 503 and gRPC
/// health NOT_SERVING, while new requests are still served for the drain
/// delay `shutdown` resolved with (endpoints take seconds to stop sending
/// traffic); then the listener closes and in-flight requests may finish
/// for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = Duration> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (app, health) = app(service.clone()).await;
    let service_limits = service.executor.settings().connections;
    let connections_gauge = service.metrics.connections().clone();
    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let name = service.identity.service.clone();
    let signal = async move {
        let drain = shutdown.await;
        service.draining.store(true, Ordering::Relaxed);
        health.set_not_serving().await;
        if !drain.is_zero() {
            tracing::info!(service = %name, drain = ?drain, "draining: not ready, still serving new requests");
            tokio::time::sleep(drain).await;
        }
        tracing::info!(service = %name, grace = ?grace, "stopped accepting; letting requests in flight finish");
        let _ = begun_tx.send(());
    };
    let limits = service_limits;
    let gauge = connections_gauge;
    let server = listener::accept_until(listener, app, limits, gauge, signal);
    let deadline = async move {
        if begun_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = server => Ok(()),
        () = deadline => {
            tracing::warn!(?grace, "shutdown grace period over, closing the connections still open");
            Ok(())
        }
    }
}
