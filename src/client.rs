//! The clients of the `call` and `health` commands: call a running
//! servicemock over HTTP or gRPC and render its report, or ask whether it is
//! healthy. Addresses are read the way curl and grpcurl users write them
//! (`host:port`, `host`, `http://host:port/`), and a path without its
//! leading `/` gets one, so a path can never be read as part of the address.

use std::time::Duration;

use crate::pb;
use crate::report::proto::decode_status_details;
use crate::report::Report;

/// Why a client could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("\"{addr}\" is not an address: {problem} (write host:port, e.g. localhost:8080)")]
    Address { addr: String, problem: String },
    #[error("\"{path}\" is not a path: {problem}")]
    Path { path: String, problem: String },
    #[error("cannot reach {addr}: {cause}")]
    Unreachable { addr: String, cause: String },
    /// It answered, and said it is not healthy.
    #[error("{addr} is not healthy: {why}")]
    Unhealthy { addr: String, why: String },
    #[error("{addr} answered {status}: {said}")]
    Refused {
        addr: String,
        status: String,
        said: String,
    },
}

pub use crate::report::View;

/// What a call answered, rendered.
#[derive(Debug)]
pub struct Answer {
    /// The report (or the server's message) in the asked view.
    pub body: String,
    /// Whether the call succeeded (2xx / OK).
    pub ok: bool,
    /// The status, as the protocol says it (`502 Bad Gateway`, `UNAVAILABLE: …`).
    pub status: String,
}

/// `host:port` from what a person typed: `host:port`, `host` (port 8080),
/// `http://host:port`, with or without a trailing `/`.
pub fn authority(addr: &str) -> Result<String, ClientError> {
    let bad = |problem: &str| ClientError::Address {
        addr: addr.to_owned(),
        problem: problem.to_owned(),
    };
    let mut rest = addr.trim();
    for scheme in ["http://", "h2c://", "grpc://"] {
        if let Some(stripped) = rest.strip_prefix(scheme) {
            rest = stripped;
        }
    }
    if rest.contains("://") {
        return Err(bad(
            "only http://, h2c:// or grpc:// (no TLS) may come before the host",
        ));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(bad("it is empty"));
    }
    if rest.contains('/') {
        return Err(bad("it holds a path; give the path as its own argument"));
    }
    if rest.contains('@') {
        return Err(bad("'@' belongs to the path, not the address"));
    }
    let has_port = if rest.ends_with(']') {
        false
    } else if let Some((host, port)) = rest.rsplit_once(':') {
        if host.contains(':') && !host.ends_with(']') {
            return Err(bad("an IPv6 address goes in brackets, e.g. [::1]:8080"));
        }
        if port.parse::<u16>().is_err() {
            return Err(bad("the port is not a number"));
        }
        true
    } else {
        false
    };
    Ok(if has_port {
        rest.to_owned()
    } else {
        format!("{rest}:8080")
    })
}

/// The request target from what a person typed: `/@a/end`, `@a/end` (the
/// `/` is added), or a whole URL pasted (`localhost:8080/@a/end`,
/// `http://…`), whose path is taken.
pub fn request_path(path: &str) -> Result<String, ClientError> {
    let path = path.trim();
    if path.is_empty() {
        return Ok("/".to_owned());
    }
    if path.starts_with('/') {
        return Ok(path.to_owned());
    }
    if path.starts_with('@') {
        return Ok(format!("/{path}"));
    }
    // A pasted URL or host:port/path: keep what follows the authority.
    let without_scheme = path.split_once("://").map_or(path, |(_, rest)| rest);
    match without_scheme.find('/') {
        Some(slash) if !without_scheme[..slash].contains('@') => {
            Ok(without_scheme[slash..].to_owned())
        }
        _ => Err(ClientError::Path {
            path: path.to_owned(),
            problem: "a path starts with '/' or '@' (e.g. /@service2/end)".into(),
        }),
    }
}

/// Calls `path` on `addr` over HTTP/1.1 and renders the answer in `view`.
pub async fn call_http(addr: &str, path: &str, view: View) -> Result<Answer, ClientError> {
    let authority = authority(addr)?;
    let path = request_path(path)?;
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = match view {
        View::Json => format!("http://{authority}{path}"),
        View::Tree => format!("http://{authority}{path}{separator}view=tree"),
        View::Flat => format!("http://{authority}{path}{separator}view=flat"),
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| unreachable(&authority, &e))?;
    let (status, body) = exchange(client.get(&url), &authority).await?;
    Ok(Answer {
        body,
        ok: status.is_success(),
        status: status.to_string(),
    })
}

