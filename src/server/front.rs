//! The front of the server: the one tower service every request on the
//! port passes, which does in order what each request needs before it is
//! steered: it is counted and timed by protocol, route class and status,
//! with the in-flight gauge ([`Front::call`]); over `--max-concurrent` it is
//! shed, answered 503 / RESOURCE_EXHAUSTED at once instead of queueing
//! (probes, metrics and gRPC health never are); a request that runs a plan
//! is told which attempt it is, and `x-mock-reset` / `--reset-rate` may drop
//! its connection (a gRPC one's here, an HTTP one's by the planner and a
//! WebSocket's as it opens, [`attempt_or_reset`], each reading the headers
//! once for this and the rest); then
//! `application/grpc*` goes to the tonic services,
//! requests that run a plan straight to the planner, and the rest (health,
//! readiness, metrics, `/control`, the web view) to the HTTP routes.
//!
//! One hand-written service instead of axum middleware and routers stacked
//! around each other: each of those boxes its future and clones its inner
//! service per request, which cost a hop about 15 allocations and copies of
//! kilobyte-sized futures on every request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::FutureExt as _;
use tokio::sync::OwnedSemaphorePermit;
use tower::ServiceExt as _;

use super::counted::Tally;
use super::{http, is_grpc, Service};
use crate::attempts::Attempt;
use crate::behavior::{self, Directives, Here};
use crate::exec::context::Told;
use crate::metrics::Refusal;
use crate::report::InboundProtocol;

/// The service hyper serves on every connection (see the module docs),
/// with what that connection showed before its first request.
#[derive(Clone)]
pub(super) struct Front(Arc<Parts>, Option<super::connection::Connection>);

struct Parts {
    service: Arc<Service>,
    grpc: Router,
    http: Router,
}

impl Front {
    pub(super) fn new(service: Arc<Service>, grpc: Router, http: Router) -> Front {
        Front(
            Arc::new(Parts {
                service,
                grpc,
                http,
            }),
            None,
        )
    }

    /// This front for one connection: each of its requests carries what
    /// the connection showed (its TLS session) as an extension.
    pub(super) fn on(&self, connection: Option<super::connection::Connection>) -> Front {
        Front(self.0.clone(), connection)
    }

    pub(super) fn service(&self) -> &Arc<Service> {
        &self.0.service
    }
}

impl<B> tower::Service<::http::Request<B>> for Front
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answering;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: ::http::Request<B>) -> Self::Future {
        if let Some(connection) = &self.1 {
            request.extensions_mut().insert(connection.clone());
        }
        self.0.count(request.map(Body::new))
    }
}

