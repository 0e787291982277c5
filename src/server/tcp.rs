//! The raw TCP port (`--tcp-listen`): a connection is a series of lines.
//!
//! * A line that starts with `/` is a request target: it runs through the
//!   same pipeline as HTTP and gRPC (admit → check → run → verdict) and is
//!   answered with the report as one line of compact JSON (`?view=tree`:
//!   the text tree, ended by an empty line; `?view=flat`: the rows as one
//!   JSON line). A line from another servicemock's `tcp:` hop carries its
//!   headers after a tab, as a JSON object, and is answered
//!   `STATUS<tab>REPORT` (the verdict as an HTTP status).
//! * Any other line is echoed prefixed by who answered: `service2 v2
//!   pod-7d9f: hello`, what Istio's tcp-echo task checks.
//!
//! Bounds: a line of at most [`MAX_LINE`] bytes (past it one error line,
//! then the connection is closed); a line begun must end within
//! `--header-read-timeout`; between lines a connection may idle for
//! `--idle-timeout`. A line that is not UTF-8 or holds a control character
//! gets an error line naming the byte. When the client half-closes, the
//! pending line is answered and the connection closed. `x-mock-reset` (or
//! `--reset-rate`) closes the connection with a RST.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::pipeline::{self, Refused};
use super::Service;
use crate::caller::TlsSession;
use crate::config::ConnectionLimits;
use crate::report::{InboundProtocol, View};

/// Longest line read (the line end excluded).
pub(super) const MAX_LINE: usize = 64 * 1024;

/// A stream whose connection can be closed with a RST (`x-mock-reset`).
pub(super) trait Resettable {
    /// Makes the next close a RST instead of a FIN.
    fn reset_on_close(&self);
}

impl Resettable for tokio::net::TcpStream {
    fn reset_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

impl Resettable for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn reset_on_close(&self) {
        self.get_ref().0.reset_on_close();
    }
}

/// What a TCP connection is served with.
pub(super) struct Lines<'a> {
    pub(super) service: &'a Arc<Service>,
    pub(super) limits: ConnectionLimits,
    pub(super) session: Option<Arc<TlsSession>>,
    /// Written first on every connection (`--tcp-banner`).
    pub(super) banner: Option<&'a str>,
}

/// What to do after a line was answered.
enum Next {
    Continue,
    Close,
    Reset,
}

