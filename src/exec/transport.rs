//! The hop transport seam: everything that depends on how a hop travels.
//!
//! A [`Transport`] owns, for one hop protocol, how the sub-plan is encoded
//! (an @-path, a JSON `CallRequest`, a `Plan` message), how the deadline
//! travels (the budget header every protocol carries is set by the
//! executor; a transport adds its own, such as `grpc-timeout`), how the
//! hop's URL reads in the report, and how its failures are classified. The
//! executor knows no protocol: it picks the transport for the hop's
//! [`Protocol`] from [`Transports`].
//!
//! Adding a protocol: one file implementing [`Transport`], one variant of
//! [`Protocol`] (with its scheme word), and its entry in
//! [`Transports::standard`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::grpc::GrpcClients;
use super::http::HttpClients;
use super::resolve::Resolved;
use super::{HopResult, Outgoing};
use crate::plan::json::request_json;
use crate::plan::path::render_path;
use crate::plan::proto::request_for;
use crate::plan::{Plan, Protocol};
use crate::report::Outcome;

/// A hop call in flight.
pub type HopFuture<'a> = Pin<Box<dyn Future<Output = HopResult> + Send + 'a>>;

/// The URL a hop's report shows, and, when the sub-plan travels in it (an
/// HTTP hop's @-path), where in it the request's path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopUrl {
    text: String,
    path_from: Option<usize>,
}

impl HopUrl {
    /// A URL that does not carry the sub-plan.
    pub fn new(text: String) -> HopUrl {
        HopUrl {
            text,
            path_from: None,
        }
    }

    /// `scheme://authority` followed by the request path that carries the
    /// sub-plan.
    pub fn with_path(scheme: &str, authority: &str, path: &str) -> HopUrl {
        let from = scheme.len() + "://".len() + authority.len();
        let mut text = String::with_capacity(from + path.len());
        for part in [scheme, "://", authority, path] {
            text.push_str(part);
        }
        HopUrl {
            text,
            path_from: Some(from),
        }
    }

    /// The request path, when the URL carries the sub-plan.
    pub fn path(&self) -> Option<&str> {
        self.path_from.and_then(|from| self.text.get(from..))
    }

    /// The URL as the report shows it.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl std::fmt::Display for HopUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// How one hop protocol carries a call.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// The URL the report shows for a call to `to` carrying `next`; it is
    /// handed back to [`Transport::call`] in `out.url`, so a transport whose
    /// URL holds the encoded sub-plan need not encode it again.
    fn url(&self, to: &Resolved, next: &Plan) -> HopUrl;

    /// Calls `out.to` with `next` as the sub-plan, within `out.timer`.
    fn call<'a>(&'a self, out: Outgoing<'a>, next: &'a Plan) -> HopFuture<'a>;
}

/// The transport of each protocol.
#[derive(Debug, Clone)]
pub struct Transports {
    http: Arc<dyn Transport>,
    h2c: Arc<dyn Transport>,
    grpc: Arc<dyn Transport>,
    /// The standard gRPC channel pool, for its size in /metrics.
    grpc_clients: Option<GrpcClients>,
}

impl Transports {
    /// The product's own: pooled HTTP/1.1 and h2c clients, gRPC channels.
    pub fn standard() -> Transports {
        let http = HttpClients::new();
        let grpc = GrpcClients::default();
        Transports {
            http: Arc::new(HttpTransport {
                clients: http.clone(),
                h2c: false,
            }),
            h2c: Arc::new(HttpTransport {
                clients: http,
                h2c: true,
            }),
            grpc: Arc::new(GrpcTransport {
                clients: grpc.clone(),
            }),
            grpc_clients: Some(grpc),
        }
    }

    /// The same transport for every protocol (tests use a fake one).
    pub fn all(transport: Arc<dyn Transport>) -> Transports {
        Transports {
            http: transport.clone(),
            h2c: transport.clone(),
            grpc: transport,
            grpc_clients: None,
        }
    }

    /// The transport for `protocol`.
    pub fn get(&self, protocol: Protocol) -> &dyn Transport {
        match protocol {
            Protocol::Http => &*self.http,
            Protocol::H2c => &*self.h2c,
            Protocol::Grpc => &*self.grpc,
        }
    }
}

/// HTTP/1.1 or h2c: the sub-plan as an @-path, or as a JSON `CallRequest`
/// POSTed to `/` when no single path can say it.
#[derive(Debug)]
struct HttpTransport {
    clients: HttpClients,
    h2c: bool,
}

/// How the URL of an HTTP hop whose sub-plan goes as a JSON POST ends.
const POSTS_PLAN: &str = "/ (POST plan)";

impl Transport for HttpTransport {
    fn url(&self, to: &Resolved, next: &Plan) -> HopUrl {
        match render_path(next) {
            Ok(path) => HopUrl::with_path("http", &to.authority, &path),
            Err(_) => HopUrl::new(format!("http://{}{POSTS_PLAN}", to.authority)),
        }
    }

    fn call<'a>(&'a self, out: Outgoing<'a>, next: &'a Plan) -> HopFuture<'a> {
        Box::pin(async move {
            // The path was rendered once, into the URL: take it from there.
            let (path, body) = match out.url.path() {
                Some(path) => (path, None),
                None => match request_json(next) {
                    Ok(json) => ("/", Some(json)),
                    Err(e) => {
                        let why = format!("cannot encode the plan: {e}");
                        return HopResult::failed(Outcome::Error, why);
                    }
                },
            };
            self.clients.call(self.h2c, out, path, body).await
        })
    }
}

/// gRPC: the sub-plan as a `Plan` message in `MockService/Call`, the
/// deadline also as `grpc-timeout`.
#[derive(Debug)]
struct GrpcTransport {
    clients: GrpcClients,
}

impl Transport for GrpcTransport {
    fn url(&self, to: &Resolved, _next: &Plan) -> HopUrl {
        HopUrl::new(format!("grpc://{}", to.authority))
    }

    fn call<'a>(&'a self, out: Outgoing<'a>, next: &'a Plan) -> HopFuture<'a> {
        Box::pin(self.clients.call(out, request_for(next)))
    }
}

impl Transports {
    /// How many gRPC channels the standard transports keep open.
    pub fn grpc_channels(&self) -> usize {
        self.grpc_clients.as_ref().map_or(0, GrpcClients::len)
    }
}
