//! [`GuardedIo`]: the byte-level watch every inbound connection is read
//! through, whatever it carries (plaintext, or the plaintext inside TLS).
//!
//! * A request head must arrive within `--header-read-timeout` of its first
//!   byte (slowloris), and a new connection must send its first byte within
//!   that time too (silent connections); an idle keep-alive connection,
//!   which has been answered, is not mistaken for a slow one.
//! * No bytes either way for `--idle-timeout` closes the connection.
//! * Once an HTTP/1.1 answer is `101 Switching Protocols` the connection
//!   carries another protocol (WebSocket): its bytes are never request
//!   heads again, so only the idle timeout applies. HTTP/2 (prior
//!   knowledge, or `h2` by ALPN) is frames from the start, extended CONNECT
//!   streams included. An interim `1xx` answer (`100 Continue`) leaves the
//!   request in flight.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::ConnectionLimits;

/// Where a connection is in its request cycle, as far as bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the first byte of a request.
    Idle,
    /// A request head has begun and not ended.
    Head,
    /// Past the head: a body, an answer being made.
    Busy,
    /// Frames or an upgraded protocol: no request heads, only idleness.
    Frames,
}

/// A stream that times request heads and idleness (see the module docs).
pub(super) struct GuardedIo<S> {
    inner: S,
    limits: ConnectionLimits,
    phase: Phase,
    /// The next bytes written begin an answer (its status line).
    answer_begins: bool,
    /// The last bytes of the head so far, to find its end across reads.
    tail: [u8; 3],
    /// When the connection times out, unless bytes move first.
    deadline: Instant,
    /// Wakes the connection at `deadline` or before it: a later deadline
    /// (idleness pushed back by each request) is not re-registered with
    /// tokio's timer at once, only when the timer fires early, so a busy
    /// keep-alive connection pays no timer work per request.
    timer: Pin<Box<Sleep>>,
    /// The deadline is the head timeout (not the idle one).
    timing_head: bool,
}

impl<S> GuardedIo<S> {
    /// Guards a new connection, which owes its first request head within
    /// the header timeout (counted from `since`: the connection's arrival,
    /// so a TLS handshake spends from the same allowance). `frames` says
    /// the connection speaks HTTP/2 from its first byte (ALPN `h2`).
    pub(super) fn new(inner: S, limits: ConnectionLimits, since: Instant, frames: bool) -> Self {
        let deadline = since + limits.header_read_timeout;
        GuardedIo {
            inner,
            limits,
            phase: if frames { Phase::Frames } else { Phase::Idle },
            answer_begins: false,
            tail: [0; 3],
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            timing_head: true,
        }
    }

    #[cfg(test)]
    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    fn arm(&mut self, after: Duration, head: bool) {
        self.timing_head = head;
        self.deadline = Instant::now() + after;
        if self.deadline < self.timer.deadline() {
            self.timer.as_mut().reset(self.deadline);
        }
    }

    /// Whether the deadline has passed; a timer that fired before it (the
    /// deadline moved on since it was set) is set again and polled.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= self.deadline {
                return true;
            }
            self.timer.as_mut().reset(self.deadline);
        }
        false
    }

    /// Moves the phase on for `bytes` just read. A head that arrives whole
    /// in one read (nearly all) is never timed as a head: the timer goes
    /// straight to idleness, one reset instead of two.
    fn saw(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Idle {
            self.tail = [0; 3];
            self.phase = if bytes.starts_with(b"PRI * HTTP/2.0") {
                Phase::Frames
            } else {
                Phase::Head
            };
            if self.phase == Phase::Head && !self.head_ends_in(bytes) {
                let header = self.limits.header_read_timeout;
                self.arm(header, true);
                return;
            }
        } else if self.phase == Phase::Head && !self.head_ends_in(bytes) {
            return;
        }
        if self.phase == Phase::Head {
            self.phase = Phase::Busy;
            self.answer_begins = true;
        }
        let idle = self.limits.idle_timeout;
        self.arm(idle, false);
    }

    /// Whether the head ends in `bytes` (its blank line may straddle two
    /// reads); keeps the last bytes for the next read when it does not.
    /// A head read whole ends the read (a request without a body): that is
    /// looked at first, the rest searched a vector at a time.
    fn head_ends_in(&mut self, bytes: &[u8]) -> bool {
        const BLANK_LINE: &[u8] = b"\r\n\r\n";
        let mut edge = [0u8; 6];
        edge[..3].copy_from_slice(&self.tail);
        let k = bytes.len().min(3);
        edge[3..3 + k].copy_from_slice(&bytes[..k]);
        if bytes.ends_with(BLANK_LINE)
            || edge[..3 + k].windows(4).any(|w| w == BLANK_LINE)
            || memchr::memmem::find(bytes, BLANK_LINE).is_some()
        {
            return true;
        }
        if bytes.len() >= 3 {
            self.tail.copy_from_slice(&bytes[bytes.len() - 3..]);
        } else {
            let len = bytes.len();
            let mut joined = [0u8; 6];
            joined[..3].copy_from_slice(&self.tail);
            joined[3..3 + len].copy_from_slice(bytes);
            self.tail.copy_from_slice(&joined[len..len + 3]);
        }
        false
    }

    /// Notes an answer going out (`first` is its first buffer): HTTP/1.1
    /// then waits for the next request, unless the answer was interim
    /// (`1xx`) or switched the connection to another protocol (`101`).
    fn wrote(&mut self, n: usize, first: &[u8]) {
        if n == 0 || self.phase == Phase::Head {
            return;
        }
        if self.phase == Phase::Busy {
            match std::mem::take(&mut self.answer_begins).then(|| interim(first)) {
                Some(Some(Interim::Switching)) => self.phase = Phase::Frames,
                Some(Some(Interim::Other)) => self.answer_begins = true,
                _ => self.phase = Phase::Idle,
            }
        }
        let idle = self.limits.idle_timeout;
        self.arm(idle, false);
    }
}

