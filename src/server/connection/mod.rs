//! The connection seam: a listener accepts and bounds a connection, the
//! connection's own task identifies what it speaks, and hands it to that
//! protocol. servicemock runs beside real workloads and may be called by
//! anything, so no connection is held forever.
//!
//! * Accept ([`accept_until`]): at most `--max-connections` at once; past it
//!   a new connection is closed at once. The soft `RLIMIT_NOFILE` is raised
//!   to the hard limit at start so the cap, not the descriptor table, decides.
//! * Identify ([`Identified`]): with TLS configured, the first byte tells a
//!   ClientHello (0x16) from plaintext; it is peeked inside the
//!   connection's task under the head timeout, never in the accept loop, so
//!   a silent client holds nobody else up. A TLS connection is handshaken
//!   (`tls.rs`), bounded by the same allowance, and what the handshake
//!   showed (version, cipher, ALPN, SNI, the verified client certificate)
//!   travels with every request of the connection as a [`Connection`]
//!   extension.
//! * Bound ([`guard::GuardedIo`], generic over the stream): request heads
//!   within `--header-read-timeout`, idleness within `--idle-timeout` (5
//!   minutes: long enough for Envoy's pools not to race a close on every
//!   request), and an upgraded connection only the idle timeout.
//! * Serve: hyper-util's auto builder (HTTP/1.1, and HTTP/2 by preface or by
//!   ALPN `h2`), upgrades allowed, watched for a graceful shutdown.
//!
//! A new protocol is a new arm of [`Identified`] (or a listener of its own,
//! as raw TCP lines are: [`Speaks::lines`], served by `server/tcp.rs`, TLS
//! by the same first-byte rule) and a function that serves it. Every
//! listener of a service counts against the one `--max-connections`.

mod guard;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::caller::TlsSession;
use crate::config::ConnectionLimits;
use crate::metrics::Metrics;
use guard::GuardedIo;
use tls::TlsServer;

/// Raises the soft limit on open files to the hard limit, and returns the
/// limit in force (so the connection cap can keep headroom under it).
pub(super) fn raise_open_files_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// The connection cap in force: `--max-connections`, lowered to leave a
/// quarter of the descriptors (at least 64) for hops, channels and logs.
pub(super) fn effective_cap(asked: usize, open_files: Option<u64>) -> usize {
    match open_files {
        Some(limit) => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let headroom = (limit / 4).max(64);
            asked.min(limit.saturating_sub(headroom)).max(1)
        }
        None => asked.max(1),
    }
}

/// What a listener serves: plaintext, TLS beside it, or TLS only; HTTP,
/// or raw TCP lines.
#[derive(Clone, Default)]
pub struct Speaks {
    /// TLS for connections that open with a ClientHello.
    pub tls: Option<Arc<TlsServer>>,
    /// Refuse connections that do not (`--tls-only`, `--tls-listen`).
    pub tls_only: bool,
    /// Raw TCP lines instead of HTTP (`--tcp-listen`).
    pub lines: Option<TcpLines>,
}

/// A raw TCP port's own settings.
#[derive(Clone, Debug, Default)]
pub struct TcpLines {
    /// Written first on every connection (`--tcp-banner`): a server-first
    /// protocol. Never with TLS (the server would speak before it knows).
    pub banner: Option<Arc<str>>,
}

/// The connection slots every listener of one service shares
/// (`--max-connections`, kept under the descriptor limit).
#[derive(Clone)]
pub(super) struct Slots {
    semaphore: Arc<Semaphore>,
    cap: usize,
}

impl Slots {
    pub(super) fn new(limits: &ConnectionLimits) -> Slots {
        let cap = effective_cap(limits.max_connections, raise_open_files_limit());
        Slots {
            semaphore: Arc::new(Semaphore::new(cap)),
            cap,
        }
    }
}

