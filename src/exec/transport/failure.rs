//! What kind of failure a transport error is, found by walking its
//! `source()` chain and downcasting (io error kinds, tonic's timeout, our
//! name lookup's error), never by matching the text of a message that a new
//! hyper or tonic could reword.

use std::error::Error;
use std::io;

use crate::report::Outcome;

/// The kind of a transport failure, and the innermost message worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub outcome: Outcome,
    /// The innermost cause, as its own type prints it.
    pub cause: String,
    /// The failure came while connecting (no connection was made).
    pub connecting: bool,
}

/// A connection that was not made within its connect timeout (the
/// transports that connect by hand say so with it).
#[derive(Debug, thiserror::Error)]
#[error("connect timed out")]
pub(crate) struct ConnectTimedOut;

/// Sorts a transport error into an [`Outcome`].
pub(crate) fn classify(error: &(dyn Error + 'static)) -> Failure {
    let mut outcome = Outcome::Error;
    let mut current = Some(error);
    let mut innermost = error;
    let mut connecting = false;
    while let Some(e) = current {
        innermost = e;
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
            || e.is::<super::keepalive::Dialing>()
        {
            connecting = true;
        }
        if e.is::<tonic::TimeoutExpired>() || e.is::<tokio::time::error::Elapsed>() {
            outcome = Outcome::Timeout;
        } else if let Some(handshake) = e.downcast_ref::<super::tls::HandshakeError>() {
            return Failure {
                outcome: Outcome::Tls,
                cause: handshake.to_string(),
                connecting: true,
            };
        } else if e.is::<super::lookup::LookupError>() {
            // The hop clients resolve names with `resolve::Lookup`.
            return Failure {
                outcome: Outcome::Dns,
                cause: innermost_text(e),
                connecting: true,
            };
        } else if let Some(handshake) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref()?.downcast_ref::<super::tls::HandshakeError>())
        {
            // Carried through hyper or h2 inside an I/O error.
            return Failure {
                outcome: Outcome::Tls,
                cause: handshake.to_string(),
                connecting: true,
            };
        } else if e.is::<ConnectTimedOut>() {
            outcome = Outcome::Timeout;
            connecting = true;
        } else if let Some(io) = e.downcast_ref::<io::Error>() {
            outcome = match io.kind() {
                io::ErrorKind::ConnectionRefused => Outcome::Refused,
                io::ErrorKind::TimedOut => Outcome::Timeout,
                _ => outcome,
            };
        }
        current = e.source();
    }
    Failure {
        outcome,
        cause: innermost.to_string(),
        connecting,
    }
}

/// The text of the innermost source of `error`.
fn innermost_text(error: &(dyn Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// An error and its sources joined by ": ", each said once (hyper and tonic
/// often repeat their source's text in their own).
pub(crate) fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty()
            && !parts
                .iter()
                .any(|p| p.contains(&text) || text.contains(p.as_str()))
        {
            parts.push(text);
        } else if let Some(last) = parts.last_mut() {
            if text.len() > last.len() && text.contains(last.as_str()) {
                *last = text;
            }
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, Box<dyn Error + Send + Sync>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    #[test]
    fn kinds_come_from_types() {
        let refused = Wrap(
            "client error (Connect)",
            Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(classify(&refused).outcome, Outcome::Refused);
        let timeout = Wrap("transport error", Box::new(tonic::TimeoutExpired(())));
        assert_eq!(classify(&timeout).outcome, Outcome::Timeout);
        let other = Wrap("x", Box::new(io::Error::other("boom")));
        assert_eq!(classify(&other).outcome, Outcome::Error);
        let dns = Wrap(
            "client error (Connect)",
            Box::new(super::super::lookup::LookupError {
                host: "nothere".into(),
                source: io::Error::other("no such name"),
            }),
        );
        let failure = classify(&dns);
        assert_eq!(failure.outcome, Outcome::Dns);
        assert_eq!(failure.cause, "no such name");
        // The same words in an io error are not a failed lookup.
        let words = Wrap(
            "x",
            Box::new(io::Error::other("failed to lookup address information")),
        );
        assert_eq!(classify(&words).outcome, Outcome::Error);
    }

    #[test]
    fn chains_say_each_cause_once() {
        let e = Wrap(
            "tcp connect error",
            Box::new(Wrap(
                "tcp connect error",
                Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
            )),
        );
        assert_eq!(error_chain(&e), "tcp connect error: connection refused");
    }
}
