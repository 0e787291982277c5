//! Behaviour directives: what a service does itself before it answers —
//! wait, fail with a chosen status, pad its answer, or drop the connection.
//!
//! One vocabulary, three ways to give it: `x-mock-*` request headers (per
//! request), the same headers on a hop in a path or plan (per hop, e.g.
//! `/@service2[x-mock-status=503@50%]/`), and process flags (`--delay`,
//! `--status`, `--error-rate`, …) for a "slow v2" or "flaky v2". A header
//! wins over the process default of the same directive. Directives are
//! consumed by the service they are sent to and never passed on.
//!
//! Values: durations `250ms`, `1.5s`; ranges `50ms..200ms` (uniform); a
//! probability `503@25%`; fortio's weighted lists `503:20,404:10` (20 % 503,
//! 10 % 404, the rest normal). Probabilities are drawn from a real RNG.
//!
//! Here: the one [`Directive`] list and what a request's directives draw;
//! `values.rs` the values and their parsing, `conditions.rs` where and
//! when a directive applies, `flags.rs` the process defaults as flags,
//! `stream.rs` the directives of streams.

use std::fmt;
use std::time::Duration;

use http::HeaderMap;
use rand::Rng;

pub mod flags;
pub mod stream;

use crate::codes::{grpc_code_for_http, grpc_code_name, http_status_for_grpc};

pub const DELAY: &str = "x-mock-delay";
pub const STATUS: &str = "x-mock-status";
pub const GRPC_STATUS: &str = "x-mock-grpc-status";
pub const SIZE: &str = "x-mock-size";
pub const RESET: &str = "x-mock-reset";

mod conditions;
mod values;

pub use conditions::{Here, Only, MAX_FIRST};
pub use values::*;

/// A directive's value with its conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Scoped<T> {
    pub value: T,
    pub only: Only,
    /// The value as written, conditions included, for `GET /control`.
    pub text: String,
}

impl<T> Scoped<T> {
    /// The value, if the conditions hold `here`.
    pub fn here(&self, here: &Here<'_>) -> Option<&T> {
        self.only.admits(here).then_some(&self.value)
    }
}

/// The directives in force for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    pub delay: Option<Scoped<Weighted<DelayValue>>>,
    /// HTTP statuses to answer with.
    pub status: Option<Scoped<Weighted<u16>>>,
    /// gRPC codes to answer with.
    pub grpc_status: Option<Scoped<Weighted<i32>>>,
    /// Bytes of padding in the report.
    pub size: Option<Scoped<usize>>,
    /// Percentage of requests whose connection is dropped without an answer.
    pub reset: Option<Scoped<f64>>,
}

/// What was drawn for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub delay: Duration,
    pub http_status: Option<u16>,
    pub grpc_code: Option<i32>,
    pub size: usize,
    /// The directives that took effect, in the order the report lists them.
    pub injected: Vec<Injection>,
}

/// One directive that took effect on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    Delay(Duration),
    /// A delay that reached the caller's deadline and was cut there.
    DelayCut {
        asked: Duration,
        after: Duration,
    },
    Status(u16),
    GrpcStatus(i32),
    Size(usize),
}

impl Injection {
    /// The directive's kind, as metrics label it.
    pub fn kind(self) -> &'static str {
        match self {
            Injection::Delay(_) | Injection::DelayCut { .. } => "delay",
            Injection::Status(_) => "status",
            Injection::GrpcStatus(_) => "grpc_status",
            Injection::Size(_) => "size",
        }
    }
}

/// The report's words: `delay 250ms`, `status 503`, `grpc-status
/// UNAVAILABLE`, `size 1024`, `delay 10s cut at the deadline after 9s`.
impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::units::human;
        match *self {
            Injection::Delay(d) => write!(f, "delay {}", human(d)),
            Injection::DelayCut { asked, after } => write!(
                f,
                "delay {} cut at the deadline after {}",
                human(asked),
                human(after)
            ),
            Injection::Status(s) => write!(f, "status {s}"),
            Injection::GrpcStatus(c) => write!(f, "grpc-status {}", grpc_code_name(c)),
            Injection::Size(n) => write!(f, "size {n}"),
        }
    }
}

impl Directives {
    /// Whether `headers` name any directive (`x-mock-*`): most requests
    /// carry none, and get the defaults as they are.
    pub fn any_in(headers: &HeaderMap) -> bool {
        headers
            .keys()
            .any(|name| name.as_str().starts_with(DIRECTIVE_PREFIX))
    }