/// What the connection a request came on showed before its first request:
/// the TLS session, when there was one. Every request of a TLS connection
/// carries it as an extension.
#[derive(Debug, Clone)]
pub struct Connection {
    pub tls: Arc<TlsSession>,
}

/// What a connection turned out to speak, from its first byte.
enum Identified {
    Plain(TcpStream),
    Tls(
        Box<tokio_rustls::server::TlsStream<TcpStream>>,
        Arc<TlsSession>,
    ),
}

/// Everything the connections of one listener share.
struct Shared {
    builder: Builder<TokioExecutor>,
    app: super::front::Front,
    limits: ConnectionLimits,
    speaks: Speaks,
}

impl Shared {
    fn metrics(&self) -> &Metrics {
        &self.app.service().metrics
    }
}

/// Accepts connections until `stop` resolves, then lets the open ones
/// finish what they are doing (HTTP/1.1 after the response in flight, HTTP/2
/// with GOAWAY). Returns once every connection has closed.
pub(super) async fn accept_until(
    listener: TcpListener,
    app: super::front::Front,
    speaks: Speaks,
    slots: Slots,
    stop: impl std::future::Future<Output = ()>,
) {
    let limits = app.service().executor.settings().connections;
    let Slots {
        semaphore: slots,
        cap,
    } = slots;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // GuardedIo times request heads; hyper's own timer would also
        // close every idle keep-alive connection after it.
        .header_read_timeout(None);
    // Extended CONNECT (RFC 8441): WebSocket over HTTP/2.
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let shared = Arc::new(Shared {
        builder,
        app,
        limits,
        speaks,
    });
    let (stopping, stopped) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(cap, "connection refused: --max-connections reached");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let gauge = shared.metrics().connections().clone();
            gauge.inc();
            let arrived = Instant::now();
            let lines = shared.speaks.lines.as_ref().map(|lines| super::tcp::Lines {
                service: shared.app.service(),
                limits: shared.limits,
                session: None,
                banner: lines.banner.as_deref(),
            });
            // The task is as large as its largest branch for the whole life
            // of every connection: the plaintext HTTP one is kept in it, the
            // others (a TLS stream's state, a lines loop) boxed.
            match (identify(tcp, &shared, arrived).await, lines) {
                (Some(Identified::Plain(tcp)), None) => {
                    serve_http(tcp, None, &shared, stopped, arrived).await;
                }
                (Some(Identified::Tls(tls, session)), None) => {
                    Box::pin(serve_http(*tls, Some(session), &shared, stopped, arrived)).await;
                }
                (Some(Identified::Plain(tcp)), Some(lines)) => {
                    Box::pin(lines.serve(tcp, stopped, arrived)).await;
                }
                (Some(Identified::Tls(tls, session)), Some(mut lines)) => {
                    lines.session = Some(session);
                    Box::pin(lines.serve(*tls, stopped, arrived)).await;
                }
                (None, _) => {}
            }
            gauge.dec();
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a slot until it ends (the slots are shared by
    // every listener of the service: each waits until all are back).
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    drop(slots.acquire_many(all).await);
}

/// Reads what a connection speaks from its first byte, within the head
/// timeout counted from its arrival. Plaintext-only listeners peek at
/// nothing.
async fn identify(tcp: TcpStream, shared: &Shared, arrived: Instant) -> Option<Identified> {
    let Some(tls) = &shared.speaks.tls else {
        return Some(Identified::Plain(tcp));
    };
    let deadline = arrived + shared.limits.header_read_timeout;
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) if first[0] == tls::CLIENT_HELLO => {
            match tokio::time::timeout_at(deadline, tls.accept(tcp)).await {
                Ok(Ok((stream, session))) => Some(Identified::Tls(Box::new(stream), session)),
                Ok(Err(e)) => {
                    tls.handshake_failed(&e, shared.metrics());
                    None
                }
                Err(_) => {
                    tls.handshake_timed_out(shared.metrics());
                    None
                }
            }
        }
        Ok(Ok(1)) if shared.speaks.tls_only => {
            refuse_plaintext(tcp, shared.speaks.lines.is_some()).await;
            None
        }
        Ok(Ok(1)) => Some(Identified::Plain(tcp)),
        // Closed before a byte, an error, or silent past the head timeout.
        _ => None,
    }
}