impl Lines<'_> {
    /// Serves lines on `stream` until the client closes, a bound is
    /// passed, or `stopped` turns true (the line in hand is answered
    /// first).
    pub(super) async fn serve<S>(
        &self,
        mut stream: S,
        mut stopped: watch::Receiver<bool>,
        arrived: Instant,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + Resettable,
    {
        if let Some(banner) = self.banner {
            let line = format!("{banner}\n");
            if stream.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        let mut pending: Vec<u8> = Vec::new();
        // When the line in `pending` began (its first byte came).
        let mut begun: Option<Instant> = None;
        let mut chunk = vec![0u8; 8192];
        let _ = arrived;
        loop {
            while let Some(end) = memchr::memchr(b'\n', &pending) {
                let mut line: Vec<u8> = pending.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                begun = (!pending.is_empty()).then(Instant::now);
                match self.answer(&line, &mut stream).await {
                    Next::Continue => {}
                    Next::Close => return close(stream).await,
                    Next::Reset => {
                        stream.reset_on_close();
                        return;
                    }
                }
                if *stopped.borrow() {
                    return close(stream).await;
                }
            }
            if pending.len() > MAX_LINE {
                let why =
                    format!("error: line longer than {MAX_LINE} bytes: closing the connection\n");
                let _ = stream.write_all(why.as_bytes()).await;
                return close(stream).await;
            }
            let wait = match begun {
                Some(at) => {
                    (at + self.limits.header_read_timeout).saturating_duration_since(Instant::now())
                }
                None => self.limits.idle_timeout,
            };
            let stopping = async { stopped.wait_for(|stop| *stop).await.is_ok() };
            let read = tokio::select! {
                read = tokio::time::timeout(wait, stream.read(&mut chunk)) => Some(read),
                true = stopping, if pending.is_empty() => None,
            };
            let Some(read) = read else {
                return close(stream).await;
            };
            match read {
                Err(_) => {
                    let why = if begun.is_some() {
                        "error: the line did not end within --header-read-timeout: closing the connection\n"
                    } else {
                        "error: idle past --idle-timeout: closing the connection\n"
                    };
                    let _ = stream.write_all(why.as_bytes()).await;
                    return close(stream).await;
                }
                Ok(Ok(0)) | Ok(Err(_)) => {
                    // Half-closed: the pending line is answered, then we close.
                    if !pending.is_empty() {
                        let line = std::mem::take(&mut pending);
                        if let Next::Reset = self.answer(&line, &mut stream).await {
                            stream.reset_on_close();
                            return;
                        }
                    }
                    return close(stream).await;
                }
                Ok(Ok(n)) => {
                    if pending.is_empty() {
                        begun = Some(Instant::now());
                    }
                    pending.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// Answers one line (its end taken off).
    async fn answer<S>(&self, line: &[u8], stream: &mut S) -> Next
    where
        S: AsyncWrite + Unpin,
    {
        let text = match checked(line) {
            Ok(text) => text,
            Err(why) => {
                let _ = stream.write_all(format!("error: {why}\n").as_bytes()).await;
                return Next::Continue;
            }
        };
        let (out, next) = if text.starts_with('/') {
            self.run(text).await
        } else {
            let identity = &self.service.identity;
            let echo = format!(
                "{} {} {}: {text}\n",
                identity.service, identity.version, identity.host
            );
            (echo, Next::Continue)
        };
        if stream.write_all(out.as_bytes()).await.is_err() {
            return Next::Close;
        }
        next
    }

    /// Runs a request line: `PATH` from a person, `PATH<tab>HEADERS` from
    /// a servicemock's `tcp:` hop.
    async fn run(&self, text: &str) -> (String, Next) {
        let service = self.service;
        let (target, headers, from_hop) = match text.split_once('\t') {
            None => (text, HeaderMap::new(), false),
            Some((target, json)) => match headers_from_json(json) {
                Ok(headers) => (target, headers, true),
                Err(why) => return (format!("400\t{why}\n"), Next::Continue),
            },
        };
        let refuse = |status: u16, message: String| {
            if from_hop {
                format!("{status}\t{message}\n")
            } else {
                format!("error: {message}\n")
            }
        };
        let (target, view) = if from_hop {
            (std::borrow::Cow::Borrowed(target), View::Json)
        } else {
            match super::http::choose_view(target, &headers) {
                Ok(chosen) => chosen,
                Err(unknown) => {
                    let why = format!(
                        "unknown view \"{unknown}\": write view=json, view=tree or view=flat"
                    );
                    return (refuse(400, why), Next::Continue);
                }
            }
        };
        let request_line = format!("TCP {target}");
        let told = crate::exec::context::Told::of(&headers);
        let (tls, peer) = crate::caller::of_request(self.session.as_deref(), told.forwarded);
        let caller = || peer.as_ref().map(|p| p.principal.clone());
        let Ok(attempt) = super::front::attempt_or_reset(service, &told, &request_line, caller)
        else {
            return (String::new(), Next::Reset);
        };
        let asked = pipeline::Target {
            target: &target,
            headers,
            tls,
            peer,
            attempt,
            protocol: InboundProtocol::Tcp,
            request_line,
        };
        let (mut report, verdict, admission) = match pipeline::run_target(service, asked).await {
            Ok(done) => done,
            Err(refused) => return (refusal(refused, &refuse), Next::Continue),
        };
        let status = verdict.http_status(&admission);
        let out = if from_hop {
            let json = crate::report::write::compact_string(&report);
            format!("{status}\t{json}\n")
        } else {
            let mut out = crate::report::render_line(&mut report, view);
            // A tree is ended by an empty line.
            if view == View::Tree {
                out.push('\n');
            }
            out
        };
        (out, Next::Continue)
    }
}

/// A refused request line: the 400's message, or the report of a request
/// past the depth limit with 508.
fn refusal(refused: Refused, refuse: &dyn Fn(u16, String) -> String) -> String {
    let status = refused.http_status();
    match refused {
        Refused::BadRequest { message, .. } => refuse(status, message),
        Refused::TooDeep(report) => refuse(status, crate::report::write::compact_string(&report)),
    }
}

/// The line as text: UTF-8 without control characters (a tab separates a
/// hop's headers), or why not, naming the byte.
fn checked(line: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("the line is not UTF-8 at byte {}", e.valid_up_to() + 1))?;
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\t')
    {
        return Err(format!(
            "control character {c:?} at byte {} of the line",
            at + 1
        ));
    }
    Ok(text)
}

/// A hop's headers from the JSON object its line carries.
fn headers_from_json(json: &str) -> Result<HeaderMap, String> {
    let object: std::collections::BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|e| format!("the headers after the tab are not a JSON object of strings: {e}"))?;
    let mut headers = HeaderMap::with_capacity(object.len());
    for (name, value) in object {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("\"{name}\" is not a header name"))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("the value of {name} is not a header value"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Ends our side of the connection.
async fn close<S: AsyncWrite + Unpin>(mut stream: S) {
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_are_no_text_are_named_by_byte() {
        assert_eq!(checked(b"hello"), Ok("hello"));
        assert_eq!(
            checked(b"ab\xffc").unwrap_err(),
            "the line is not UTF-8 at byte 3"
        );
        assert_eq!(
            checked(b"a\x1bb").unwrap_err(),
            "control character '\\u{1b}' at byte 2 of the line"
        );
        assert!(checked(b"/@a\t{}").is_ok());
    }

    #[test]
    fn a_hops_headers_come_as_a_json_object() {
        let headers =
            headers_from_json(r#"{"x-servicemock-depth":"1","x-mock-delay":"5ms"}"#).unwrap();
        assert_eq!(headers["x-mock-delay"], "5ms");
        assert!(headers_from_json("[1]").is_err());
        assert!(headers_from_json(r#"{"bad name":"1"}"#).is_err());
    }
}