/// How [`call_over`] calls: the hop protocol, what TLS trusts, how long to
/// wait, and headers on the call.
#[derive(Debug)]
pub struct Over {
    pub protocol: crate::plan::Protocol,
    pub tls: crate::exec::tls::HopTls,
    pub timeout: Duration,
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Calls `path` on `addr` over `over.protocol` with `over.headers` (h2c, https, grpcs, ...) with
/// the product's own hop client, trusting what `over.tls` trusts, and renders
/// the report in `view`. A call that gets no report says why as a hop's
/// error would (`certificate for "x" is not trusted: unknown issuer`).
pub async fn call_over(
    addr: &str,
    path: &str,
    view: View,
    over: Over,
) -> Result<Answer, ClientError> {
    let path = request_path(path)?;
    let plan =
        crate::plan::path::parse_path(&path, &crate::plan::Limits::default()).map_err(|e| {
            ClientError::Path {
                path: path.clone(),
                problem: e.to_string(),
            }
        })?;
    call_plan(addr, plan, view, over).await
}

/// Has `addr` run `plan` (from `--plan`, or a parsed path), called as a hop
/// is over `over`'s protocol, and renders the report it answers in `view`.
pub async fn call_plan(
    addr: &str,
    plan: crate::plan::Plan,
    view: View,
    over: Over,
) -> Result<Answer, ClientError> {
    let Over {
        protocol,
        tls,
        timeout,
        headers,
    } = over;
    use std::sync::Arc;
    let authority = authority(addr)?;
    let target = target_of(addr, &authority)?;
    let executor = crate::exec::Executor::for_client(timeout, tls);
    let hop = crate::plan::Hop {
        target,
        protocol,
        headers,
        options: Default::default(),
        next: Arc::new(plan),
    };
    let forward = executor.call_once(&hop, timeout).await;
    let ok = forward.result == crate::report::Outcome::Ok;
    match &forward.response {
        Some(report) => Ok(Answer {
            body: rendered(report, view),
            ok,
            status: forward
                .status
                .map_or_else(|| forward.result.to_string(), |s| s.to_string()),
        }),
        None => Err(ClientError::Unreachable {
            addr: authority,
            cause: forward.error.unwrap_or_else(|| forward.result.to_string()),
        }),
    }
}

/// What `addr` received after `after` (its `GET /requests?after=`),
/// newest first: the JSON as it came, and its entries.
pub async fn requests(
    addr: &str,
    after: u64,
) -> Result<(String, Vec<serde_json::Value>), ClientError> {
    let authority = authority(addr)?;
    let url = format!("http://{authority}/requests?after={after}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| unreachable(&authority, &e))?;
    let (status, body) = exchange(client.get(&url), &authority).await?;
    // A service without --record runs /requests as any path: a report.
    if status == reqwest::StatusCode::NOT_FOUND || body.trim_start().starts_with('{') {
        return Err(ClientError::Unreachable {
            addr: authority,
            cause: "it keeps no requests: start it with --record N".into(),
        });
    }
    let entries = serde_json::from_str(&body).map_err(|e| ClientError::Unreachable {
        addr: authority,
        cause: format!("answered {status}, not a list of requests: {e}"),
    })?;
    Ok((body, entries))
}

/// How a `call --stream` ended: how many reports came, and the status the
/// stream ended with when it was not OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnded {
    pub messages: u32,
    pub failure: Option<String>,
}

/// `servicemock call --stream`: has `addr` run `request` `count` times
/// `interval` apart on one `CallStream`, over gRPC (`grpcs` with `over.tls`),
/// handing each report to `each` as it arrives.
pub async fn call_stream(
    addr: &str,
    request: pb::CallStreamRequest,
    over: Over,
    mut each: impl FnMut(Report),
) -> Result<StreamEnded, ClientError> {
    let authority = authority(addr)?;
    let target = target_of(addr, &authority)?;
    let executor = crate::exec::Executor::for_client(over.timeout, over.tls);
    let channel = executor
        .grpc_channel(&target, over.protocol)
        .map_err(|cause| ClientError::Unreachable {
            addr: authority.clone(),
            cause,
        })?;
    let mut call = tonic::Request::new(request);
    *call.metadata_mut() = crate::exec::metadata_of(&over.headers);
    let ended = |messages, status: tonic::Status| StreamEnded {
        messages,
        failure: Some(format!(
            "{}: {}",
            crate::codes::grpc_code_name(status.code() as i32),
            status.message()
        )),
    };
    let mut stream = match open_stream(channel, call).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::Unavailable && status.details().is_empty() => {
            return Err(ClientError::Unreachable {
                addr: authority,
                cause: status.message().to_owned(),
            })
        }
        Err(status) => return Ok(ended(0, status)),
    };
    let mut messages = 0;
    // When it came: a status that carries the last message's report again
    // (stop_on_failure) is not a report of its own.
    let mut last = String::new();
    loop {
        match stream.message().await {
            Ok(Some(response)) => {
                messages += 1;
                last.clone_from(&response.received_date);
                each(Report::from(response));
            }
            Ok(None) => {
                return Ok(StreamEnded {
                    messages,
                    failure: None,
                })
            }
            Err(status) => {
                // A run that failed (stop_on_failure) carries its report.
                if let Some(report) = decode_status_details(status.details())
                    .filter(|r| messages == 0 || r.received_date != last)
                {
                    each(Report::from(report));
                }
                return Ok(ended(messages, status));
            }
        }
    }
}

