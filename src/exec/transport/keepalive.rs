//! The keep-alive pool of plain HTTP/1.1 hops, the path nearly every hop
//! of a cleartext mesh takes: hyper's own HTTP/1.1 connections, kept idle
//! per address (newest first) and handed out one request at a time.
//!
//! It does what hyper-util's pooled client does for such hops, at a third
//! of the work per request: its key is the address as text, hashed at
//! once instead of byte by byte as `(Scheme, Authority)`, and a connection
//! goes back to the pool when its answer has been read to the end, with no
//! task spawned to wait for that. Kept from that client: connections are
//! made by the same connector (names by [`Lookup`], no Nagle, the connect
//! timeout), at most [`MAX_IDLE_PER_HOST`] idle per address, idle ones let
//! go after [`IDLE_TIMEOUT`], and a request that a reused connection closed
//! before it was written is sent again on another (never one that was
//! written: the downstream may have acted on it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tower::Service;

use super::lookup::Lookup;

/// Idle connections kept per address.
pub(super) const MAX_IDLE_PER_HOST: usize = 64;

/// How long a connection may wait idle in the pool.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type Sender = SendRequest<Full<Bytes>>;

/// Idle HTTP/1.1 connections by address, and how new ones are made.
#[derive(Debug, Clone)]
pub(super) struct KeepAlive {
    connector: HttpConnector<Lookup>,
    idle: Arc<Mutex<Idle>>,
}

#[derive(Debug, Default)]
struct Idle {
    /// Per `host:port`, oldest first. Keyed by foldhash, which hashes a
    /// word at a time (std's SipHash spent ~290 instructions on an address
    /// each time a connection was taken or given back).
    by_address: HashMap<String, Vec<Waiting>, foldhash::fast::RandomState>,
    /// The task that lets go of connections idle too long (one per
    /// runtime that used the pool last; a finished one is replaced).
    reaper: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Waiting {
    sender: Sender,
    since: Instant,
}

/// A connection lent for one request to `address`: back to the pool by
/// [`Lease::give_back`] once the answer was read to its end; dropped
/// otherwise (hyper then closes it). It borrows the pool and the address,
/// so lending costs no allocation.
pub(super) struct Lease<'a> {
    pool: &'a KeepAlive,
    address: &'a str,
    sender: Sender,
}

/// Why a request got no answer: no connection could be made, or the one
/// it went on failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum PoolError {
    /// Connecting failed (name lookup, refused, connect timeout) or the
    /// HTTP/1.1 handshake did: nothing was sent.
    #[error("{0}")]
    Dial(#[from] Dialing),
    #[error(transparent)]
    Sent(#[from] hyper::Error),
}

/// A connection that could not be made; its source says why.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect")]
pub(crate) struct Dialing(#[source] Box<dyn std::error::Error + Send + Sync>);

impl KeepAlive {
    pub(super) fn new(connector: HttpConnector<Lookup>) -> KeepAlive {
        KeepAlive {
            connector,
            idle: Arc::default(),
        }
    }

    /// Sends `request` (origin-form, with its Host) to `address` on an idle
    /// connection, or a new one when none is left that takes it.
    pub(super) async fn send<'a>(
        &'a self,
        address: &'a str,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease<'a>), PoolError> {
        while let Some(mut sender) = self.take_idle(address) {
            if sender.ready().await.is_err() {
                continue; // closed while it waited
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, Lease::new(self, address, sender))),
                Err(mut failed) => match failed.take_message() {
                    // Closed before the request was written: another one.
                    Some(unsent) => request = unsent,
                    None => return Err(PoolError::Sent(failed.into_error())),
                },
            }
        }
        let mut sender = self.dial(address).await?;
        let response = sender.send_request(request).await?;
        Ok((response, Lease::new(self, address, sender)))
    }

    /// The newest idle connection to `address` still open and young enough.
    fn take_idle(&self, address: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = idle.by_address.get_mut(address)?;
        while let Some(one) = waiting.pop() {
            if !one.sender.is_closed() && one.since.elapsed() < IDLE_TIMEOUT {
                return Some(one.sender);
            }
        }
        None
    }

    /// A new connection to `address`, its task spawned.
    async fn dial(&self, address: &str) -> Result<Sender, Dialing> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(address)
            .path_and_query("/")
            .build()
            .map_err(|e| Dialing(e.into()))?;
        let io = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(|e| Dialing(e.into()))?;
        let (sender, connection) = http1::handshake(io).await.map_err(|e| Dialing(e.into()))?;
        tokio::spawn(async move {
            // How it ended shows in the request it served, if any.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Connections idle in the pool (tests).
    #[cfg(test)]
    fn idle_count(&self, address: &str) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.by_address.get(address).map_or(0, Vec::len)
    }
}

