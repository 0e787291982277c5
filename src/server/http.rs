//! The HTTP side (HTTP/1.1 and h2c): `/health`, `/ready`, and every other
//! path, any method, to the planner. Answers are the JSON report: 200 when
//! every hop succeeded, 502 when one failed, 400 for a path that does not
//! parse, 508 past the depth limit.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::pipeline::{self, Refused};
use super::Service;
use crate::attempts::Attempt;
use crate::exec::context::Told;
use crate::exec::Inbound;
use crate::metrics::Refusal;
use crate::plan::json::plan_from_json;
use crate::plan::recent::plan_of;
use crate::report::InboundProtocol;
use crate::report::{Report, View};

/// The HTTP routes of one service, for people and probes.
pub(super) fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/control", axum::routing::any(super::control::handle))
        .route("/ui", get(ui))
        .route("/ui/", get(|| async { Redirect::permanent("../ui") }))
        .fallback(planner)
        .with_state(service)
}

/// The web view: one page embedded in the binary, using relative URLs only
/// so that it works behind an ingress path prefix.
async fn ui() -> Html<&'static str> {
    Html(include_str!("ui.html"))
}

async fn health(State(service): State<Arc<Service>>) -> (StatusCode, &'static str) {
    if service.control.live() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not live (set by /control)\n",
        )
    }
}

async fn ready(State(service): State<Arc<Service>>) -> (StatusCode, &'static str) {
    if service.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if !service.control.ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready (set by /control)\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// Every path but servicemock's own endpoints, any method, any body:
/// parse, run, report. A `POST` whose body is a JSON object with a
/// top-level `path` or `plan` carries a `CallRequest` instead of the path;
/// any other body (a form, text, someone's JSON) is read up to
/// `--max-body`, counted, digested and let go.
pub(super) async fn planner(State(service): State<Arc<Service>>, request: Request) -> Response {
    run_plan(service, request, false).await
}

/// [`planner`]'s work. A request `counted` is told here which attempt it
/// is, and may draw a reset (`x-mock-reset`, `--reset-rate`), before
/// anything else is done with it (the front does so for the rest of the
/// requests that run a plan): its headers are read once, for its attempt
/// and for what they ask of the plan.
pub(super) async fn run_plan(service: Arc<Service>, request: Request, counted: bool) -> Response {
    let (parts, body) = request.into_parts();
    let full_target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let connection = parts.extensions.get::<super::connection::Connection>();
    let told = Told::of(&parts.headers);
    let (tls, peer) = crate::caller::of_request(connection.map(|c| &*c.tls), told.forwarded);
    let caller = peer.as_ref().map(|p| p.principal.as_str());
    // Answered as it came, when the report's id is this one.
    let carried_id = told.request_id.cloned();
    let attempt = if counted {
        let principal = || caller.map(str::to_owned);
        match super::front::attempt_or_reset(&service, &told, full_target, principal) {
            Ok(attempt) => attempt,
            Err(super::front::ResetDrawn) => return super::front::reset(),
        }
    } else {
        Attempt::default()
    };
    if parts.method == Method::CONNECT {
        let allow = [(
            header::ALLOW,
            "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH",
        )];
        let message = "CONNECT is not served: servicemock is no proxy\n";
        return (StatusCode::METHOD_NOT_ALLOWED, allow, message).into_response();
    }
    let limits = service.executor.settings().limits;
    let admission = match pipeline::admit(&service, &told, &parts.headers, Some(&attempt), caller) {
        Ok(a) => a,
        Err(refused) => return refusal(&service, refused, View::Json),
    };
    let depth = admission.depth;
    // The view is the entry's choice; services between themselves exchange JSON.
    let (target, view) = if depth == 0 {
        match choose_view(full_target, &parts.headers) {
            Ok(chosen) => chosen,
            Err(unknown) => {
                service.metrics.refused(Refusal::BadRequest);
                return bad_request(format!(
                    "unknown view \"{unknown}\" in the query: write view=json, view=tree or view=flat"
                ));
            }
        }
    } else {
        (Cow::Borrowed(full_target), View::Json)
    };
    let target: &str = &target;
    // A POST with a body carries a JSON CallRequest. curl -d sends it as a
    // form unless told otherwise, so a body that opens with '{' is read as
    // JSON whatever its content type; any other body is refused, not ignored.
    let max_body = service.executor.settings().limits.max_body;
    // Most requests have no body: nothing to collect.
    let bytes = if axum::body::HttpBody::is_end_stream(&body) {
        Ok(bytes::Bytes::new())
    } else {
        axum::body::to_bytes(body, max_body).await
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e) if is_too_large(&e) => {
            service.metrics.refused(Refusal::BadRequest);
            let message = format!("request body larger than {max_body} bytes (--max-body)\n");
            return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
        Err(e) => return bad_request(format!("cannot read the request body: {e}")),
    };
    let plan = if parts.method == Method::POST && is_a_plan(&bytes) {
        plan_from_json(&bytes, &limits).map(Arc::new)
    } else {
        plan_of(target, &limits)
    };
    let chosen = match pipeline::check_plan(&service, &admission, &parts.headers, plan) {
        Ok(chosen) => chosen,
        Err(refused) => return refusal(&service, refused, view),
    };
    let request_line = request_line(&parts.method, target, parts.version);
    let mut inbound = Inbound::new(
        InboundProtocol::of_http(parts.version, tls.is_some()),
        request_line,
        parts.headers,
    );
    inbound.set_caller(tls, peer);
    inbound.set_body(&parts.method, &bytes);
    drop(bytes);
    let pretty = depth == 0;
    let (report, verdict) =
        match pipeline::run(&service, &chosen, &inbound, &admission, target).await {
            Ok(done) => done,
            Err(refused) => return refusal(&service, refused, view),
        };
    let status = StatusCode::from_u16(verdict.http_status(&admission))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    render(&service, view, status, &report, pretty, carried_id.as_ref())
}

/// Whether a body reached its bound (not another read error).
fn is_too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether a body is a plan: a JSON object with a top-level `path` or
/// `plan` key (then it must be a valid `CallRequest`, and a mistake in it
/// is a 400). Anything else is someone's payload.
fn is_a_plan(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Keys {
        path: Option<serde::de::IgnoredAny>,
        plan: Option<serde::de::IgnoredAny>,
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    // serde_json's own recursion limit bounds a deep payload (not a plan).
    serde_json::from_slice::<Keys>(body).is_ok_and(|k| k.path.is_some() || k.plan.is_some())
}

/// `GET /@service2/end HTTP/1.1`, as the report's `RequestInfo` opens.
fn request_line(method: &http::Method, target: &str, version: http::Version) -> String {
    let version = match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    };
    let mut line = String::with_capacity(method.as_str().len() + target.len() + version.len() + 2);
    for (i, part) in [method.as_str(), target, version].into_iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(part);
    }
    line
}

