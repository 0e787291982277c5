//! What kind of failure a transport error is, found by walking its
//! `source()` chain and downcasting (io error kinds, tonic's timeout,
//! hyper's connect errors), never by matching the text of a message that a
//! new hyper or tonic could reword.

use std::error::Error;
use std::io;

use crate::report::Outcome;

/// The kind of a transport failure, and the innermost message worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub outcome: Outcome,
    /// The innermost cause, as its own type prints it.
    pub cause: String,
}

/// Sorts a transport error into an [`Outcome`].
pub fn classify(error: &(dyn Error + 'static)) -> Failure {
    let mut outcome = Outcome::Error;
    let mut current = Some(error);
    let mut innermost = error;
    while let Some(e) = current {
        innermost = e;
        if e.is::<tonic::TimeoutExpired>() || e.is::<tokio::time::error::Elapsed>() {
            outcome = Outcome::Timeout;
        } else if let Some(io) = e.downcast_ref::<io::Error>() {
            outcome = match io.kind() {
                io::ErrorKind::ConnectionRefused => Outcome::Refused,
                io::ErrorKind::TimedOut => Outcome::Timeout,
                // getaddrinfo failures carry no kind of their own.
                _ if is_resolution_failure(io) => Outcome::Dns,
                _ => outcome,
            };
        }
        current = e.source();
    }
    Failure {
        outcome,
        cause: innermost.to_string(),
    }
}

/// Whether an io error is a failed name lookup. The standard library's
/// resolver reports those as `Uncategorized` with getaddrinfo's text; the
/// text is the only thing that says so.
fn is_resolution_failure(error: &io::Error) -> bool {
    error.raw_os_error().is_none()
        && error
            .to_string()
            .starts_with("failed to lookup address information")
}

/// An error and its sources joined by ": ", each said once (hyper and tonic
/// often repeat their source's text in their own).
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
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
