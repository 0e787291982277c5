//! The accept loop, and what it bounds per connection: servicemock runs
//! beside real workloads and may be called by anything, so no connection is
//! held forever.
//!
//! * A request head must arrive within `--header-read-timeout` of its first
//!   byte (slowloris), and a new connection must send its first one within
//!   that time too (silent connections); counted by [`GuardedIo`] so that an
//!   idle keep-alive connection, which has been answered, is not mistaken
//!   for a slow one.
//! * A connection with no bytes either way for `--idle-timeout` is closed
//!   (long enough for Envoy's pools, whose idle timeout is an hour by
//!   default, not to race a close on every request: 5 minutes).
//! * At most `--max-connections` are served at once; past it a new
//!   connection is closed at once. The soft `RLIMIT_NOFILE` is raised to the
//!   hard limit at start so the cap, not the descriptor table, decides.
//!
//! Every connection is served by hyper-util's auto builder (HTTP/1.1 and
//! h2c by preface) and watched for a graceful shutdown.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::config::ConnectionLimits;

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

/// Accepts connections until `stop` resolves, then lets the open ones
/// finish what they are doing (HTTP/1.1 after the response in flight, HTTP/2
/// with GOAWAY). Returns once every connection has closed.
pub(super) async fn accept_until(
    listener: TcpListener,
    app: super::front::Front,
    limits: ConnectionLimits,
    gauge: prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>,
    stop: impl std::future::Future<Output = ()>,
) {
    let cap = effective_cap(limits.max_connections, raise_open_files_limit());
    let slots = Arc::new(Semaphore::new(cap));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // GuardedIo times request heads; hyper's own timer would also
        // close every idle keep-alive connection after it.
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
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
        let io = TokioIo::new(GuardedIo::new(tcp, limits));
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let watched = graceful.watch(connection);
        let gauge = gauge.clone();
        tokio::spawn(async move {
            gauge.inc();
            let _ = watched.await;
            gauge.dec();
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Where a connection is in its request cycle, as far as bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle,
    /// A request head has begun and not ended.
    Head,
    /// Past the head (a body, an answer being made, or HTTP/2 frames).
    Busy,
}

/// A TCP stream that times request heads and idleness (see the module docs).
pub(super) struct GuardedIo {
    inner: TcpStream,
    limits: ConnectionLimits,
    phase: Phase,
    /// HTTP/2 (prior knowledge): frames, never request heads.
    h2: bool,
    /// The last bytes of the head so far, to find its end across reads.
    tail: [u8; 3],
    timer: Pin<Box<Sleep>>,
}

impl GuardedIo {
    fn new(inner: TcpStream, limits: ConnectionLimits) -> GuardedIo {
        GuardedIo {
            inner,
            limits,
            phase: Phase::Idle,
            h2: false,
            tail: [0; 3],
            // A new connection owes its first request head within the
            // header timeout: silent connections are not idle keep-alives.
            timer: Box::pin(tokio::time::sleep(limits.header_read_timeout)),
        }
    }

    fn arm(&mut self, after: Duration) {
        self.timer.as_mut().reset(Instant::now() + after);
    }

    /// Moves the phase on for `bytes` just read.
    fn saw(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Idle && !self.h2 {
            self.phase = Phase::Head;
            self.tail = [0; 3];
            if bytes.starts_with(b"PRI * HTTP/2.0") {
                self.h2 = true;
                self.phase = Phase::Busy;
            }
        }
        if self.phase == Phase::Head {
            // The end of the head may straddle two reads.
            let mut edge = [0u8; 6];
            edge[..3].copy_from_slice(&self.tail);
            let k = bytes.len().min(3);
            edge[3..3 + k].copy_from_slice(&bytes[..k]);
            let ended = edge[..3 + k].windows(4).any(|w| w == b"\r\n\r\n")
                || bytes.windows(4).any(|w| w == b"\r\n\r\n");
            if !ended {
                if bytes.len() >= 3 {
                    self.tail.copy_from_slice(&bytes[bytes.len() - 3..]);
                } else {
                    let len = bytes.len();
                    let mut joined = [0u8; 6];
                    joined[..3].copy_from_slice(&self.tail);
                    joined[3..3 + len].copy_from_slice(bytes);
                    self.tail.copy_from_slice(&joined[len..len + 3]);
                }
                return;
            }
            self.phase = Phase::Busy;
        }
        let idle = self.limits.idle_timeout;
        self.arm(idle);
    }

    /// Notes an answer going out: HTTP/1.1 then waits for the next request.
    fn wrote(&mut self, n: usize) {
        if n == 0 || self.phase == Phase::Head {
            return;
        }
        if !self.h2 {
            self.phase = Phase::Idle;
        }
        let idle = self.limits.idle_timeout;
        self.arm(idle);
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let was_idle = this.phase == Phase::Idle;
                let fresh = &buf.filled()[before..];
                if !fresh.is_empty() {
                    this.saw(fresh);
                    if was_idle && this.phase == Phase::Head {
                        let header = this.limits.header_read_timeout;
                        this.arm(header);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let why = if this.phase == Phase::Head {
                        "request head not received within --header-read-timeout"
                    } else {
                        "connection idle for --idle-timeout"
                    };
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(n);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_headroom_under_the_descriptor_limit() {
        assert_eq!(effective_cap(10_000, Some(1024)), 768);
        assert_eq!(effective_cap(10_000, Some(1_048_576)), 10_000);
        assert_eq!(effective_cap(100, Some(1024)), 100);
        assert_eq!(effective_cap(10_000, Some(50)), 1);
        assert_eq!(effective_cap(500, None), 500);
    }
}
