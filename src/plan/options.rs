//! Hop options: how the caller makes one call, as an application would —
//! its method and body, its own path, timeout, connect timeout and
//! retries, whether the target is a servicemock at all, and for TLS the
//! server name and verification.
//!
//! Written `[:name=value]` inside a target's brackets in an @-path (a
//! leading colon cannot start a header name), as the `options` of a hop in
//! a plan message or its JSON. Every form is read by [`HopOptions::set`]
//! and written by [`HopOptions::pairs`], so each round-trips. [`OPTIONS`]
//! says which hop protocols each option applies to; any other use is
//! refused before anyone is called.

use std::fmt::Write as _;
use std::time::Duration;

use super::{check_remainder, Limits, Protocol};

/// Most application-level retries of one hop.
pub const MAX_RETRIES: u32 = 10;
/// Longest `:timeout` or `:connect`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest `:backoff`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The pause between tries when `:retries` is given without `:backoff`
/// (Envoy's base retry interval).
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);
/// Longest `:method` token.
const MAX_METHOD_LEN: usize = 32;

const HTTP: &[Protocol] = &[Protocol::Http, Protocol::H2c, Protocol::Https];
const TLS: &[Protocol] = &[Protocol::Https, Protocol::Grpcs];
const TCP: &[Protocol] = &[Protocol::Tcp];
const ALL: &[Protocol] = &Protocol::ALL;

/// One option: its name, the hop protocols it applies to, and what it
/// takes (for messages and docs).
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub name: &'static str,
    pub applies: &'static [Protocol],
    pub takes: &'static str,
}

/// Every hop option, in the order they are written back.
pub const OPTIONS: [OptionSpec; 12] = [
    OptionSpec {
        name: "method",
        applies: HTTP,
        takes: "an HTTP method (GET, POST, HEAD, any token)",
    },
    OptionSpec {
        name: "body",
        applies: HTTP,
        takes: "a size of filler body (1KiB, at most --max-body)",
    },
    OptionSpec {
        name: "path",
        applies: HTTP,
        takes: "a path sent instead of the remainder (%2F for / in an @-path)",
    },
    OptionSpec {
        name: "timeout",
        applies: ALL,
        takes: "a duration (3s, 250ms)",
    },
    OptionSpec {
        name: "connect",
        applies: ALL,
        takes: "a connect timeout (1s)",
    },
    OptionSpec {
        name: "retries",
        applies: ALL,
        takes: "how many times to retry, 0 to 10",
    },
    OptionSpec {
        name: "retry-on",
        applies: ALL,
        takes: "5xx, reset, timeout, unavailable (comma-separated)",
    },
    OptionSpec {
        name: "backoff",
        applies: ALL,
        takes: "the pause between tries (100ms)",
    },
    OptionSpec {
        name: "expect",
        applies: HTTP,
        takes: "any: the target is not a servicemock, judged by status alone",
    },
    OptionSpec {
        name: "sni",
        applies: TLS,
        takes: "the TLS server name sent and verified",
    },
    OptionSpec {
        name: "insecure",
        applies: TLS,
        takes: "true: accept any server certificate",
    },
    OptionSpec {
        name: "reuse",
        applies: TCP,
        takes: "true: keep the connection for the next call (a bounded pool)",
    },
];

/// When a hop is tried again (`:retry-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryOn(u8);

impl RetryOn {
    /// An HTTP status from 500 to 599.
    pub const STATUS_5XX: RetryOn = RetryOn(1);
    /// The connection failed or broke: refused, reset, a protocol error.
    pub const RESET: RetryOn = RetryOn(2);
    /// No answer within the hop's time.
    pub const TIMEOUT: RetryOn = RetryOn(4);
    /// gRPC `UNAVAILABLE`.
    pub const UNAVAILABLE: RetryOn = RetryOn(8);
    /// All four: what an application's HTTP client retries by default.
    pub const ALL: RetryOn = RetryOn(15);

    const WORDS: [(RetryOn, &'static str); 4] = [
        (RetryOn::STATUS_5XX, "5xx"),
        (RetryOn::RESET, "reset"),
        (RetryOn::TIMEOUT, "timeout"),
        (RetryOn::UNAVAILABLE, "unavailable"),
    ];

    /// Whether every condition of `other` is in this one.
    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0
    }

