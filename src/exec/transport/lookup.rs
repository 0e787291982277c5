//! The name lookup the hop clients connect with ([`Lookup`]): the
//! system's resolver as hyper-util's connector takes it. Its failure is a
//! typed [`LookupError`], so a `dns` outcome is found by type, never by
//! reading an error's text.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// A name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub(super) struct LookupError {
    pub(super) host: String,
    #[source]
    pub(super) source: std::io::Error,
}

/// The system's resolver (getaddrinfo on a blocking thread, through tokio),
/// as the tower service hyper-util's connector takes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lookup;

impl tower::Service<Name> for Lookup {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = LookupError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, LookupError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), LookupError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|addrs| addrs.collect::<Vec<_>>());
            match found {
                Ok(addrs) => Ok(addrs.into_iter()),
                Err(source) => Err(LookupError { host, source }),
            }
        })
    }
}