impl<'a> Lease<'a> {
    fn new(pool: &'a KeepAlive, address: &'a str, sender: Sender) -> Lease<'a> {
        Lease {
            pool,
            address,
            sender,
        }
    }

    /// Puts the connection back for the next request, unless it closed:
    /// called once its answer was read to the end.
    pub(super) fn give_back(self) {
        if self.sender.is_closed() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.reaper.as_ref().is_none_or(|task| task.is_finished()) {
            idle.reaper = Some(tokio::spawn(reap(Arc::downgrade(&self.pool.idle))));
        }
        // The address is copied only the first time it has an idle one.
        let waiting = match idle.by_address.get_mut(self.address) {
            Some(waiting) => waiting,
            None => idle.by_address.entry(self.address.to_owned()).or_default(),
        };
        if waiting.len() >= MAX_IDLE_PER_HOST {
            waiting.remove(0);
        }
        waiting.push(Waiting {
            sender: self.sender,
            since: Instant::now(),
        });
    }
}

/// Lets go of connections idle past [`IDLE_TIMEOUT`] or closed, and of
/// addresses with none left, every half timeout, for as long as the pool
/// lives.
async fn reap(idle: Weak<Mutex<Idle>>) {
    let mut every = tokio::time::interval(IDLE_TIMEOUT / 2);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(idle) = idle.upgrade() else { return };
        let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.by_address.retain(|_, waiting| {
            waiting.retain(|one| !one.sender.is_closed() && one.since.elapsed() < IDLE_TIMEOUT);
            !waiting.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers `answers` requests per connection with a fixed
    /// body, then closes it; counts connections accepted.
    async fn server(answers: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..answers {
                        let mut seen = Vec::new();
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    fn request(address: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .uri("/")
            .header(http::header::HOST, address)
            .body(Full::default())
            .unwrap()
    }

    async fn get(pool: &KeepAlive, address: &str) -> Result<Bytes, PoolError> {
        let (response, lease) = pool.send(address, request(address)).await?;
        let body = response.into_body().collect().await?.to_bytes();
        lease.give_back();
        Ok(body)
    }

    fn pool() -> KeepAlive {
        let mut connector = HttpConnector::new_with_resolver(Lookup);
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        KeepAlive::new(connector)
    }

    #[tokio::test]
    async fn a_connection_read_to_its_end_is_used_again() {
        let (address, accepted) = server(100).await;
        let pool = pool();
        for _ in 0..5 {
            assert_eq!(get(&pool, &address).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(&address), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_used_again() {
        // One answer per connection, then the server closes it: each
        // request after the first finds its idle connection closed (or
        // closing) and is sent on a new one, never failed for it.
        let (address, accepted) = server(1).await;
        let pool = pool();
        for _ in 0..4 {
            assert_eq!(get(&pool, &address).await.unwrap(), "ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_lease_not_given_back_leaves_nothing_idle() {
        let (address, _) = server(100).await;
        let pool = pool();
        let (response, _lease) = pool.send(&address, request(&address)).await.unwrap();
        drop(response);
        assert_eq!(pool.idle_count(&address), 0);
    }

    #[tokio::test]
    async fn idle_connections_are_bounded_per_address() {
        let (address, _) = server(100).await;
        let pool = pool();
        let mut leases = Vec::new();
        for _ in 0..MAX_IDLE_PER_HOST + 3 {
            let (response, lease) = pool.send(&address, request(&address)).await.unwrap();
            response.into_body().collect().await.unwrap();
            leases.push(lease);
        }
        for lease in leases {
            lease.give_back();
        }
        assert_eq!(pool.idle_count(&address), MAX_IDLE_PER_HOST);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_dialing_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let error = get(&pool(), &address).await.unwrap_err();
        assert!(matches!(error, PoolError::Dial(_)), "{error:?}");
        let failure = super::super::failure::classify(&error);
        assert_eq!(failure.outcome, crate::report::Outcome::Refused);
        assert!(failure.connecting);
    }
}