    /// Reads the `x-mock-*` headers of a request; `max_delay` caps delays.
    pub fn from_headers(
        headers: &HeaderMap,
        max_delay: Duration,
    ) -> Result<Directives, DirectiveError> {
        let text = |name: &'static str| -> Result<Option<String>, DirectiveError> {
            match headers.get(name) {
                None => Ok(None),
                Some(v) => {
                    v.to_str()
                        .map(|s| Some(s.trim().to_owned()))
                        .map_err(|_| DirectiveError {
                            header: name,
                            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            problem: "not ASCII text".into(),
                        })
                }
            }
        };
        let mut d = Directives::default();
        // Most requests carry no directive: one look at the names present
        // instead of a lookup for each directive.
        if !Directives::any_in(headers) {
            return Ok(d);
        }
        // A misspelled directive is a mistake to name, never ignored (the
        // same typo in a path is refused too).
        if let Some(unknown) = headers.keys().find(|name| {
            name.as_str().starts_with(DIRECTIVE_PREFIX) && !DIRECTIVES.contains(&name.as_str())
        }) {
            // A stream's own directives are taken off by the stream before
            // each of its messages is admitted; anywhere else they would do
            // nothing.
            let problem = if stream::STREAM_DIRECTIVES.contains(&unknown.as_str()) {
                "applies to streams (CallStream, Converse): this request is no stream".to_owned()
            } else {
                format!(
                    "unknown directive (known: {}, and on streams {})",
                    DIRECTIVES.join(", "),
                    stream::STREAM_DIRECTIVES.join(", ")
                )
            };
            return Err(DirectiveError {
                header: "directive header",
                value: unknown.as_str().to_owned(),
                problem,
            });
        }
        for name in DIRECTIVES {
            if let Some(v) = text(name)? {
                d.set(name, &v, max_delay)?;
            }
        }
        Ok(d)
    }

    /// Sets directive `name` (one of [`DIRECTIVES`]) from its text, with
    /// its conditions; `max_delay` caps delays.
    pub fn set(
        &mut self,
        name: &str,
        text: &str,
        max_delay: Duration,
    ) -> Result<(), DirectiveError> {
        fn scoped<T>(value: T, only: Only, text: &str) -> Option<Scoped<T>> {
            Some(Scoped {
                value,
                only,
                text: text.to_owned(),
            })
        }
        let text = text.trim();
        let directive = Directive::from_header(name).ok_or_else(|| DirectiveError {
            header: "directive",
            value: name.to_owned(),
            problem: format!("unknown directive (known: {})", DIRECTIVES.join(", ")),
        })?;
        let header = directive.header();
        let (value, only) = Only::split(header, text)?;
        let wrong = |e: DirectiveError| DirectiveError {
            value: text.to_owned(),
            ..e
        };
        match directive {
            Directive::Delay => {
                self.delay = scoped(parse_delay(value, max_delay).map_err(wrong)?, only, text)
            }
            Directive::Status => {
                self.status = scoped(parse_status(value).map_err(wrong)?, only, text)
            }
            Directive::GrpcStatus => {
                self.grpc_status = scoped(parse_grpc_status(value).map_err(wrong)?, only, text)
            }
            Directive::Size => self.size = scoped(parse_size(value).map_err(wrong)?, only, text),
            Directive::Reset => self.reset = scoped(parse_reset(value).map_err(wrong)?, only, text),
        }
        Ok(())
    }

    /// Unsets `directive`.
    pub fn clear(&mut self, directive: Directive) {
        match directive {
            Directive::Delay => self.delay = None,
            Directive::Status => self.status = None,
            Directive::GrpcStatus => self.grpc_status = None,
            Directive::Size => self.size = None,
            Directive::Reset => self.reset = None,
        }
    }

    /// The text `directive` was given as, with its conditions, if set.
    pub fn text(&self, directive: Directive) -> Option<&str> {
        match directive {
            Directive::Delay => self.delay.as_ref().map(|d| d.text.as_str()),
            Directive::Status => self.status.as_ref().map(|d| d.text.as_str()),
            Directive::GrpcStatus => self.grpc_status.as_ref().map(|d| d.text.as_str()),
            Directive::Size => self.size.as_ref().map(|d| d.text.as_str()),
            Directive::Reset => self.reset.as_ref().map(|d| d.text.as_str()),
        }
    }

    /// Each directive set, with its text as written: what `GET /control`
    /// shows.
    pub fn texts(&self) -> Vec<(&'static str, &str)> {
        Directive::ALL
            .into_iter()
            .filter_map(|d| Some((d.header(), self.text(d)?)))
            .collect()
    }

    /// These directives, with `defaults` filling the ones not given.
    pub fn or(self, defaults: &Directives) -> Directives {
        Directives {
            delay: self.delay.or_else(|| defaults.delay.clone()),
            status: self.status.or_else(|| defaults.status.clone()),
            grpc_status: self.grpc_status.or_else(|| defaults.grpc_status.clone()),
            size: self.size.or_else(|| defaults.size.clone()),
            reset: self.reset.or_else(|| defaults.reset.clone()),
        }
    }

    /// Draws what happens to one request answered `here`: directives whose
    /// conditions do not hold here are left out.
    pub fn decide(&self, here: &Here<'_>, rng: &mut impl Rng) -> Decision {
        let mut decision = Decision::default();
        if let Some(delay) = self
            .delay
            .as_ref()
            .and_then(|d| d.here(here))
            .and_then(|w| w.pick(rng))
        {
            decision.delay = delay.draw(rng);
            decision.injected.push(Injection::Delay(decision.delay));
        }
        if let Some(status) = self
            .status
            .as_ref()
            .and_then(|d| d.here(here))
            .and_then(|w| w.pick(rng))
        {
            decision.http_status = Some(status);
            decision.injected.push(Injection::Status(status));
        }
        if let Some(code) = self
            .grpc_status
            .as_ref()
            .and_then(|d| d.here(here))
            .and_then(|w| w.pick(rng))
        {
            decision.grpc_code = Some(code);
            decision.injected.push(Injection::GrpcStatus(code));
        }
        if let Some(&size) = self.size.as_ref().and_then(|d| d.here(here)) {
            decision.size = size;
            decision.injected.push(Injection::Size(size));
        }
        decision
    }

    /// Draws whether to drop this request's connection, answered `here`.
    pub fn decide_reset(&self, here: &Here<'_>, rng: &mut impl Rng) -> bool {
        decide_reset(self.reset.as_ref().and_then(|d| d.here(here)).copied(), rng)
    }
}

