//! The tower layers every request passes before it is steered, outermost
//! first: [`count`] (in-flight gauge, and every request counted and timed by
//! protocol, route class and status), [`shed`] (over `--max-concurrent`
//! answer 503 / RESOURCE_EXHAUSTED at once instead of queueing; probes,
//! metrics and gRPC health are never shed) and [`attempt_and_reset`]
//! (which attempt a plan's request is; `x-mock-reset` / `--reset-rate`
//! drop the connection). Each is a plain
//! axum middleware function over the service's state.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{is_grpc, Service};
use crate::attempts::Attempt;
use crate::behavior::{self, Directives, Here};
use crate::metrics::Refusal;
use crate::report::InboundProtocol;

/// Counts and times every request, and keeps the in-flight gauge.
pub(super) async fn count(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let grpc = is_grpc(&request);
    let protocol = if grpc {
        InboundProtocol::Grpc
    } else {
        InboundProtocol::of_http(request.version())
    };
    let route = route_class(grpc, request.uri().path());
    let metrics = &service.metrics;
    let _in_flight = metrics.in_flight();
    let response = next.run(request).await;
    let status = response_status(grpc, &response);
    metrics.request(protocol, route, status, started.elapsed());
    response
}

/// Sheds what is over `--max-concurrent`, sparing probes and scrapes: a
/// busy pod is not a dead one.
pub(super) async fn shed(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let grpc = is_grpc(&request);
    let path = request.uri().path();
    if is_probe(grpc, route_class(grpc, path), path) {
        return next.run(request).await;
    }
    match service.in_flight.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            service.metrics.refused(Refusal::Overloaded);
            overloaded(grpc, service.executor.settings().max_concurrent)
        }
    }
}

/// For a request that runs a plan: counts which attempt it is (kept in the
/// request's extensions for the pipeline), and drops the connection when
/// `x-mock-reset` (or `--reset-rate`) draws so for this attempt here.
pub(super) async fn attempt_and_reset(
    State(service): State<Arc<Service>>,
    mut request: Request,
    next: Next,
) -> Response {
    let grpc = is_grpc(&request);
    let path = request.uri().path();
    let runs_plan = if grpc {
        path == CALL_PATH
    } else {
        route_class(false, path) == "plan"
    };
    if !runs_plan {
        return next.run(request).await;
    }
    let line = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let attempt = service.attempts.observe(request.headers(), line);
    // A first attempt is what the pipeline assumes when none is recorded.
    if attempt != Attempt::default() {
        request.extensions_mut().insert(attempt);
    }
    if wants_reset(
        &request,
        &service.control.defaults(),
        &service.here(attempt.number),
    ) {
        service.metrics.reset();
        return reset();
    }
    next.run(request).await
}

/// The path of `servicemock.v1.MockService/Call`.
const CALL_PATH: &str = "/servicemock.v1.MockService/Call";

/// Whether a request is a probe or a scrape, which load shedding spares:
/// `/health`, `/ready`, `/metrics` and gRPC health.
fn is_probe(grpc: bool, route: &str, path: &str) -> bool {
    if grpc {
        path.starts_with("/grpc.health.v1.Health/")
    } else {
        matches!(route, "health" | "ready" | "metrics" | "control")
    }
}

/// The route class a request is counted under.
fn route_class(grpc: bool, path: &str) -> &'static str {
    match path {
        _ if grpc => "grpc",
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        "/control" => "control",
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
fn wants_reset(request: &Request, defaults: &Directives, here: &Here<'_>) -> bool {
    let mut given = Directives::default();
    let directives = match request.headers().get(behavior::RESET) {
        Some(v) => match v.to_str() {
            Ok(t) if given.set(behavior::RESET, t, Duration::ZERO).is_ok() => &given,
            _ => return false,
        },
        None => defaults,
    };
    directives.decide_reset(here, &mut rand::rng())
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
