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

/// How one hop protocol carries a call.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// The URL the report shows for a call to `to` carrying `next`; it is
    /// handed back to [`Transport::call`] in `out.url`, so a transport whose
    /// URL holds the encoded sub-plan need not encode it again.
    fn url(&self, to: &Resolved, next: &Plan) -> String;

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
    fn url(&self, to: &Resolved, next: &Plan) -> String {
        let path = render_path(next);
        let path = path.as_deref().unwrap_or(POSTS_PLAN);
        let mut url = String::with_capacity("http://".len() + to.authority.len() + path.len());
        url.push_str("http://");
        url.push_str(&to.authority);
        url.push_str(path);
        url
    }

    fn call<'a>(&'a self, out: Outgoing<'a>, next: &'a Plan) -> HopFuture<'a> {
        Box::pin(async move {
            // The path was rendered once, into the URL: take it from there.
            let prefix = "http://".len() + out.to.authority.len();
            let (path, body) = match out.url.get(prefix..) {
                Some(POSTS_PLAN) | None => match request_json(next) {
                    Ok(json) => ("/", Some(json)),
                    Err(e) => {
                        let why = format!("cannot encode the plan: {e}");
                        return HopResult::failed(Outcome::Error, why);
                    }
                },
                Some(path) => (path, None),
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
    fn url(&self, to: &Resolved, _next: &Plan) -> String {
        format!("grpc://{}", to.authority)
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
