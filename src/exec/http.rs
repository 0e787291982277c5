//! HTTP hops: one pooled HTTP/1.1 client and one HTTP/2 prior-knowledge
//! client (hyper-util's pooled client, the engine under reqwest, used
//! directly: hops need no redirects, proxies, cookies or URL parsing),
//! shared by every request of the process. The downstream body is always
//! read to its end, so every connection goes back to the pool.

use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::resolve::Resolved;
use super::{error_chain, root_cause, HopResult};
use crate::report::{Outcome, Report};

/// Largest downstream body read; a bigger answer is a failed hop.
const MAX_BODY: usize = 16 * 1024 * 1024;

type Pool = Client<HttpConnector, Full<Bytes>>;

/// The two pooled HTTP clients.
#[derive(Debug, Clone)]
pub struct HttpClients {
    http1: Pool,
    h2c: Pool,
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

impl HttpClients {
    pub fn new() -> HttpClients {
        let pool = |h2c: bool| {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(Duration::from_secs(5)));
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_timer(TokioTimer::new())
                .http2_only(h2c);
            builder.build(connector)
        };
        HttpClients {
            http1: pool(false),
            h2c: pool(true),
        }
    }

    /// Calls `path` on `to` and reads the downstream report: a GET, or with
    /// `plan` (a JSON `CallRequest`) a POST of it.
    pub async fn call(
        &self,
        h2c: bool,
        to: &Resolved,
        path: &str,
        plan: Option<Vec<u8>>,
        headers: HeaderMap,
        timeout: Duration,
    ) -> HopResult {
        let client = if h2c { &self.h2c } else { &self.http1 };
        let exchange = async {
            let uri = Uri::builder()
                .scheme("http")
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
            let status = response.status();
            let body = match Limited::new(response.into_body(), MAX_BODY).collect().await {
                Ok(collected) => Some(collected.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => None,
                Err(e) => return Err(ExchangeError::Body(e)),
            };
            Ok::<_, ExchangeError>((status, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => HopResult::failed(Outcome::Timeout, format!("no answer within {timeout:?}")),
            Ok(Err(e)) => describe_error(&e, to),
            Ok(Ok((status, body))) => judge_answer(status, body.as_deref()),
        }
    }
}

impl Default for HttpClients {
    fn default() -> Self {
        HttpClients::new()
    }
}

/// Turns a downstream answer into a hop result: the report it carries, and
/// an error unless the status was 2xx and the body a report.
fn judge_answer(status: http::StatusCode, body: Option<&[u8]>) -> HopResult {
    let code = Some(i32::from(status.as_u16()));
    let Some(body) = body else {
        return HopResult {
            status: code,
            ..HopResult::failed(
                Outcome::BadAnswer,
                format!("answer larger than {MAX_BODY} bytes"),
            )
        };
    };
    let parsed = serde_json::from_slice::<Report>(body);
    let (outcome, error) = match (&parsed, status.is_success()) {
        (Ok(_), true) => (Outcome::Ok, None),
        (_, false) => (
            Outcome::Status,
            Some(format!(
                "answered {status}{}",
                brief_body(body, parsed.is_ok())
            )),
        ),
        (Err(e), true) => (
            Outcome::BadAnswer,
            Some(format!(
                "answered {status} with a body that is not a servicemock report ({e}){}",
                brief_body(body, false)
            )),
        ),
    };
    HopResult {
        status: code,
        outcome,
        error,
        response: parsed.ok(),
    }
}

/// A short quote of a body that is not a report, for the error text.
fn brief_body(body: &[u8], is_report: bool) -> String {
    if is_report || body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    format!(": \"{}\"", text.trim().replace('\n', " "))
}

/// Names a transport failure the way a person would: refused, unresolvable,
/// timed out, or the error chain as it stands.
fn describe_error(error: &ExchangeError, to: &Resolved) -> HopResult {
    let chain = error_chain(error);
    if chain.to_ascii_lowercase().contains("timed out") {
        return HopResult::failed(Outcome::Timeout, format!("timed out: {chain}"));
    }
    HopResult::connect_failure(&chain, || root_cause(error), to)
        .unwrap_or_else(|| HopResult::failed(Outcome::Error, chain))
}