/// Opens a `CallStream`, reading its answers with the stream codec (the
/// generated client's refuses a second answer, as a unary call must).
async fn open_stream(
    channel: tonic::transport::Channel,
    request: tonic::Request<pb::CallStreamRequest>,
) -> Result<tonic::Response<tonic::Streaming<pb::CallResponse>>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(crate::exec::failure::error_chain(&e)))?;
    let path = http::uri::PathAndQuery::from_static("/servicemock.v1.MockService/CallStream");
    let codec = crate::wire::GuardedCodec::<pb::CallStreamRequest, pb::CallResponse>::streaming();
    grpc.server_streaming(request, path, codec).await
}

/// Calls `path` on `addr` over gRPC and renders the report in `view`: the
/// response, or the one a failed call carries in its details.
pub async fn call_grpc(addr: &str, path: &str, view: View) -> Result<Answer, ClientError> {
    let authority = authority(addr)?;
    let path = request_path(path)?;
    let mut client =
        pb::mock_service_client::MockServiceClient::connect(format!("http://{authority}"))
            .await
            .map_err(|e| unreachable(&authority, &e))?;
    let request = pb::CallRequest {
        request: Some(pb::call_request::Request::Path(path)),
    };
    Ok(match client.call(request).await {
        Ok(response) => Answer {
            body: rendered(&Report::from(response.into_inner()), view),
            ok: true,
            status: "OK".to_owned(),
        },
        Err(status) => {
            let name = crate::codes::grpc_code_name(status.code() as i32);
            Answer {
                body: decode_status_details(status.details())
                    .map(|r| rendered(&Report::from(r), view))
                    .unwrap_or_default(),
                ok: false,
                status: format!("{name}: {}", status.message()),
            }
        }
    })
}

/// Whether `addr` is healthy within `timeout`, asked over `protocol` with
/// the product's own hop clients (trusting what `tls` trusts): `/health`
/// answers 2xx (http, h2c, https), or `grpc.health.v1` says SERVING
/// (grpc, grpcs).
pub async fn health(
    addr: &str,
    protocol: crate::plan::Protocol,
    tls: crate::exec::tls::HopTls,
    timeout: Duration,
) -> Result<(), ClientError> {
    use std::sync::Arc;
    let authority = authority(addr)?;
    let target = target_of(addr, &authority)?;
    let executor = crate::exec::Executor::for_client(timeout, tls);
    let unhealthy = |cause: String| ClientError::Unreachable {
        addr: authority.clone(),
        cause,
    };
    if protocol.is_grpc() {
        use tonic_health::pb::health_client::HealthClient;
        let channel = executor
            .grpc_channel(&target, protocol)
            .map_err(&unhealthy)?;
        let mut client = HealthClient::new(channel);
        let check = client.check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        });
        let answer = match tokio::time::timeout(timeout, check).await {
            Err(_) => return Err(unhealthy(format!("no answer within {timeout:?}"))),
            // No channel, refused: nothing answered.
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(unhealthy(format!("UNAVAILABLE: {}", status.message())));
            }
            Ok(Err(status)) => {
                let name = crate::codes::grpc_code_name(status.code() as i32);
                return Err(ClientError::Unhealthy {
                    addr: authority.clone(),
                    why: format!("health check answered {name}: {}", status.message()),
                });
            }
            Ok(Ok(answer)) => answer.into_inner(),
        };
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        if answer.status == serving {
            return Ok(());
        }
        return Err(ClientError::Unhealthy {
            addr: authority.clone(),
            why: format!(
                "grpc.health.v1 says {}",
                tonic_health::pb::health_check_response::ServingStatus::try_from(answer.status)
                    .map_or_else(
                        |_| answer.status.to_string(),
                        |s| s.as_str_name().to_owned()
                    )
            ),
        });
    }
    // /health as a target that is no servicemock: judged by status alone.
    let hop = crate::plan::Hop {
        target,
        protocol,
        headers: std::collections::BTreeMap::new(),
        options: crate::plan::HopOptions {
            path: Some("/health".into()),
            expect_any: true,
            ..Default::default()
        },
        next: Arc::new(crate::plan::Plan::leaf("/health")),
    };
    let forward = executor.probe_once(&hop, timeout).await;
    let why = forward.error.unwrap_or_else(|| forward.result.to_string());
    match (forward.result, forward.status) {
        (crate::report::Outcome::Ok, _) => Ok(()),
        // It answered: reachable, and not healthy.
        (_, Some(_)) => Err(ClientError::Unhealthy {
            addr: authority,
            why: why.trim_start_matches("answered ").to_owned(),
        }),
        (_, None) => Err(unhealthy(why)),
    }
}