impl Decision {
    /// The HTTP status an HTTP answer gets: the injected one, or the one
    /// an injected gRPC code maps to.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
            .or(self.grpc_code.map(http_status_for_grpc))
    }

    /// The gRPC code a gRPC answer gets: the injected one, or the one an
    /// injected HTTP status maps to (as gRPC clients map HTTP statuses).
    pub fn grpc_code(&self) -> Option<i32> {
        self.grpc_code.or(self.http_status.map(grpc_code_for_http))
    }
}

/// One behaviour directive: the one list that the headers, the hop
/// headers of a plan, `/control`'s keys, the process flags and the proto's
/// `Behavior` fields are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    Delay,
    Status,
    GrpcStatus,
    Size,
    Reset,
}

impl Directive {
    pub const ALL: [Directive; 5] = [
        Directive::Delay,
        Directive::Status,
        Directive::GrpcStatus,
        Directive::Size,
        Directive::Reset,
    ];

    /// Its header, `x-mock-…`.
    pub const fn header(self) -> &'static str {
        match self {
            Directive::Delay => DELAY,
            Directive::Status => STATUS,
            Directive::GrpcStatus => GRPC_STATUS,
            Directive::Size => SIZE,
            Directive::Reset => RESET,
        }
    }

    /// Its key in `/control` (`grpcStatus`), as the process flags name it.
    pub const fn control_key(self) -> &'static str {
        match self {
            Directive::Delay => "delay",
            Directive::Status => "status",
            Directive::GrpcStatus => "grpcStatus",
            Directive::Size => "size",
            Directive::Reset => "reset",
        }
    }

    /// The directive a header names, whatever its case.
    pub fn from_header(name: &str) -> Option<Directive> {
        Directive::ALL
            .into_iter()
            .find(|d| d.header().eq_ignore_ascii_case(name))
    }
}

/// Every directive header, for messages that list them.
pub const DIRECTIVES: [&str; 5] = {
    let mut names = [""; 5];
    let mut i = 0;
    while i < names.len() {
        names[i] = Directive::ALL[i].header();
        i += 1;
    }
    names
};

/// What the name of every one of [`DIRECTIVES`] begins with.
const DIRECTIVE_PREFIX: &str = "x-mock-";

/// Checks the value of directive `name` as the service it is sent to will
/// read it (delays are capped there, by that service's --max-delay), so a
/// plan with a bad directive is refused where it is written, in every form.
pub fn check_directive(name: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    if stream::STREAM_DIRECTIVES.contains(&name) {
        return stream::check(name, value);
    }
    if !DIRECTIVES.contains(&name) {
        return Err(format!(
            "unknown directive '{name}' (known: {})",
            DIRECTIVES.join(", ")
        ));
    }
    Directives::default()
        .set(name, value, Duration::MAX)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
