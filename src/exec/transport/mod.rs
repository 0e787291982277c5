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
//! The clients live beside it, one file per protocol (`http`, `grpc`,
//! `tcp`, `tls`), with the keep-alive pool of plain HTTP/1.1 hops
//! (`keepalive`), the name lookup they connect through (`lookup`) and the
//! sorting of their errors (`failure`).
//!
//! Adding a protocol: one file implementing [`Transport`], one variant of
//! [`Protocol`] (with its scheme word), and its entry in
//! [`Transports::standard`].

pub mod failure;
pub(crate) mod grpc;
mod http;
mod keepalive;
mod lookup;
mod tcp;
pub mod tls;

use std::future::Future;

use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;

use super::resolve::Resolved;
use super::{HopResult, Outgoing};
use crate::plan::json::request_json;
use crate::plan::path::render_into;
use crate::plan::proto::request_for;
use crate::plan::{Hop, Plan, PlanError, Protocol};
use crate::report::Outcome;
use grpc::GrpcClients;
use http::{HttpClients, HttpKind, HttpRequest};
use tls::HopTls;

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
        let mut url = HopUrl::before_path(scheme, authority, path.len());
        url.text.push_str(path);
        url
    }

    /// `scheme://authority` followed by the path that carries `next` (the
    /// path rendered straight into the URL), or why no path can.
    pub fn rendering(scheme: &str, authority: &str, next: &Plan) -> Result<HopUrl, PlanError> {
        let mut url = HopUrl::before_path(scheme, authority, 64);
        render_into(next, &mut url.text)?;
        Ok(url)
    }

    /// `scheme://authority`, with room for a path of about `room` bytes
    /// to follow.
    fn before_path(scheme: &str, authority: &str, room: usize) -> HopUrl {
        let from = scheme.len() + "://".len() + authority.len();
        let mut text = String::with_capacity(from + room);
        for part in [scheme, "://", authority] {
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
    pub fn as_str(&self) -> &str {
        &self.text
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
    /// The URL the report shows for `hop` to `to` (carrying `hop.next`);
    /// it is handed back to [`Transport::call`] in `out.url`, so a
    /// transport whose URL holds the encoded sub-plan need not encode it
    /// again.
    fn url(&self, to: &Resolved, hop: &Hop) -> HopUrl;

    /// Calls `out.to` for `hop`, with `hop.next` as the sub-plan and
    /// `hop.options` as how, within `out.timer`.
    fn call<'a>(&'a self, out: Outgoing<'a>, hop: &'a Hop) -> HopFuture<'a>;
}

/// The transport of each protocol.
#[derive(Debug, Clone)]
pub struct Transports {
    /// One per [`Protocol`], in the order of [`Protocol::ALL`].
    by_protocol: [Arc<dyn Transport>; Protocol::ALL.len()],
    /// The standard gRPC channel pools, for their size in /metrics.
    grpc_clients: Vec<GrpcClients>,
}

impl Transports {
    /// The product's own with public roots only (see [`Transports::with_tls`]).
    pub fn standard() -> Transports {
        Transports::with_tls(HopTls::public())
    }

    /// The product's own: pooled HTTP/1.1, h2c and TLS clients, gRPC
    /// channels in cleartext and over TLS, trusting what `tls` trusts.
    pub fn with_tls(tls: HopTls) -> Transports {
        let http = HttpClients::new(tls.clone());
        let grpc = GrpcClients::default();
        let grpcs = GrpcClients::over_tls(tls);
        let over = |kind| -> Arc<dyn Transport> {
            Arc::new(HttpTransport {
                clients: http.clone(),
                kind,
            })
        };
        let by_protocol = Protocol::ALL.map(|protocol| match protocol {
            Protocol::Http => over(HttpKind::Http1),
            Protocol::H2c => over(HttpKind::H2c),
            Protocol::Https => over(HttpKind::Https),
            Protocol::Grpc => Arc::new(GrpcTransport {
                clients: grpc.clone(),
                scheme: "grpc",
            }) as Arc<dyn Transport>,
            Protocol::Grpcs => Arc::new(GrpcTransport {
                clients: grpcs.clone(),
                scheme: "grpcs",
            }),
            Protocol::Tcp => Arc::new(tcp::TcpTransport::default()),
        });
        Transports {
            by_protocol,
            grpc_clients: vec![grpc, grpcs],
        }
    }

    /// The same transport for every protocol (tests use a fake one).
    pub fn all(transport: Arc<dyn Transport>) -> Transports {
        Transports {
            by_protocol: Protocol::ALL.map(|_| transport.clone()),
            grpc_clients: Vec::new(),
        }
    }

    /// The transport for `protocol`.
    pub fn get(&self, protocol: Protocol) -> &dyn Transport {
        &*self.by_protocol[protocol as usize]
    }
}

/// HTTP/1.1, h2c or HTTPS: the sub-plan as an @-path, or as a JSON
/// `CallRequest` POSTed to `/` when no single path can say it.
#[derive(Debug)]
struct HttpTransport {
    clients: HttpClients,
    kind: HttpKind,
}

impl HttpTransport {
    fn scheme(&self) -> &'static str {
        match self.kind {
            HttpKind::Https => "https",
            HttpKind::Http1 | HttpKind::H2c => "http",
        }
    }
}