/// The hop target an address names.
fn target_of(addr: &str, authority: &str) -> Result<crate::plan::Target, ClientError> {
    crate::plan::path::parse_target_text(authority).map_err(|problem| ClientError::Address {
        addr: addr.to_owned(),
        problem,
    })
}

/// What `servicemock control` asks of a service's `/control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    /// Show the state.
    Show,
    /// Change these keys (`status=503`, `ready=false`, `delay=` clears).
    Change(Vec<(String, String)>),
    /// Back to the flags' defaults, ready and live.
    Reset,
}

/// Sends `request` to `addr`'s `/control` and returns the state it answers
/// with (JSON), or what went wrong.
pub async fn control(addr: &str, request: &ControlRequest) -> Result<String, ClientError> {
    let authority = authority(addr)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| unreachable(&authority, &e))?;
    let url = format!("http://{authority}/control");
    let builder = match request {
        ControlRequest::Show => client.get(&url),
        ControlRequest::Reset => client.delete(&url),
        ControlRequest::Change(pairs) => {
            let body: serde_json::Map<String, serde_json::Value> = pairs
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect();
            client
                .put(&url)
                .header("content-type", "application/json")
                .body(serde_json::Value::Object(body).to_string())
        }
    };
    let (status, body) = exchange(builder, &authority).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(ClientError::Refused {
            addr: authority,
            status: status.to_string(),
            said: body.trim_end().to_owned(),
        })
    }
}

/// Sends a request and reads its status and body as text.
async fn exchange(
    request: reqwest::RequestBuilder,
    authority: &str,
) -> Result<(reqwest::StatusCode, String), ClientError> {
    let response = request
        .send()
        .await
        .map_err(|e| unreachable(authority, &e))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| unreachable(authority, &e))?;
    Ok((status, body))
}

/// A report in a view, as the text printed.
fn rendered(report: &Report, view: View) -> String {
    String::from_utf8_lossy(&crate::report::render(report, view)).into_owned()
}

fn unreachable(addr: &str, error: &(dyn std::error::Error + 'static)) -> ClientError {
    ClientError::Unreachable {
        addr: addr.to_owned(),
        cause: crate::exec::failure::error_chain(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_people_write_them() {
        for (typed, meant) in [
            ("localhost:8080", "localhost:8080"),
            ("http://localhost:8080", "localhost:8080"),
            ("http://localhost:8080/", "localhost:8080"),
            ("grpc://svc:9000", "svc:9000"),
            ("localhost", "localhost:8080"),
            ("[::1]:81", "[::1]:81"),
            ("[::1]", "[::1]:8080"),
        ] {
            assert_eq!(authority(typed).unwrap(), meant, "{typed}");
        }
        for bad in [
            "",
            "https://x:1",
            "localhost:8080/@a/end",
            "x:port",
            "user@host:1",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_get_their_slash_and_never_become_hosts() {
        assert_eq!(request_path("@service2/end").unwrap(), "/@service2/end");
        assert_eq!(request_path("/@a|b/x").unwrap(), "/@a|b/x");
        assert_eq!(request_path("").unwrap(), "/");
        assert_eq!(request_path("localhost:8080/@a/end").unwrap(), "/@a/end");
        assert_eq!(
            request_path("http://localhost:8080/@a/end?q=1").unwrap(),
            "/@a/end?q=1"
        );
        assert!(request_path("service2").is_err());
    }
}