/// What kind of interim answer a status line is.
#[derive(Debug, PartialEq, Eq)]
enum Interim {
    /// `101 Switching Protocols`: the connection is upgraded.
    Switching,
    /// Another `1xx` (`100 Continue`): the real answer follows.
    Other,
}

/// Reads `HTTP/1.x 1xx` off the start of an answer.
fn interim(status_line: &[u8]) -> Option<Interim> {
    let code = status_line.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    match code {
        b"101" => Some(Interim::Switching),
        [b'1', _, _] => Some(Interim::Other),
        _ => None,
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if !fresh.is_empty() {
                    this.saw(fresh);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.poll_expired(cx) => {
                let why = if this.timing_head {
                    "request head not received within --header-read-timeout"
                } else {
                    "connection idle for --idle-timeout"
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
            }
            Poll::Pending => Poll::Pending,
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(n, data);
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
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            this.wrote(n, first);
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

    fn guard() -> GuardedIo<()> {
        GuardedIo::new((), ConnectionLimits::default(), Instant::now(), false)
    }

    #[tokio::test]
    async fn a_101_answer_leaves_request_heads_behind() {
        let mut io = guard();
        io.saw(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(io.phase(), Phase::Busy);
        io.wrote(20, b"HTTP/1.1 101 Switching Protocols\r\n");
        assert_eq!(io.phase(), Phase::Frames);
        io.saw(b"any bytes at all, never a head");
        assert_eq!(io.phase(), Phase::Frames);
        assert!(!io.timing_head);
    }

    #[tokio::test]
    async fn an_interim_answer_keeps_the_request_in_flight() {
        let mut io = guard();
        io.saw(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        io.wrote(25, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(
            io.phase(),
            Phase::Busy,
            "the body and the real answer follow"
        );
        io.saw(b"a body without blank lines");
        assert_eq!(io.phase(), Phase::Busy);
        io.wrote(17, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(io.phase(), Phase::Idle);
    }

    #[tokio::test]
    async fn heads_are_timed_across_reads() {
        let mut io = guard();
        io.saw(b"GET / HTTP/1.1\r\nHost: a\r");
        assert_eq!(io.phase(), Phase::Head);
        assert!(io.timing_head);
        io.saw(b"\n\r");
        assert_eq!(io.phase(), Phase::Head);
        io.saw(b"\n");
        assert_eq!(io.phase(), Phase::Busy);
        assert!(!io.timing_head);
        io.wrote(17, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(io.phase(), Phase::Idle);
    }

    #[tokio::test]
    async fn a_head_read_whole_is_timed_for_idleness_only() {
        let mut io = guard();
        let before = Instant::now();
        io.saw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(io.phase(), Phase::Busy);
        assert!(!io.timing_head);
        let idle = ConnectionLimits::default().idle_timeout;
        assert!(io.deadline >= before + idle);
        io.wrote(17, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(io.phase(), Phase::Idle);
        // The next head, split, is timed as a head from its first byte.
        io.saw(b"GET / HTTP/1.1\r\n");
        assert!(io.timing_head);
        assert!(io.deadline < Instant::now() + idle);
        assert!(io.timer.deadline() <= io.deadline, "wakes by the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_that_fires_before_a_later_deadline_is_set_again() {
        let limits = ConnectionLimits::default();
        let mut io = guard();
        let first = io.timer.deadline();
        io.saw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(io.timer.deadline(), first, "a later deadline waits");
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        tokio::time::advance(limits.header_read_timeout).await;
        assert!(!io.poll_expired(&mut cx), "idleness has not run out");
        assert_eq!(io.timer.deadline(), io.deadline);
        tokio::time::advance(limits.idle_timeout).await;
        assert!(io.poll_expired(&mut cx));
    }

    #[tokio::test]
    async fn blank_lines_are_found_anywhere_in_a_read() {
        let mut io = guard();
        assert!(io.head_ends_in(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(io.head_ends_in(b"POST / HTTP/1.1\r\nA: b\r\n\r\nbody"));
        assert!(!io.head_ends_in(b"GET / HTTP/1.1\r\nA: b\r\n\r"));
        assert!(io.head_ends_in(b"\nbody"), "straddling two reads");
    }

    #[tokio::test]
    async fn http2_is_frames_from_its_preface() {
        let mut io = guard();
        io.saw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(io.phase(), Phase::Frames);
        io.wrote(9, b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(io.phase(), Phase::Frames);
    }

    #[test]
    fn interim_status_lines() {
        assert_eq!(interim(b"HTTP/1.1 101 Switching"), Some(Interim::Switching));
        assert_eq!(interim(b"HTTP/1.0 100 Continue"), Some(Interim::Other));
        assert_eq!(interim(b"HTTP/1.1 200 OK"), None);
        assert_eq!(interim(b"\0\0\x04"), None);
    }
}
