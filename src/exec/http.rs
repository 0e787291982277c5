//! HTTP hops: one pooled HTTP/1.1 client, one HTTP/2 prior-knowledge
//! client and, for `https:`, one TLS client per server name (hyper-util's
//! pooled client, the engine under reqwest, used directly: hops need no
//! redirects, proxies, cookies or URL parsing), shared by every request of
//! the process. TLS pools are keyed by the server name as well as the
//! address, so a connection is never reused for another name's handshake.
//! The downstream body is always read to its end, so every connection goes
//! back to the pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::resolve::Lookup;
use super::tls::{HopTls, TlsConnector};
use super::{HopResult, Outgoing};
use crate::report::{Outcome, Received};

type Pool = Client<HttpConnector<Lookup>, Full<Bytes>>;
type TlsPool = Client<TlsConnector, Full<Bytes>>;

/// Idle connections kept per host (each pool also drops them after 60 s).
const MAX_IDLE_PER_HOST: usize = 64;

/// Most TLS pools (server names) kept; past it one is let go.
const MAX_TLS_POOLS: usize = 256;

/// How an HTTP hop travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpKind {
    Http1,
    H2c,
    /// TLS, HTTP/1.1 or HTTP/2 as ALPN decides.
    Https,
}

/// The pooled HTTP clients.
#[derive(Debug, Clone)]
pub(super) struct HttpClients {
    http1: Pool,
    h2c: Pool,
    tls: HopTls,
    https: Arc<Mutex<HashMap<String, TlsPool>>>,
}

/// Why an HTTP exchange failed before a usable answer.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("bad request target: {0}")]
    Uri(#[from] http::Error),
    #[error(transparent)]
    Send(#[from] hyper_util::client::legacy::Error),
    #[error("reading the answer: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// The TCP connector of every HTTP hop: names by [`Lookup`], no Nagle.
fn tcp_connector() -> HttpConnector<Lookup> {
    let mut connector = HttpConnector::new_with_resolver(Lookup);
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.enforce_http(false);
    connector
}

fn client_builder(h2_only: bool) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .http2_only(h2_only);
    builder
}

impl HttpClients {
    pub(super) fn new(tls: HopTls) -> HttpClients {
        HttpClients {
            http1: client_builder(false).build(tcp_connector()),
            h2c: client_builder(true).build(tcp_connector()),
            tls,
            https: Arc::default(),
        }
    }

    /// The TLS pool for server name `host`, made on first use.
    fn tls_pool(&self, host: &str) -> Result<TlsPool, String> {
        let mut pools = self.https.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(host) {
            return Ok(pool.clone());
        }
        let connector = TlsConnector::new(tcp_connector(), &self.tls, false, host)?;
        let pool = client_builder(false).build(connector);
        if pools.len() >= MAX_TLS_POOLS {
            if let Some(any) = pools.keys().next().cloned() {
                pools.remove(&any);
            }
        }
        pools.insert(host.to_owned(), pool.clone());
        Ok(pool)
    }

    /// Calls `path` on `to` and reads the downstream report: a GET, or with
    /// `plan` (a JSON `CallRequest`) a POST of it.
    pub(super) async fn call(
        &self,
        kind: HttpKind,
        out: Outgoing<'_>,
        path: &str,
        plan: Option<Vec<u8>>,
    ) -> HopResult {
        match kind {
            HttpKind::Http1 => exchange(&self.http1, "http", out, path, plan).await,
            HttpKind::H2c => exchange(&self.h2c, "http", out, path, plan).await,
            HttpKind::Https => match self.tls_pool(out.to.host()) {
                Ok(pool) => exchange(&pool, "https", out, path, plan).await,
                Err(e) => HopResult::failed(Outcome::Tls, e),
            },
        }
    }
}

/// One HTTP exchange with `client`: a GET of `path`, or a POST of `plan`.
async fn exchange<C>(
    client: &Client<C, Full<Bytes>>,
    scheme: &str,
    out: Outgoing<'_>,
    path: &str,
    plan: Option<Vec<u8>>,
) -> HopResult
where
    C: Connect + Clone + Send + Sync + 'static,
{
    {
        let Outgoing {
            to,
            headers,
            timer: timeout,
            room,
            ..
        } = out;
        let exchange = async {
            let uri = Uri::builder()
                .scheme(scheme)
                .authority(to.connect.as_str())
                .path_and_query(path)
                .build()?;
            let mut request = match plan {
                None => Request::get(uri).body(Full::default())?,
                Some(json) => Request::post(uri).body(Full::from(json))?,
            };
            let posts_plan = request.method() == http::Method::POST;
            *request.headers_mut() = headers;
            if posts_plan {
                request.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            if to.connect != to.authority {
                if let Ok(host) = HeaderValue::from_str(&to.authority) {
                    request.headers_mut().insert(HOST, host);
                }
            }
            let response = client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = match Limited::new(body, room).collect().await {
                Ok(collected) => Some(collected.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => None,
                Err(e) => return Err(ExchangeError::Body(e)),
            };
            Ok::<_, ExchangeError>((parts, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(elapsed) => HopResult::transport(&elapsed, to, timeout),
            Ok(Err(e)) => HopResult::transport(&e, to, timeout),
            Ok(Ok((parts, body))) => HopResult {
                bytes: body.as_ref().map_or(room, bytes::Bytes::len),
                ..judge_answer(&parts, body, room)
            },
        }
    }
}

impl Default for HttpClients {
    fn default() -> Self {
        HttpClients::new(HopTls::public())
    }
}

/// Turns a downstream answer into a hop result. A servicemock report
/// (one that names the service that wrote it) is nested under the hop; any
/// other answer is told apart as what it is — its status, who made it and a
/// short quote — never dressed up as a report.
fn judge_answer(parts: &http::response::Parts, body: Option<Bytes>, room: usize) -> HopResult {
    let status = parts.status;
    let code = i32::from(status.as_u16());
    // Written out only when an error names it, not for every good answer.
    let status_text = StatusLine(status);
    let Some(body) = body else {
        return HopResult {
            status: Some(code),
            ..HopResult::failed(
                Outcome::BadAnswer,
                format!(
                    "answered {status_text} with more than the {room} bytes left for this request's reports (--max-report-size): cut"
                ),
            )
        };
    };
    match Received::read(body.clone()) {
        Ok(answer) if status.is_success() => HopResult::from_ok_report(code, &status_text, answer),
        Ok(answer) => {
            HopResult::from_failed_report(code, format!("answered {status_text}"), answer)
        }
        Err(why) => {
            let who = super::failure::answered_by(&parts.headers, &body, false);
            let outcome = if status.is_success() {
                Outcome::BadAnswer
            } else {
                Outcome::Status
            };
            let not_a_report = if status.is_success() {
                format!(" with a body that is not a servicemock report ({why})")
            } else {
                String::new()
            };
            HopResult {
                status: Some(code),
                outcome,
                error: Some(format!(
                    "answered {status_text}{not_a_report}, made by {who}{}",
                    brief_body(&body)
                )),
                response: None,
                arrived_as: None,
                answered_by: Some(who),
                bytes: 0,
            }
        }
    }
}

/// `503 Service Unavailable`.
struct StatusLine(http::StatusCode);

impl std::fmt::Display for StatusLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.canonical_reason() {
            Some(reason) => write!(f, "{} {reason}", self.0.as_u16()),
            None => write!(f, "{}", self.0.as_u16()),
        }
    }
}

/// A short quote of a body that is not a report, for the error text.
fn brief_body(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    format!(
        ": \"{}\"",
        crate::report::text::sanitize(text.trim()).replace("\\n", " ")
    )
}
