//! TCP hops (`tcp:`, default port 9000): one line each way. The caller
//! sends the rendered sub-path, a tab, and the hop's headers as compact
//! JSON (depth, deadline budget, request id, call id, trace headers,
//! directives: everything an HTTP hop carries); the callee answers its
//! verdict as an HTTP status, a tab, and its report as compact JSON
//! (`server/tcp.rs`). A new connection per call, as a TCP client makes
//! and as an Envoy TCP split decides; `[:reuse=true]` keeps connections
//! in a bounded pool. The answer is bounded by what is left of
//! `--max-report-size`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::super::judge::{self, Carrier};
use super::super::resolve::Resolved;
use super::super::{HopResult, Outgoing};
use super::failure::ConnectTimedOut;
use super::lookup::LookupError;
use super::{HopFuture, HopUrl, Transport};
use crate::plan::path::render_path;
use crate::plan::Hop;
use crate::report::{Outcome, Received};

/// Idle connections kept per address with `[:reuse=true]`.
const MAX_IDLE_PER_ADDRESS: usize = 16;
/// Addresses whose connections are kept.
const MAX_POOLED_ADDRESSES: usize = 256;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `tcp:` transport.
#[derive(Debug, Default)]
pub(super) struct TcpTransport {
    idle: Arc<Mutex<HashMap<String, Vec<TcpStream>>>>,
}

/// The headers of a hop as the JSON object its line carries (repeated
/// names joined with `, `, as HTTP folds them).
fn headers_json(headers: &HeaderMap) -> String {
    let mut object: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        object
            .entry(name.as_str())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    serde_json::to_string(&object).unwrap_or_else(|_| "{}".into())
}

impl TcpTransport {
    fn pooled(&self, to: &Resolved) -> Option<TcpStream> {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(to.connect())
            .and_then(Vec::pop)
    }

    fn keep(&self, to: &Resolved, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_POOLED_ADDRESSES && !idle.contains_key(to.connect()) {
            return;
        }
        let kept = idle.entry(to.connect().to_owned()).or_default();
        if kept.len() < MAX_IDLE_PER_ADDRESS {
            kept.push(stream);
        }
    }
}

/// Opens a connection to `to` within `connect`.
async fn open(to: &Resolved, connect: Duration) -> Result<TcpStream, BoxError> {
    let addrs: Vec<_> = tokio::net::lookup_host(to.connect())
        .await
        .map_err(|source| LookupError {
            host: to.host().to_owned(),
            source,
        })?
        .collect();
    let mut last: Option<BoxError> = None;
    for addr in addrs {
        match tokio::time::timeout(connect, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(Box::new(e)),
            Err(_) => last = Some(Box::new(ConnectTimedOut)),
        }
    }
    Err(last.unwrap_or_else(|| "the name resolved to no address".into()))
}

/// Sends `line` (its end included) and reads one line back, at most
/// `limit` bytes; the stream is handed back for a pool.
async fn send_line(
    mut stream: TcpStream,
    line: &[u8],
    limit: u64,
) -> Result<(Answer, TcpStream), BoxError> {
    stream.write_all(line).await?;
    let mut reader = BufReader::new(stream);
    let mut answer = Vec::new();
    let read = (&mut reader)
        .take(limit)
        .read_until(b'\n', &mut answer)
        .await?;
    if read == 0 || answer.last() != Some(&b'\n') {
        if answer.len() as u64 >= limit {
            return Ok((Answer::TooLong, reader.into_inner()));
        }
        return Err(Box::new(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed before the answer line",
        )));
    }
    answer.pop();
    if answer.last() == Some(&b'\r') {
        answer.pop();
    }
    Ok((Answer::Line(answer), reader.into_inner()))
}

/// What came back on the line.
enum Answer {
    Line(Vec<u8>),
    /// More than `room` bytes without a line end.
    TooLong,
}

impl Transport for TcpTransport {
    fn url(&self, to: &Resolved, hop: &Hop) -> HopUrl {
        // Checked when the plan was read: a tcp hop's sub-plan is a path.
        let path = render_path(&hop.next).unwrap_or_else(|_| "/".into());
        HopUrl::with_path("tcp", &to.authority, &path)
    }

