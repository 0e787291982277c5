//! HTTP hops: one keep-alive pool of plain HTTP/1.1 connections
//! ([`super::keepalive`]), one HTTP/2 prior-knowledge client and, for
//! `https:` or a hop's own connect timeout, one client per way of dialing
//! (hyper-util's pooled client, the engine under reqwest, used directly:
//! hops need no redirects, proxies, cookies or URL parsing), shared by
//! every request of the process. A pool is keyed by everything that changes how its
//! connections are made (TLS server name, verification, connect timeout),
//! so `[:sni=…]`, `[:insecure=true]` or `[:connect=…]` never reuses another
//! hop's connection. The downstream body is always read to its end, so
//! every connection goes back to the pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::super::judge::{brief, judge, Answer, Carrier, StatusLine};
use super::super::{HopResult, Outgoing};
use super::keepalive::{KeepAlive, Lease, PoolError, IDLE_TIMEOUT, MAX_IDLE_PER_HOST};
use super::lookup::Lookup;
use super::tls::{HopTls, TlsConnector};
use crate::report::{Outcome, Received};

type Pool = Client<HttpConnector<Lookup>, Full<Bytes>>;
type TlsPool = Client<TlsConnector, Full<Bytes>>;

/// Most pools of other dialing (TLS server names, connect timeouts) kept;
/// past it one is let go.
const MAX_DIALED_POOLS: usize = 256;

/// The connect timeout of a hop that sets none (`[:connect=…]`).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How an HTTP hop travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum HttpKind {
    Http1,
    H2c,
    /// TLS, HTTP/1.1 or HTTP/2 as ALPN decides.
    Https,
}

/// The pooled HTTP clients.
#[derive(Debug, Clone)]
pub(super) struct HttpClients {
    http1: KeepAlive,
    h2c: Pool,
    tls: HopTls,
    dialed: Arc<Mutex<HashMap<PoolKey, Dialed>>>,
}

/// What a pool's connections share besides their address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    kind: HttpKind,
    /// The TLS server name (empty in cleartext).
    server_name: String,
    insecure: bool,
    connect: Duration,
}

#[derive(Debug, Clone)]
enum Dialed {
    Plain(Pool),
    Tls(TlsPool),
}

/// One HTTP request of a hop: what goes on the request line and in the
/// body, and how the answer is judged.
#[derive(Debug)]
pub(super) struct HttpRequest<'a> {
    pub(super) method: http::Method,
    pub(super) path: &'a str,
    /// The body and its content type.
    pub(super) body: Option<(Bytes, &'static str)>,
    /// Judge the answer by its status alone (`[:expect=any]`, HEAD).
    pub(super) by_status: bool,
}

/// Why an HTTP exchange failed before a usable answer.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("bad request target: {0}")]
    Uri(#[from] http::Error),
    #[error(transparent)]
    Send(#[from] hyper_util::client::legacy::Error),
    #[error(transparent)]
    Pooled(#[from] PoolError),
    #[error("reading the answer: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// The TCP connector of every HTTP hop: names by [`Lookup`], no Nagle.
fn tcp_connector(connect: Duration) -> HttpConnector<Lookup> {
    let mut connector = HttpConnector::new_with_resolver(Lookup);
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect));
    connector.enforce_http(false);
    connector
}

fn client_builder(h2_only: bool) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .http2_only(h2_only);
    builder
}

impl HttpClients {
    pub(super) fn new(tls: HopTls) -> HttpClients {
        HttpClients {
            http1: KeepAlive::new(tcp_connector(CONNECT_TIMEOUT)),
            h2c: client_builder(true).build(tcp_connector(CONNECT_TIMEOUT)),
            tls,
            dialed: Arc::default(),
        }
    }

    /// The pool for `key`, made on first use.
    fn pool(&self, key: PoolKey) -> Result<Dialed, String> {
        let mut pools = self.dialed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let tcp = tcp_connector(key.connect);
        let pool = match key.kind {
            HttpKind::Https => {
                let connector =
                    TlsConnector::new(tcp, &self.tls, false, &key.server_name, key.insecure)?;
                Dialed::Tls(client_builder(false).build(connector))
            }
            kind => Dialed::Plain(client_builder(kind == HttpKind::H2c).build(tcp)),
        };
        if pools.len() >= MAX_DIALED_POOLS {
            if let Some(any) = pools.keys().next().cloned() {
                pools.remove(&any);
            }
        }
        pools.insert(key, pool.clone());
        Ok(pool)
    }

    /// Sends `request` to `out.to` and judges the answer.
    pub(super) async fn call(
        &self,
        kind: HttpKind,
        out: Outgoing<'_>,
        request: HttpRequest<'_>,
    ) -> HopResult {
        let options = out.options;
        let connect = options.connect.unwrap_or(CONNECT_TIMEOUT);
        let standard = connect == CONNECT_TIMEOUT;
        match kind {
            HttpKind::Http1 if standard => {
                exchange(
                    Via::<HttpConnector<Lookup>>::KeepAlive(&self.http1),
                    out,
                    request,
                )
                .await
            }
            HttpKind::H2c if standard => {
                exchange(Via::Client(&self.h2c, "http"), out, request).await
            }
            _ => {
                let server_name = match kind {
                    HttpKind::Https => options.sni.as_deref().unwrap_or(out.to.host()),
                    _ => "",
                };
                let key = PoolKey {
                    kind,
                    server_name: server_name.to_owned(),
                    insecure: options.insecure,
                    connect,
                };
                match self.pool(key) {
                    Ok(Dialed::Plain(pool)) => {
                        exchange(Via::Client(&pool, "http"), out, request).await
                    }
                    Ok(Dialed::Tls(pool)) => {
                        exchange(Via::Client(&pool, "https"), out, request).await
                    }
                    Err(e) => HopResult::failed(Outcome::Tls, e),
                }
            }
        }
    }
}