    fn parse(text: &str) -> Result<RetryOn, String> {
        let mut set = 0u8;
        for word in text.split(',').map(str::trim) {
            let Some((on, _)) = RetryOn::WORDS
                .iter()
                .find(|(_, w)| w.eq_ignore_ascii_case(word))
            else {
                let known: Vec<&str> = RetryOn::WORDS.iter().map(|(_, w)| *w).collect();
                return Err(format!(
                    "unknown condition \"{word}\" (known: {})",
                    known.join(", ")
                ));
            };
            set |= on.0;
        }
        Ok(RetryOn(set))
    }

    fn words(self) -> String {
        let words: Vec<&str> = RetryOn::WORDS
            .iter()
            .filter(|(on, _)| self.contains(*on))
            .map(|(_, w)| *w)
            .collect();
        words.join(",")
    }
}

/// How the caller makes one call. The default is a servicemock's own
/// call: GET (or a plan POST), the remainder as the path, `--hop-timeout`,
/// no retry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HopOptions {
    /// The request method (`:method`); GET when not given.
    pub method: Option<String>,
    /// Bytes of filler body sent (`:body`).
    pub body: Option<usize>,
    /// The path sent instead of the remainder (`:path`), as written.
    pub path: Option<String>,
    /// The hop's own timeout (`:timeout`), within the request's deadline.
    pub timeout: Option<Duration>,
    /// How long connecting may take (`:connect`).
    pub connect: Option<Duration>,
    /// Tries after the first (`:retries`).
    pub retries: u32,
    /// When to try again (`:retry-on`); all four conditions when not given.
    pub retry_on: Option<RetryOn>,
    /// The pause between tries (`:backoff`).
    pub backoff: Option<Duration>,
    /// The target is not a servicemock (`:expect=any`).
    pub expect_any: bool,
    /// The TLS server name to send and verify (`:sni`).
    pub sni: Option<String>,
    /// Accept any server certificate (`:insecure=true`).
    pub insecure: bool,
    /// Keep a TCP hop's connection for the next call (`:reuse=true`).
    pub reuse: bool,
}