/// The report in the chosen view, with the identity headers that let a
/// `curl -sI` loop count versions. Between services (`pretty` false) the
/// JSON is compact and received subtrees pass through as they came.
fn render(
    service: &Service,
    view: View,
    status: StatusCode,
    report: &Report,
    pretty: bool,
    carried_id: Option<&http::HeaderValue>,
) -> Response {
    let body = if pretty || view != View::Json {
        crate::report::render(report, view)
    } else {
        crate::report::write::compact(report)
    };
    // Built as it is sent: through `IntoResponse` the body would be given
    // a content type to be replaced, and the headers a map to be merged.
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() =
        service
            .identity_headers
            .of(Some(view.content_type()), report, carried_id);
    response
}

/// The HTTP answer to a refused request: 400 naming the problem, or 508
/// with the report of a request past the depth limit.
fn refusal(service: &Service, refused: Refused, view: View) -> Response {
    let status = StatusCode::from_u16(refused.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    match refused {
        Refused::BadRequest { message, .. } => (status, format!("{message}\n")).into_response(),
        Refused::TooDeep(report) => render(service, view, status, &report, false, None),
    }
}

/// Takes `view=tree` (or `view=flat`, `view=json`) out of the query, so it is not passed
/// on to the leaves; `Accept: text/plain` also asks for the tree. Any other
/// `view=` is a mistake, handed back to be named.
pub(super) fn choose_view<'t>(
    target: &'t str,
    headers: &HeaderMap,
) -> Result<(Cow<'t, str>, View), String> {
    let mut view = match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(accept) if accept.starts_with("text/plain") => View::Tree,
        _ => View::Json,
    };
    let Some((path, query)) = target.split_once('?') else {
        return Ok((Cow::Borrowed(target), view));
    };
    let (mut kept, mut taken) = (Vec::new(), false);
    for pair in query.split('&') {
        match pair {
            "view=tree" => view = View::Tree,
            "view=json" => view = View::Json,
            "view=flat" => view = View::Flat,
            other if other.starts_with("view=") => {
                return Err(crate::report::text::sanitize(&other["view=".len()..]).into_owned());
            }
            other => {
                kept.push(other);
                continue;
            }
        }
        taken = true;
    }
    let target = if !taken {
        Cow::Borrowed(target)
    } else if kept.is_empty() {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("{path}?{}", kept.join("&")))
    };
    Ok((target, view))
}

/// This service's metrics: OpenMetrics when the scraper asks for it (as
/// Prometheus does), the text format 0.0.4 otherwise.
async fn metrics(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    service
        .metrics
        .set_grpc_channels(service.executor.grpc_channels());
    let wants_openmetrics = headers.get_all(header::ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(25)
            .any(|w| w == b"application/openmetrics-t")
    });
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            service.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            service.metrics.encode_text(),
        )
            .into_response()
    }
}

/// A one-line explanation of what is wrong with the request.
fn bad_request(error: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response()
}