/// How the URL of an HTTP hop whose sub-plan goes as a JSON POST ends.
const POSTS_PLAN: &str = "/ (POST plan)";

impl Transport for HttpTransport {
    fn url(&self, to: &Resolved, hop: &Hop) -> HopUrl {
        if let Some(path) = &hop.options.path {
            return HopUrl::with_path(self.scheme(), &to.authority, path);
        }
        HopUrl::rendering(self.scheme(), &to.authority, &hop.next).unwrap_or_else(|_| {
            HopUrl::new(format!("{}://{}{POSTS_PLAN}", self.scheme(), to.authority))
        })
    }

    fn call<'a>(&'a self, out: Outgoing<'a>, hop: &'a Hop) -> HopFuture<'a> {
        Box::pin(async move {
            let options = &hop.options;
            // The path was rendered once, into the URL: take it from there.
            let (path, body) = match out.url.path() {
                Some(path) => (
                    path,
                    options
                        .body
                        .map(|n| (Bytes::from(vec![b'x'; n]), "application/octet-stream")),
                ),
                None => match request_json(&hop.next) {
                    Ok(json) => ("/", Some((Bytes::from(json), "application/json"))),
                    Err(e) => {
                        let why = format!("cannot encode the plan: {e}");
                        return HopResult::failed(Outcome::Error, why);
                    }
                },
            };
            let method = match &options.method {
                Some(m) => match ::http::Method::from_bytes(m.as_bytes()) {
                    Ok(method) => method,
                    Err(e) => return HopResult::failed(Outcome::Error, format!("{m}: {e}")),
                },
                None if out.url.path().is_none() => ::http::Method::POST,
                None => ::http::Method::GET,
            };
            let request = HttpRequest {
                method,
                path,
                body,
                by_status: options.by_status_alone(),
            };
            self.clients.call(self.kind, out, request).await
        })
    }
}

/// gRPC: the sub-plan as a `Plan` message in `MockService/Call`, the
/// deadline also as `grpc-timeout`.
#[derive(Debug)]
struct GrpcTransport {
    clients: GrpcClients,
    /// `grpc` or `grpcs`, as the URL shows it.
    scheme: &'static str,
}

impl Transport for GrpcTransport {
    fn url(&self, to: &Resolved, _hop: &Hop) -> HopUrl {
        HopUrl::new(format!("{}://{}", self.scheme, to.authority))
    }

    fn call<'a>(&'a self, out: Outgoing<'a>, hop: &'a Hop) -> HopFuture<'a> {
        Box::pin(self.clients.call(out, request_for(&hop.next)))
    }
}

impl Transports {
    /// The pooled gRPC channel (over TLS for `grpcs`) that a hop of
    /// `protocol` to `to` made with `options` would use, for other services
    /// of the same server (`grpc.health.v1`).
    pub fn grpc_channel(
        &self,
        to: &Resolved,
        protocol: Protocol,
        options: &crate::plan::HopOptions,
    ) -> Result<tonic::transport::Channel, String> {
        let pool = match protocol {
            Protocol::Grpc => self.grpc_clients.first(),
            Protocol::Grpcs => self.grpc_clients.get(1),
            other => return Err(format!("{other} is not a gRPC protocol")),
        };
        pool.ok_or_else(|| "no gRPC channels here".to_owned())?
            .shared_channel(to, options)
    }

    /// How many gRPC channels the standard transports keep open.
    pub fn grpc_channels(&self) -> usize {
        self.grpc_clients.iter().map(GrpcClients::len).sum()
    }
}