impl HopOptions {
    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        *self == HopOptions::default()
    }

    /// How many calls the hop may make: one, and its retries.
    pub fn tries(&self) -> u32 {
        1 + self.retries
    }

    /// When the hop is tried again.
    pub fn retry_on(&self) -> RetryOn {
        self.retry_on.unwrap_or(RetryOn::ALL)
    }

    /// The pause between tries.
    pub fn backoff(&self) -> Duration {
        self.backoff.unwrap_or(DEFAULT_BACKOFF)
    }

    /// Whether the answer is judged by its status alone: the target is not
    /// a servicemock, or the method is HEAD (no body to hold a report).
    pub fn by_status_alone(&self) -> bool {
        self.expect_any
            || self
                .method
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("HEAD"))
    }

    /// Sets option `name` (without its colon) from its written `value`,
    /// refusing an unknown name or a value out of bounds.
    pub fn set(&mut self, name: &str, value: &str, limits: &Limits) -> Result<(), String> {
        let problem = |p: String| format!("option ':{name}={value}': {p}");
        match name {
            "method" => {
                if value.is_empty()
                    || value.len() > MAX_METHOD_LEN
                    || !value.bytes().all(is_token_byte)
                {
                    return Err(problem(format!(
                        "not an HTTP method (a token of at most {MAX_METHOD_LEN} letters, digits or !#$%&'*+-.^_`|~)"
                    )));
                }
                self.method = Some(value.to_owned());
            }
            "body" => {
                let size = crate::units::parse_bytes(value).map_err(problem)?;
                if size > limits.max_body {
                    return Err(problem(format!(
                        "{size} bytes is over --max-body {}",
                        limits.max_body
                    )));
                }
                self.body = Some(size);
            }
            "path" => {
                check_remainder(value).map_err(problem)?;
                if value.contains(']') {
                    return Err(problem("holds ']', which no @-path can carry".into()));
                }
                if value.len() > limits.max_path_len {
                    return Err(problem(format!(
                        "longer than {} bytes",
                        limits.max_path_len
                    )));
                }
                self.path = Some(value.to_owned());
            }
            "timeout" => {
                self.timeout =
                    Some(duration(value, Duration::from_millis(1), MAX_TIMEOUT).map_err(problem)?)
            }
            "connect" => {
                self.connect =
                    Some(duration(value, Duration::from_millis(1), MAX_TIMEOUT).map_err(problem)?)
            }
            "backoff" => {
                self.backoff = Some(duration(value, Duration::ZERO, MAX_BACKOFF).map_err(problem)?)
            }
            "retries" => {
                self.retries = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= MAX_RETRIES)
                    .ok_or_else(|| problem(format!("not a number from 0 to {MAX_RETRIES}")))?;
            }
            "retry-on" => self.retry_on = Some(RetryOn::parse(value).map_err(problem)?),
            "expect" => {
                self.expect_any = match value {
                    "any" => true,
                    "servicemock" => false,
                    _ => {
                        return Err(problem(
                            "write any (the target is not a servicemock) or servicemock".into(),
                        ))
                    }
                }
            }
            "sni" => {
                rustls::pki_types::ServerName::try_from(value)
                    .map_err(|e| problem(format!("not a TLS server name: {e}")))?;
                self.sni = Some(value.to_owned());
            }
            "insecure" | "reuse" => {
                let on = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(problem("write true or false".into())),
                };
                if name == "reuse" {
                    self.reuse = on;
                } else {
                    self.insecure = on;
                }
            }
            _ => {
                let known: Vec<String> = OPTIONS.iter().map(|o| format!(":{}", o.name)).collect();
                return Err(format!(
                    "unknown hop option ':{name}' (known: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Every option set, as `(name, value)` in [`OPTIONS`] order: what
    /// [`HopOptions::set`] reads back to the same options.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(method) = &self.method {
            pairs.push(("method", method.clone()));
        }
        if let Some(body) = self.body {
            pairs.push(("body", body.to_string()));
        }
        if let Some(path) = &self.path {
            pairs.push(("path", path.clone()));
        }
        if let Some(timeout) = self.timeout {
            pairs.push(("timeout", duration_text(timeout)));
        }
        if let Some(connect) = self.connect {
            pairs.push(("connect", duration_text(connect)));
        }
        if self.retries > 0 {
            pairs.push(("retries", self.retries.to_string()));
        }
        if let Some(on) = self.retry_on {
            pairs.push(("retry-on", on.words()));
        }
        if let Some(backoff) = self.backoff {
            pairs.push(("backoff", duration_text(backoff)));
        }
        if self.expect_any {
            pairs.push(("expect", "any".into()));
        }
        if let Some(sni) = &self.sni {
            pairs.push(("sni", sni.clone()));
        }
        if self.insecure {
            pairs.push(("insecure", "true".into()));
        }
        if self.reuse {
            pairs.push(("reuse", "true".into()));
        }
        pairs
    }

    /// Refuses options that do not apply to `protocol`, or that make no
    /// sense together.
    pub fn check_for(&self, protocol: Protocol) -> Result<(), String> {
        for (name, _) in self.pairs() {
            let Some(spec) = OPTIONS.iter().find(|o| o.name == name) else {
                continue;
            };
            if !spec.applies.contains(&protocol) {
                let applies: Vec<&str> = spec.applies.iter().map(|p| p.as_str()).collect();
                return Err(format!(
                    "option ':{name}' does not apply to a {protocol} hop (only to {})",
                    applies.join(", ")
                ));
            }
        }
        if self.retries == 0 {
            for (given, name) in [
                (self.retry_on.is_some(), "retry-on"),
                (self.backoff.is_some(), "backoff"),
            ] {
                if given {
                    return Err(format!(
                        "option ':{name}' needs ':retries' (how many times to retry)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The options in one short form for a person: `POST 1 KiB, timeout
    /// 3s, retries 2`; empty when none is set.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut head = String::new();
        if let Some(method) = &self.method {
            head.push_str(method);
        }
        if let Some(body) = self.body {
            if !head.is_empty() {
                head.push(' ');
            }
            head.push_str(&bytes_text(body));
        }
        if let Some(path) = &self.path {
            if !head.is_empty() {
                head.push(' ');
            }
            head.push_str(path);
        }
        if !head.is_empty() {
            parts.push(head);
        }
        let human = crate::units::human;
        if let Some(timeout) = self.timeout {
            parts.push(format!("timeout {}", human(timeout)));
        }
        if let Some(connect) = self.connect {
            parts.push(format!("connect {}", human(connect)));
        }
        if self.retries > 0 {
            let mut retries = format!("retries {}", self.retries);
            if let Some(on) = self.retry_on {
                let _ = write!(retries, " on {}", on.words());
            }
            if let Some(backoff) = self.backoff {
                let _ = write!(retries, " every {}", human(backoff));
            }
            parts.push(retries);
        }
        if self.expect_any {
            parts.push("expect any".into());
        }
        if let Some(sni) = &self.sni {
            parts.push(format!("sni {sni}"));
        }
        if self.insecure {
            parts.push("insecure".into());
        }
        if self.reuse {
            parts.push("reuse".into());
        }
        parts.join(", ")
    }
}

/// An RFC 9110 token character (what a method is made of).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A duration with its unit, to the microsecond, within `min..=max`.
fn duration(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    if text.is_empty() || text.bytes().all(|b| b.is_ascii_digit() || b == b'.') && text != "0" {
        return Err(format!("needs a unit: write {text}s or {text}ms"));
    }
    let parsed = crate::units::parse_duration(text)?;
    // To the microsecond, so the written form reads back the same.
    let d = Duration::from_micros((parsed.as_secs_f64() * 1e6).round() as u64);
    if d < min {
        return Err(format!(
            "at least {} (got {text})",
            crate::units::human(min)
        ));
    }
    if d > max {
        return Err(format!("at most {} (got {text})", crate::units::human(max)));
    }
    Ok(d)
}

/// A duration as the options write it: whole seconds, milliseconds or
/// microseconds, whichever is exact.
fn duration_text(d: Duration) -> String {
    let micros = d.as_micros();
    if micros.is_multiple_of(1_000_000) {
        format!("{}s", micros / 1_000_000)
    } else if micros.is_multiple_of(1000) {
        format!("{}ms", micros / 1000)
    } else {
        format!("{micros}us")
    }
}

/// `1 KiB`, `512 B`, `1.5 MiB`.
fn bytes_text(n: usize) -> String {
    match n {
        n if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) => {
            format!("{} MiB", n / (1024 * 1024))
        }
        n if n >= 1024 && n.is_multiple_of(1024) => format!("{} KiB", n / 1024),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Result<HopOptions, String> {
        let mut o = HopOptions::default();
        for (n, v) in pairs {
            o.set(n, v, &Limits::default())?;
        }
        Ok(o)
    }

    #[test]
    fn every_option_reads_back_as_written() {
        let o = options(&[
            ("method", "POST"),
            ("body", "1KiB"),
            ("path", "/reviews/0"),
            ("timeout", "1.5s"),
            ("connect", "250ms"),
            ("retries", "2"),
            ("retry-on", "5xx,timeout"),
            ("backoff", "150us"),
            ("expect", "any"),
            ("sni", "a.example"),
            ("insecure", "true"),
        ])
        .unwrap();
        let back = options(
            &o.pairs()
                .iter()
                .map(|(n, v)| (*n, v.as_str()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(back, o);
        assert_eq!(o.body, Some(1024));
        assert_eq!(o.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(
            o.summary(),
            "POST 1 KiB /reviews/0, timeout 1.5s, connect 250ms, retries 2 on 5xx,timeout every 150us, expect any, sni a.example, insecure"
        );
    }

    #[test]
    fn mistakes_name_the_option_and_the_bound() {
        let err = |n: &str, v: &str| options(&[(n, v)]).unwrap_err();
        assert!(
            err("methd", "POST").starts_with("unknown hop option ':methd' (known: :method, :body,")
        );
        assert_eq!(
            err("retries", "1000"),
            "option ':retries=1000': not a number from 0 to 10"
        );
        assert_eq!(
            err("timeout", "0"),
            "option ':timeout=0': at least 1ms (got 0)"
        );
        assert_eq!(
            err("timeout", "3"),
            "option ':timeout=3': needs a unit: write 3s or 3ms"
        );
        assert!(err("body", "2MiB").contains("over --max-body 1048576"));
        assert!(err("path", "x").contains("must start with '/'"));
        assert!(err("retry-on", "5xx,gone").contains("unknown condition \"gone\""));
        assert!(err("method", "GE T").contains("not an HTTP method"));
    }

    #[test]
    fn options_apply_only_where_they_mean_something() {
        let post = options(&[("method", "POST")]).unwrap();
        assert!(post.check_for(Protocol::Http).is_ok());
        assert_eq!(
            post.check_for(Protocol::Grpc).unwrap_err(),
            "option ':method' does not apply to a grpc hop (only to http, h2c, https)"
        );
        let sni = options(&[("sni", "x")]).unwrap();
        assert!(sni.check_for(Protocol::Grpcs).is_ok());
        assert!(sni.check_for(Protocol::H2c).is_err());
        let backoff = options(&[("backoff", "1s")]).unwrap();
        assert!(backoff
            .check_for(Protocol::Http)
            .unwrap_err()
            .contains("needs ':retries'"));
    }
}