/// What a hop's request goes out through.
enum Via<'a, C> {
    /// The keep-alive pool of plain HTTP/1.1 connections.
    KeepAlive(&'a KeepAlive),
    /// A hyper-util client, and the scheme of its URIs.
    Client(&'a Client<C, Full<Bytes>>, &'static str),
}

impl<'a, C: Connect + Clone + Send + Sync + 'static> Via<'a, C> {
    /// Sends `request` (its URI the path alone) to `to`; the lease, when
    /// the connection is the pool's, goes back once the answer was read.
    async fn send<'t>(
        &self,
        to: &'t super::super::resolve::Resolved,
        path: &str,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Option<Lease<'t>>), ExchangeError>
    where
        'a: 't,
    {
        match *self {
            Via::KeepAlive(pool) => {
                *request.uri_mut() = Uri::try_from(path).map_err(http::Error::from)?;
                // A hop to a servicemock has it already, made with its own
                // headers (`Resolved::http_host`).
                if !request.headers().contains_key(HOST) {
                    let host = HeaderValue::from_str(to.http_host()).map_err(http::Error::from)?;
                    request.headers_mut().insert(HOST, host);
                }
                let (response, lease) = pool.send(to.connect(), request).await?;
                Ok((response, Some(lease)))
            }
            Via::Client(client, scheme) => {
                *request.uri_mut() = Uri::builder()
                    .scheme(scheme)
                    .authority(to.connect())
                    .path_and_query(path)
                    .build()?;
                if to.connect() != to.authority && !request.headers().contains_key(HOST) {
                    if let Ok(host) = HeaderValue::from_str(&to.authority) {
                        request.headers_mut().insert(HOST, host);
                    }
                }
                Ok((client.request(request).await?, None))
            }
        }
    }
}

/// One HTTP exchange through `via`.
async fn exchange<C>(via: Via<'_, C>, out: Outgoing<'_>, request: HttpRequest<'_>) -> HopResult
where
    C: Connect + Clone + Send + Sync + 'static,
{
    {
        let Outgoing {
            to,
            headers,
            timer: timeout,
            room,
            options,
            ..
        } = out;
        let connect = options.connect.unwrap_or(CONNECT_TIMEOUT);
        let HttpRequest {
            method,
            path,
            body,
            by_status,
        } = request;
        let exchange = async {
            let (body, content_type) = match body {
                Some((bytes, content_type)) => (Full::from(bytes), Some(content_type)),
                None => (Full::default(), None),
            };
            let mut request = Request::new(body);
            *request.method_mut() = method;
            *request.headers_mut() = headers;
            if let Some(content_type) = content_type {
                request.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type),
                );
            }
            let (response, lease) = via.send(to, path, request).await?;
            let (parts, body) = response.into_parts();
            let body = match Limited::new(body, room).collect().await {
                Ok(collected) => Some(collected.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => None,
                Err(e) => return Err(ExchangeError::Body(e)),
            };
            // Read to its end: the connection can carry the next request.
            if let (Some(lease), Some(_)) = (lease, &body) {
                lease.give_back();
            }
            Ok::<_, ExchangeError>((parts, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(elapsed) => HopResult::transport(&elapsed, to, timeout, connect),
            // The client's own error, not the wrapper that forwards to its
            // source: whether it failed connecting is asked of it.
            Ok(Err(ExchangeError::Send(e))) => HopResult::transport(&e, to, timeout, connect),
            Ok(Err(ExchangeError::Pooled(e))) => HopResult::transport(&e, to, timeout, connect),
            Ok(Err(e)) => HopResult::transport(&e, to, timeout, connect),
            Ok(Ok((parts, body))) => {
                let bytes = body.as_ref().map_or(room, bytes::Bytes::len);
                if by_status {
                    judge_status_alone(&parts, body.as_deref())
                } else {
                    judge_answer(&parts, body, room)
                }
                .with_bytes(bytes)
            }
        }
    }
}

impl Default for HttpClients {
    fn default() -> Self {
        HttpClients::new(HopTls::public())
    }
}

/// Turns a downstream answer into a hop result ([`judge`]); an answer
/// over the bytes left for this request's reports is cut, not read.
fn judge_answer(parts: &http::response::Parts, body: Option<Bytes>, room: usize) -> HopResult {
    let status = parts.status;
    let code = i32::from(status.as_u16());
    // Written out only when an error names it, not for every good answer.
    let said = StatusLine(status);
    let Some(body) = body else {
        return HopResult::failed(
            Outcome::BadAnswer,
            format!(
                "answered {said} with more than the {room} bytes left for this request's reports (--max-report-size): cut"
            ),
        )
        .with_status(code);
    };
    judge(Answer {
        code,
        success: status.is_success(),
        out_of_time: false,
        said: &said,
        report: Received::read(body.clone()),
        carrier: Carrier::Http {
            headers: &parts.headers,
            body: &body,
        },
    })
}

/// An answer from a target that is not a servicemock (`[:expect=any]`) or
/// to a HEAD: ok for a 2xx, else a failing `status`; who answered, the
/// status line and a short quote of the body are kept, no report is read.
fn judge_status_alone(parts: &http::response::Parts, body: Option<&[u8]>) -> HopResult {
    let status = parts.status;
    let body = body.unwrap_or_default();
    let who = super::super::judge::answered_by(&parts.headers, body, false);
    let quote = brief(body);
    let error = (!status.is_success())
        .then(|| format!("answered {}, made by {who}{quote}", StatusLine(status)));
    let said = who.with_answer(&format!("{}{quote}", StatusLine(status)));
    HopResult::by_status_alone(i32::from(status.as_u16()), error, said)
}