/// One request's future at the front: boxed once, it holds the route's
/// own future and its [`Tally`], and nothing else.
type Answering = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Parts {
    /// Counts and times every request, and keeps the in-flight gauge: a
    /// [`Tally`] taken here is closed when the route's future answers.
    ///
    /// Everything before the route's future is decided here, without
    /// awaiting: each `async` layer between the box and that future would
    /// hold its own copy of the request and of the layers below it (an
    /// `async fn`'s arguments are kept twice), and a box is filled by
    /// copying the whole of what it holds.
    fn count(self: &Arc<Self>, request: Request) -> Answering {
        let started = Instant::now();
        let grpc = is_grpc(&request);
        let protocol = if grpc {
            InboundProtocol::Grpc
        } else {
            let tls = request
                .extensions()
                .get::<super::connection::Connection>()
                .is_some();
            InboundProtocol::of_http(request.version(), tls)
        };
        let mut route = route_class(grpc, request.uri().path());
        let recorder = self.service.recorder.as_ref();
        if route == PLAN && recorder.is_some() && request.uri().path() == REQUESTS_PATH {
            route = REQUESTS;
        }
        let draft = recorder.and_then(|r| draft(r, grpc, route, &request, protocol));
        let mut tally = Tally {
            service: self.service.clone(),
            protocol,
            route,
            started,
            draft: draft.map(Box::new),
            _in_flight: self.service.metrics.in_flight_owned(),
            _permit: None,
        };
        if grpc && is_stream(request.uri().path()) {
            let parts = self.clone();
            return Box::pin(async move { Ok(parts.count_stream(tally, request).await) });
        }
        match self.shed(grpc, route, request) {
            Admitted::Steer(request, permit) => {
                tally._permit = permit;
                self.steer(tally, grpc, route, request)
            }
            Admitted::Answered(response) => answered(tally, response),
        }
    }

    /// A stream is counted, holds its permit and stays in flight until its
    /// body ends ([`super::counted`]); over `--max-concurrent` it is shed.
    async fn count_stream(&self, mut tally: Tally, request: Request) -> Response {
        let service = &self.service;
        let Ok(permit) = service.in_flight.clone().try_acquire_owned() else {
            service.metrics.refused(Refusal::Overloaded);
            return tally.close(overloaded(true, service.executor.settings().max_concurrent));
        };
        // The stream holds its permit in its body (below), not here.
        tally._permit = Some(permit);
        let response = match self.attempt_and_reset(true, request, None) {
            Admitted::Steer(request, _) => infallible(self.grpc.clone().oneshot(request).await),
            Admitted::Answered(reset) => reset,
        };
        let (parts, body) = response.into_parts();
        let count = super::counted::StreamCount {
            status: super::counted::grpc_status(&parts.headers),
            tally,
            messages: Default::default(),
        };
        Response::from_parts(parts, Body::new(super::counted::Counted::new(body, count)))
    }

    /// Sheds what is over `--max-concurrent`, sparing probes and scrapes: a
    /// busy pod is not a dead one. What passes is then told its attempt
    /// ([`Parts::attempt_and_reset`]), probes excepted.
    ///
    /// It and `attempt_and_reset` decide without awaiting anything (see
    /// [`Parts::count`]).
    fn shed(&self, grpc: bool, route: &'static str, request: Request) -> Admitted {
        if is_probe(grpc, route, request.uri().path()) {
            return Admitted::Steer(request, None);
        }
        let service = &self.service;
        match service.in_flight.clone().try_acquire_owned() {
            Ok(permit) => self.attempt_and_reset(grpc, request, Some(permit)),
            Err(_) => {
                service.metrics.refused(Refusal::Overloaded);
                Admitted::Answered(overloaded(grpc, service.executor.settings().max_concurrent))
            }
        }
    }

    /// For a gRPC call or stream that runs a plan: counts which attempt it
    /// is (kept in the request's extensions for the pipeline), and drops
    /// the connection when `x-mock-reset` (or `--reset-rate`) draws so for
    /// this attempt here: then the answer is the reset. An HTTP request
    /// and a WebSocket are told by the planner and the socket's opening,
    /// which read the headers for the rest too ([`attempt_or_reset`]).
    fn attempt_and_reset(
        &self,
        grpc: bool,
        mut request: Request,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Admitted {
        let path = request.uri().path();
        if grpc && (path == CALL_PATH || is_stream(path)) {
            let line = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let told = Told::of(request.headers());
            // Who called is read only for a reset aimed at a caller (`@from=`).
            let caller = || {
                let connection = request.extensions().get::<super::connection::Connection>();
                crate::caller::principal(connection.map(|c| &*c.tls), told.forwarded)
            };
            let Ok(attempt) = attempt_or_reset(&self.service, &told, line, caller) else {
                return Admitted::Answered(reset());
            };
            // A first attempt is what the pipeline assumes when none is recorded.
            if attempt != Attempt::default() {
                request.extensions_mut().insert(attempt);
            }
        }
        Admitted::Steer(request, permit)
    }

    /// gRPC to the tonic services; a request that runs a plan straight to
    /// the planner, with no route to match (so a remainder such as
    /// `/health` or `/ui` at a leaf, which arrives with the depth header, is
    /// answered with a report like any other); the rest to the HTTP routes.
    fn steer(&self, tally: Tally, grpc: bool, route: &'static str, request: Request) -> Answering {
        if grpc {
            around(tally, self.grpc.clone().oneshot(request).map(infallible))
        } else if super::websocket::is_websocket(&request) {
            around(
                tally,
                super::websocket::open(self.service.clone(), request, route == PLAN),
            )
        } else if let (REQUESTS, Some(recorder)) = (route, &self.service.recorder) {
            answered(
                tally,
                super::recorder::answer(recorder, request.uri().query()),
            )
        } else if route == PLAN || request.headers().contains_key(crate::exec::context::DEPTH) {
            around(
                tally,
                http::run_plan(self.service.clone(), request, route == PLAN),
            )
        } else {
            around(tally, self.http.clone().oneshot(request).map(infallible))
        }
    }
}

/// `answering`, boxed with its tally, counted when it answers.
fn around<F>(tally: Tally, answering: F) -> Answering
where
    F: Future<Output = Response> + Send + 'static,
{
    Box::pin(answering.map(move |response| Ok(tally.close(response))))
}

/// An answer there at once (shed, reset, the recorder's list), counted.
fn answered(tally: Tally, response: Response) -> Answering {
    Box::pin(std::future::ready(Ok(tally.close(response))))
}

/// A router's answer, which cannot be an error.
fn infallible(routed: Result<Response, Infallible>) -> Response {
    match routed {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// What the front does with a request before steering it.
enum Admitted {
    /// Steer it, holding its place under `--max-concurrent` (none for a
    /// probe) until it is answered.
    Steer(Request, Option<OwnedSemaphorePermit>),
    /// Answered at once: shed, or its connection reset.
    Answered(Response),
}

/// The route class of a request that runs a plan.
const PLAN: &str = crate::metrics::PLAN_ROUTE;

/// The route class of `GET /requests` (with `--record`).
const REQUESTS: &str = "requests";

/// Where the recorder answers, with `--record`.
const REQUESTS_PATH: &str = "/requests";

/// An entry of what was received, for a request that runs a plan (HTTP, or
/// a MockService call or stream); none for servicemock's own endpoints.
fn draft(
    recorder: &super::recorder::Recorder,
    grpc: bool,
    route: &str,
    request: &Request,
    protocol: InboundProtocol,
) -> Option<super::recorder::Entry> {
    let runs_plan = if grpc {
        request
            .uri()
            .path()
            .starts_with("/servicemock.v1.MockService/")
    } else {
        route == PLAN
    };
    if !runs_plan {
        return None;
    }
    let connection = request.extensions().get::<super::connection::Connection>();
    let forwarded = crate::exec::context::first_value(request.headers(), &crate::caller::XFCC);
    let principal =
        crate::caller::principal(connection.map(|c| &*c.tls), forwarded).filter(|p| !p.is_empty());
    Some(recorder.draft(request, protocol.as_str(), principal))
}

/// The path of `servicemock.v1.MockService/Call`.
const CALL_PATH: &str = "/servicemock.v1.MockService/Call";

/// Whether a gRPC path is one of MockService's streams.
fn is_stream(path: &str) -> bool {
    matches!(
        path,
        "/servicemock.v1.MockService/CallStream" | "/servicemock.v1.MockService/Converse"
    )
}

/// Whether a request is a probe or a scrape, which load shedding spares:
/// `/health`, `/ready`, `/metrics` and gRPC health.
fn is_probe(grpc: bool, route: &str, path: &str) -> bool {
    if grpc {
        path.starts_with("/grpc.health.v1.Health/")
    } else {
        matches!(route, "health" | "ready" | "metrics" | "control" | REQUESTS)
    }
}

/// The route class a request is counted under.
fn route_class(grpc: bool, path: &str) -> &'static str {
    match path {
        _ if grpc => crate::metrics::GRPC_ROUTE,
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        "/control" => "control",
        p if p == "/ui" || p.starts_with("/ui/") => "ui",
        _ => PLAN,
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

/// Which attempt a request that runs a plan is, by what its headers
/// `told` and its request `line` (counted in `service`'s attempts); or
/// [`ResetDrawn`] (counted) when `x-mock-reset` (or `--reset-rate`) draws
/// a reset for this attempt here: each edge then drops the request its own
/// way. `caller` is asked only for a reset aimed at a caller.
pub(super) fn attempt_or_reset(
    service: &Service,
    told: &Told<'_>,
    line: &str,
    caller: impl FnOnce() -> Option<String>,
) -> Result<Attempt, ResetDrawn> {
    let attempt = service.attempts.observe(told, line);
    if draws_reset(service, told.reset, attempt.number, caller) {
        service.metrics.reset();
        return Err(ResetDrawn);
    }
    Ok(attempt)
}

/// A request's connection is to be dropped ([`attempt_or_reset`]).
#[derive(Debug)]
pub(super) struct ResetDrawn;

/// Whether `x-mock-reset` (`reset`, the request's header if it has one) or
/// `--reset-rate` drops a request arriving as `attempt`: the one draw of
/// every edge (HTTP, gRPC, TCP lines, WebSockets). `caller` (the
/// caller's principal) is asked only for a reset aimed at one (`@from=`).
/// A bad value does not reset; the handlers refuse it with
/// 400/INVALID_ARGUMENT.
fn draws_reset(
    service: &Service,
    reset: Option<&::http::HeaderValue>,
    attempt: u32,
    caller: impl FnOnce() -> Option<String>,
) -> bool {
    let mut given = Directives::default();
    let defaults = service.control.defaults();
    let directives = match reset {
        Some(v) => match v.to_str() {
            Ok(t) if given.set(behavior::RESET, t, Duration::ZERO).is_ok() => &given,
            _ => return false,
        },
        None => &*defaults,
    };
    let Some(reset) = &directives.reset else {
        return false;
    };
    let principal = reset.only.from.as_ref().and_then(|_| caller());
    let here: Here<'_> = service.here(attempt, principal.as_deref());
    directives.decide_reset(&here, &mut rand::rng())
}

/// An answer whose body fails at once: hyper aborts the connection
/// (HTTP/1.1) or resets the stream (HTTP/2), what a crashing peer does.
pub(super) fn reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<bytes::Bytes, _>(std::io::Error::other(
            "connection reset on purpose (x-mock-reset)",
        ))
    });
    Response::new(axum::body::Body::from_stream(failing))
}