    fn call<'a>(&'a self, out: Outgoing<'a>, hop: &'a Hop) -> HopFuture<'a> {
        Box::pin(async move {
            let Outgoing {
                to,
                url,
                headers,
                timer,
                room,
                options,
            } = out;
            let connect = options.connect.unwrap_or(super::http::CONNECT_TIMEOUT);
            let path = url.path().unwrap_or("/");
            let mut line = Vec::with_capacity(path.len() + 256);
            line.extend_from_slice(path.as_bytes());
            line.push(b'\t');
            line.extend_from_slice(headers_json(&headers).as_bytes());
            line.push(b'\n');
            let exchange = async {
                let reused = if hop.options.reuse {
                    self.pooled(to)
                } else {
                    None
                };
                let stream = match reused {
                    Some(stream) => stream,
                    None => open(to, connect).await?,
                };
                let limit = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(16);
                let (answer, stream) = send_line(stream, &line, limit).await?;
                if hop.options.reuse && matches!(answer, Answer::Line(_)) {
                    self.keep(to, stream);
                }
                Ok::<_, BoxError>(answer)
            };
            match tokio::time::timeout(timer, exchange).await {
                Err(elapsed) => HopResult::transport(&elapsed, to, timer, connect),
                Ok(Err(e)) => HopResult::transport(&*e, to, timer, connect),
                Ok(Ok(Answer::TooLong)) => HopResult::failed(
                    Outcome::BadAnswer,
                    format!("answered with more than the {room} bytes left for this request's reports (--max-report-size): cut"),
                ),
                Ok(Ok(Answer::Line(line))) => {
                    let bytes = line.len();
                    judge_line(line).with_bytes(bytes)
                }
            }
        })
    }
}

/// Turns an answer line (`STATUS<tab>REPORT`) into a hop result.
fn judge_line(line: Vec<u8>) -> HopResult {
    let split = line.iter().position(|b| *b == b'\t');
    let status = split
        .and_then(|at| std::str::from_utf8(&line[..at]).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok());
    let (Some(at), Some(status)) = (split, status) else {
        let quote = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
        return HopResult::failed(
            Outcome::BadAnswer,
            format!(
                "answered a line that is not a servicemock report: \"{}\"",
                crate::report::text::sanitize(&quote)
            ),
        );
    };
    let code = i32::from(status.as_u16());
    let body = Bytes::from(line).slice(at + 1..);
    judge::judge(judge::Answer {
        code,
        success: status.is_success(),
        out_of_time: false,
        said: &status.as_u16(),
        report: Received::read(body.clone()),
        carrier: Carrier::Line { text: &body },
    })
}

impl super::super::Executor {
    /// Sends `line` to a TCP port to be echoed, once, as `servicemock load
    /// --protocol tcp TARGET LINE` does: who answered is read from the
    /// echo's prefix (`service version host: line`) into a report of those
    /// three, so the tally counts versions as it does for plans.
    pub async fn echo_once(
        &self,
        hop: &Hop,
        line: &str,
        timeout: Duration,
    ) -> crate::report::Forward {
        let started = tokio::time::Instant::now();
        let port = Some(hop.target.port.unwrap_or(crate::plan::DEFAULT_TCP_PORT));
        let target = crate::plan::Target::new(hop.target.host.clone(), port);
        let to = self.inner.resolver.resolve(&target);
        let connect = hop.options.connect.unwrap_or(super::http::CONNECT_TIMEOUT);
        let exchange = async {
            let stream = open(&to, connect).await?;
            send_line(stream, format!("{line}\n").as_bytes(), 64 * 1024).await
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Err(elapsed) => HopResult::transport(&elapsed, &to, timeout, connect),
            Ok(Err(e)) => HopResult::transport(&*e, &to, timeout, connect),
            Ok(Ok((Answer::TooLong, _))) => {
                HopResult::failed(Outcome::BadAnswer, "an echo longer than 64 KiB".into())
            }
            Ok(Ok((Answer::Line(answer), _))) => echoed(&String::from_utf8_lossy(&answer), line),
        };
        crate::report::Forward {
            url: format!("tcp://{}", to.authority),
            result: result.outcome,
            protocol: crate::plan::Protocol::Tcp,
            status: result.status,
            duration_ms: super::super::millis(started.elapsed()),
            error: result.error,
            response: result.response,
            ..Default::default()
        }
    }
}

/// Who answered an echo of `sent`, from its prefix.
fn echoed(answer: &str, sent: &str) -> HopResult {
    let prefix = answer.strip_suffix(sent).and_then(|p| p.strip_suffix(": "));
    let who: Vec<&str> = prefix.map(|p| p.split(' ').collect()).unwrap_or_default();
    match who.as_slice() {
        [service, version, host] => HopResult::echoed(Received::from(crate::report::Report {
            service: (*service).into(),
            version: (*version).into(),
            host: (*host).into(),
            protocol: crate::report::InboundProtocol::Tcp,
            attempt: 1,
            ..Default::default()
        })),
        _ => HopResult::failed(
            Outcome::BadAnswer,
            format!(
                "answered \"{}\", not an echo of the line prefixed by who answered",
                crate::report::text::sanitize(answer)
            ),
        ),
    }
}