/// Tells a plaintext client of a TLS-only port what to do, then closes.
/// (A TCP-lines port is TLS-only only with `--tls-only`, and gets the same
/// words as a line.)
async fn refuse_plaintext(mut tcp: TcpStream, lines: bool) {
    use tokio::io::AsyncWriteExt as _;
    const WHY: &str = "this port speaks TLS only: call it with https:// (or grpcs)\n";
    let answer = if lines {
        "error: this TCP port speaks TLS only: connect with TLS (openssl s_client, socat OPENSSL:)\n"
            .to_owned()
    } else {
        format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{WHY}",
            WHY.len()
        )
    };
    tracing::debug!("plaintext connection to a TLS-only port closed");
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(answer.as_bytes())).await;
    let _ = tcp.shutdown().await;
}

/// Serves HTTP/1.1 and HTTP/2 on an identified connection, guarded, with
/// the connection's TLS session on every request; once `stopped` turns
/// true the connection is asked to finish (GOAWAY, or close after the
/// answer in flight).
async fn serve_http<S>(
    stream: S,
    session: Option<Arc<TlsSession>>,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
    arrived: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let frames = session.as_ref().is_some_and(|s| s.tls.alpn == "h2");
    let io = TokioIo::new(GuardedIo::new(stream, shared.limits, arrived, frames));
    let front = shared.app.on(session.map(|tls| Connection { tls }));
    let service = TowerToHyperService::new(front);
    let connection = shared.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopped.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection upgraded by a `101` keeps exchanging bytes for longer
    /// than the head timeout: after the switch its bytes are never request
    /// heads (only the idle timeout applies). The handler answers `101`
    /// and echoes, as the WebSocket one will.
    #[tokio::test]
    async fn an_upgraded_connection_outlives_the_head_timeout() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(5),
            max_connections: 8,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let io = TokioIo::new(GuardedIo::new(tcp, limits, Instant::now(), false));
            let echo = hyper::service::service_fn(
                |mut request: hyper::Request<hyper::body::Incoming>| async move {
                    tokio::spawn(async move {
                        let upgraded = hyper::upgrade::on(&mut request).await.unwrap();
                        let mut upgraded = TokioIo::new(upgraded);
                        let mut buf = [0u8; 64];
                        while let Ok(n @ 1..) = upgraded.read(&mut buf).await {
                            upgraded.write_all(&buf[..n]).await.unwrap();
                        }
                    });
                    let answer = hyper::Response::builder()
                        .status(101)
                        .header("connection", "upgrade")
                        .header("upgrade", "echo")
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(answer)
                },
            );
            let builder = Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection_with_upgrades(io, echo).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(
                b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = vec![0u8; 256];
        let n = client.read(&mut head).await.unwrap();
        assert!(
            head[..n].starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head[..n])
        );
        // Ten exchanges 100 ms apart: five head timeouts' worth.
        for i in 0..10u8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let message = [b'a' + i; 3];
            client.write_all(&message).await.unwrap();
            let mut echoed = [0u8; 3];
            client
                .read_exact(&mut echoed)
                .await
                .unwrap_or_else(|e| panic!("cut at exchange {i}: {e}"));
            assert_eq!(echoed, message);
        }
    }

    #[test]
    fn the_cap_keeps_headroom_under_the_descriptor_limit() {
        assert_eq!(effective_cap(10_000, Some(1024)), 768);
        assert_eq!(effective_cap(10_000, Some(1_048_576)), 10_000);
        assert_eq!(effective_cap(100, Some(1024)), 100);
        assert_eq!(effective_cap(10_000, Some(50)), 1);
        assert_eq!(effective_cap(500, None), 500);
    }
}
