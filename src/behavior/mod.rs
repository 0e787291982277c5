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

use std::fmt;
use std::time::Duration;

use http::HeaderMap;
use rand::Rng;

pub mod flags;
pub mod stream;

use crate::codes::{grpc_code_for_http, grpc_code_name, http_status_for_grpc, GRPC_CODES};
use crate::config::parse_duration;

pub const DELAY: &str = "x-mock-delay";
pub const STATUS: &str = "x-mock-status";
pub const GRPC_STATUS: &str = "x-mock-grpc-status";
pub const SIZE: &str = "x-mock-size";
pub const RESET: &str = "x-mock-reset";

/// Largest padding `x-mock-size` may ask for: with 1024 requests in flight
/// that is at most 1 GiB, and one padded answer stays well under the 16 MiB
/// a caller reads of a hop.
pub const MAX_SIZE: usize = 1024 * 1024;

/// A bad directive: which header, which value, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header}: \"{value}\": {problem}")]
pub struct DirectiveError {
    pub header: &'static str,
    pub value: String,
    pub problem: String,
}

/// A value and the share of requests (0..=100) that get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted<T> {
    pub choices: Vec<(T, f64)>,
}

impl<T: Clone> Weighted<T> {
    /// Draws one value, or `None` for the share left over.
    pub fn pick(&self, rng: &mut impl Rng) -> Option<T> {
        let roll = rng.random::<f64>() * 100.0;
        let mut edge = 0.0;
        for (value, percent) in &self.choices {
            edge += percent;
            if roll < edge {
                return Some(value.clone());
            }
        }
        None
    }
}

/// A delay: fixed, or uniform between two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayValue {
    Fixed(Duration),
    Range(Duration, Duration),
}

impl DelayValue {
    fn draw(self, rng: &mut impl Rng) -> Duration {
        match self {
            DelayValue::Fixed(d) => d,
            DelayValue::Range(lo, hi) => lo + (hi - lo).mul_f64(rng.random::<f64>()),
        }
    }

    fn max(self) -> Duration {
        match self {
            DelayValue::Fixed(d) | DelayValue::Range(_, d) => d,
        }
    }
}

/// Where and when a directive takes effect: the conditions written after
/// its value (`503@version=v2`, `503@first=2`, `2s@pod=reviews-7d9f`,
/// `403@from=service1`).
/// A directive whose conditions do not hold is ignored where it arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Only {
    /// Only on the first N attempts of a request (retries get past it).
    pub first: Option<u32>,
    /// Only where the answering service has this name.
    pub service: Option<String>,
    /// Only where the answering service has this version.
    pub version: Option<String>,
    /// Only where the answering host (pod) has this name.
    pub pod: Option<String>,
    /// Only for calls from this caller: a full principal
    /// (`spiffe://cluster.local/ns/NS/sa/NAME`) or its service account
    /// (`NAME`), as an AuthorizationPolicy names them.
    pub from: Option<String>,
}

/// The service a directive arrived at and the attempt it is answering:
/// what [`Only`] is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Here<'a> {
    pub service: &'a str,
    pub version: &'a str,
    pub pod: &'a str,
    /// 1 for a first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// The caller's principal, when known (client certificate or XFCC).
    pub caller: Option<&'a str>,
}

impl Here<'_> {
    /// A first attempt at a service that matches no name condition.
    pub const ANYWHERE: Here<'static> = Here {
        service: "",
        version: "",
        pod: "",
        attempt: 1,
        caller: None,
    };
}

/// Whether `from` (a principal or a service account) names `caller`.
fn is_from(from: &str, caller: Option<&str>) -> bool {
    let Some(caller) = caller else {
        return false;
    };
    if from.contains("://") {
        return from.eq_ignore_ascii_case(caller);
    }
    caller
        .rsplit_once("/sa/")
        .is_some_and(|(_, account)| account.eq_ignore_ascii_case(from))
}

/// The most attempts `@first=N` may name.
pub const MAX_FIRST: u32 = 1000;

impl Only {
    /// Whether a directive with these conditions takes effect `here`.
    pub fn admits(&self, here: &Here<'_>) -> bool {
        let named = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        self.first.is_none_or(|n| here.attempt <= n)
            && named(&self.service, here.service)
            && named(&self.version, here.version)
            && named(&self.pod, here.pod)
            && self.from.as_deref().is_none_or(|f| is_from(f, here.caller))
    }

    /// Splits the conditions off the end of a directive's value.
    fn split<'t>(header: &'static str, text: &'t str) -> Result<(&'t str, Only), DirectiveError> {
        let mut only = Only::default();
        let mut rest = text;
        while let Some((head, tail)) = rest.rsplit_once('@') {
            let Some((key, value)) = tail.split_once('=') else {
                break;
            };
            let (key, value) = (key.trim(), value.trim());
            if value.is_empty() {
                return Err(error(header, text, format!("@{key}= names nothing")));
            }
            let slot = match key {
                "first" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_FIRST).contains(n))
                        .ok_or_else(|| {
                            error(
                                header,
                                text,
                                format!("@first={value}: write a count of attempts from 1 to {MAX_FIRST}"),
                            )
                        })?;
                    if only.first.replace(n).is_some() {
                        return Err(error(header, text, "@first is given twice"));
                    }
                    rest = head;
                    continue;
                }
                "service" => &mut only.service,
                "version" => &mut only.version,
                "pod" => &mut only.pod,
                "from" => &mut only.from,
                _ => {
                    return Err(error(
                        header,
                        text,
                        format!(
                        "unknown condition @{key}= (known: @first=N, @service=, @version=, @pod=, @from=)"
                    ),
                    ))
                }
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(error(header, text, format!("@{key} is given twice")));
            }
            rest = head;
        }
        if rest.contains('=') {
            return Err(error(
                header,
                text,
                "conditions come last, after the value and its probability (e.g. 503@25%@version=v2)",
            ));
        }
        Ok((rest.trim(), only))
    }
}

impl fmt::Display for Only {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.first {
            write!(f, "@first={n}")?;
        }
        for (key, value) in [
            ("service", &self.service),
            ("version", &self.version),
            ("pod", &self.pod),
            ("from", &self.from),
        ] {
            if let Some(v) = value {
                write!(f, "@{key}={v}")?;
            }
        }
        Ok(())
    }
}

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
        if !headers
            .keys()
            .any(|name| name.as_str().starts_with(DIRECTIVE_PREFIX))
        {
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

fn error(header: &'static str, value: &str, problem: impl fmt::Display) -> DirectiveError {
    DirectiveError {
        header,
        value: value.to_owned(),
        problem: problem.to_string(),
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

/// Parses `v`, `v@P%` or `v1:P1,v2:P2` with `one` parsing each value.
fn parse_weighted<T>(
    header: &'static str,
    text: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<Weighted<T>, DirectiveError> {
    if text.is_empty() {
        return Err(error(header, text, "empty"));
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    let mut choices = Vec::with_capacity(items.len());
    for item in &items {
        let (value, percent) = if let Some((v, p)) = item.split_once('@') {
            let p = p.strip_suffix('%').ok_or_else(|| {
                error(
                    header,
                    text,
                    format!("write the probability as a percentage, e.g. {v}@25%"),
                )
            })?;
            (v, Some(p))
        } else if let Some((v, p)) = item.rsplit_once(':') {
            (v, Some(p))
        } else {
            (*item, None)
        };
        let percent = match percent {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| {
                    error(
                        header,
                        text,
                        format!("\"{p}\" is not a percentage from 0 to 100"),
                    )
                })?,
            None if items.len() == 1 => 100.0,
            None => {
                return Err(error(
                    header,
                    text,
                    format!("\"{item}\" needs a weight in a list (write value:percent)"),
                ))
            }
        };
        let parsed = one(value.trim()).map_err(|problem| error(header, text, problem))?;
        choices.push((parsed, percent));
    }
    let total: f64 = choices.iter().map(|(_, p)| p).sum();
    if total > 100.0 + 1e-9 {
        return Err(error(
            header,
            text,
            format!("the percentages add up to {total}, more than 100"),
        ));
    }
    Ok(Weighted { choices })
}

/// One delay: a duration with its unit (`5` alone could be seconds or
/// milliseconds, so it is refused; `0` needs none).
fn delay_value(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text != "0" && !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("\"{text}\" has no unit: write {text}s or {text}ms"));
    }
    parse_duration(text)
}

/// `x-mock-delay`: durations, ranges, probabilities, weighted lists.
pub fn parse_delay(text: &str, max: Duration) -> Result<Weighted<DelayValue>, DirectiveError> {
    let weighted = parse_weighted(DELAY, text, |v| {
        let value = match v.split_once("..") {
            Some((lo, hi)) => {
                let (lo, hi) = (delay_value(lo)?, delay_value(hi)?);
                if lo > hi {
                    return Err(format!("range {v} runs backwards"));
                }
                DelayValue::Range(lo, hi)
            }
            None => DelayValue::Fixed(delay_value(v)?),
        };
        Ok(value)
    })?;
    if let Some((v, _)) = weighted.choices.iter().find(|(v, _)| v.max() > max) {
        return Err(error(
            DELAY,
            text,
            format!(
                "{} is over the cap of {} (--max-delay)",
                crate::units::human(v.max()),
                crate::units::human(max)
            ),
        ));
    }
    Ok(weighted)
}

/// `x-mock-status`: HTTP statuses 200 to 599.
pub fn parse_status(text: &str) -> Result<Weighted<u16>, DirectiveError> {
    parse_weighted(STATUS, text, |v| {
        v.parse::<u16>()
            .ok()
            .filter(|s| (200..=599).contains(s))
            .ok_or_else(|| format!("\"{v}\" is not an HTTP status from 200 to 599"))
    })
}

/// `x-mock-grpc-status`: gRPC codes by number or name (`14`, `UNAVAILABLE`).
pub fn parse_grpc_status(text: &str) -> Result<Weighted<i32>, DirectiveError> {
    parse_weighted(GRPC_STATUS, text, grpc_code)
}

/// One gRPC code by number or name, or what to write instead.
fn grpc_code(v: &str) -> Result<i32, String> {
    v.parse::<i32>()
        .ok()
        .filter(|c| (0..=16).contains(c))
        .or_else(|| {
            GRPC_CODES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(v))
                .map(|i| i as i32)
        })
        .ok_or_else(|| {
            format!("\"{v}\" is not a gRPC code (0 to 16, or a name such as UNAVAILABLE)")
        })
}

/// `x-mock-size`: bytes, with an optional unit (`1024`, `64KiB`, `1MB`).
pub fn parse_size(text: &str) -> Result<usize, DirectiveError> {
    let size = parse_bytes(text).map_err(|problem| error(SIZE, text, problem))?;
    if size > MAX_SIZE {
        return Err(error(
            SIZE,
            text,
            format!("over the limit of {MAX_SIZE} bytes"),
        ));
    }
    Ok(size)
}

pub use crate::units::parse_bytes;

/// `x-mock-reset`: `true` (always), or a percentage such as `25%`.
pub fn parse_reset(text: &str) -> Result<f64, DirectiveError> {
    match text {
        "true" | "1" => Ok(100.0),
        "false" | "0" => Ok(0.0),
        _ => text
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| error(RESET, text, "write true or a percentage such as 25%")),
    }
}

/// Draws whether to drop a connection, `percent` of the time.
pub fn decide_reset(percent: Option<f64>, rng: &mut impl Rng) -> bool {
    percent.is_some_and(|p| rng.random::<f64>() * 100.0 < p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const CAP: Duration = Duration::from_secs(10);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn every_directive_is_read_past_the_no_directive_shortcut() {
        for name in DIRECTIVES {
            assert!(name.starts_with(DIRECTIVE_PREFIX), "{name}");
            let read = Directives::from_headers(&headers(&[(name, "1")]), CAP);
            assert_ne!(read, Ok(Directives::default()), "{name}");
        }
    }

    #[test]
    fn forms_of_values() {
        assert_eq!(parse_status("503").unwrap().choices, vec![(503, 100.0)]);
        assert_eq!(parse_status("503@25%").unwrap().choices, vec![(503, 25.0)]);
        assert_eq!(
            parse_status("503:20,404:10").unwrap().choices,
            vec![(503, 20.0), (404, 10.0)]
        );
        assert_eq!(
            parse_grpc_status("UNAVAILABLE@50%").unwrap().choices,
            vec![(14, 50.0)]
        );
        assert_eq!(parse_grpc_status("8").unwrap().choices, vec![(8, 100.0)]);
        assert_eq!(
            parse_delay("150us:10,2ms:5", CAP).unwrap().choices,
            vec![
                (DelayValue::Fixed(Duration::from_micros(150)), 10.0),
                (DelayValue::Fixed(Duration::from_millis(2)), 5.0)
            ]
        );
        assert_eq!(
            parse_delay("50ms..200ms", CAP).unwrap().choices,
            vec![(
                DelayValue::Range(Duration::from_millis(50), Duration::from_millis(200)),
                100.0
            )]
        );
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_reset("25%").unwrap(), 25.0);
    }

    #[test]
    fn bad_values_name_header_and_value() {
        let e = |r: Result<Directives, DirectiveError>| r.unwrap_err().to_string();
        let from = |n: &'static str, v: &str| Directives::from_headers(&headers(&[(n, v)]), CAP);
        assert_eq!(
            e(from(STATUS, "503@125%")),
            "x-mock-status: \"503@125%\": \"125\" is not a percentage from 0 to 100"
        );
        assert_eq!(
            e(from(STATUS, "700")),
            "x-mock-status: \"700\": \"700\" is not an HTTP status from 200 to 599"
        );
        assert_eq!(
            e(from(STATUS, "503:60,404:50")),
            "x-mock-status: \"503:60,404:50\": the percentages add up to 110, more than 100"
        );
        assert_eq!(
            e(from(STATUS, "503,404")),
            "x-mock-status: \"503,404\": \"503\" needs a weight in a list (write value:percent)"
        );
        assert!(e(from(DELAY, "1h")).contains("over the cap of 10s"));
        assert!(e(from(DELAY, "soon")).starts_with("x-mock-delay: \"soon\":"));
        assert!(e(from(DELAY, "2s..1s")).contains("runs backwards"));
        assert!(e(from(GRPC_STATUS, "BROKEN")).contains("not a gRPC code"));
        assert!(e(from(SIZE, "9GiB")).contains("unknown unit"));
        assert!(e(from(SIZE, "1025KiB")).contains("over the limit of 1048576 bytes"));
        assert_eq!(parse_size("1MiB"), Ok(MAX_SIZE));
        assert!(e(from(RESET, "maybe")).contains("x-mock-reset"));
        assert!(e(from(STATUS, "503@25")).contains("percentage"));
    }

    fn set(pairs: &[(&'static str, &str)]) -> Directives {
        let mut d = Directives::default();
        for (name, text) in pairs {
            d.set(name, text, CAP).unwrap();
        }
        d
    }

    fn here(version: &str, pod: &str, attempt: u32) -> Here<'static> {
        Here {
            service: "reviews",
            version: Box::leak(version.to_owned().into_boxed_str()),
            pod: Box::leak(pod.to_owned().into_boxed_str()),
            attempt,
            caller: None,
        }
    }

    #[test]
    fn from_names_the_caller_as_an_authorization_policy_would() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let caller = "spiffe://cluster.local/ns/mock-1/sa/service1";
        let at = |caller| Here {
            caller,
            ..here("v1", "p", 1)
        };
        let status = |text: &str, at: Here<'_>, rng: &mut rand::rngs::StdRng| {
            set(&[(STATUS, text)]).decide(&at, rng).http_status
        };
        assert_eq!(
            status("403@from=service1", at(Some(caller)), &mut rng),
            Some(403)
        );
        assert_eq!(
            status("403@from=SERVICE1", at(Some(caller)), &mut rng),
            Some(403)
        );
        assert_eq!(
            status(&format!("403@from={caller}"), at(Some(caller)), &mut rng),
            Some(403)
        );
        assert_eq!(
            status("403@from=service2", at(Some(caller)), &mut rng),
            None
        );
        assert_eq!(
            status("403@from=service1", at(None), &mut rng),
            None,
            "no caller known"
        );
        assert_eq!(
            status(
                "403@from=spiffe://x/ns/mock-1/sa/service1",
                at(Some(caller)),
                &mut rng
            ),
            None
        );
    }

    #[test]
    fn conditions_choose_where_and_when() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let status = |text: &str, at: Here<'_>, rng: &mut rand::rngs::StdRng| {
            set(&[(STATUS, text)]).decide(&at, rng).http_status
        };
        // The first two attempts fail, the third gets through.
        let by_attempt: Vec<_> = (1..=3)
            .map(|n| status("503@first=2", here("v1", "p", n), &mut rng))
            .collect();
        assert_eq!(by_attempt, [Some(503), Some(503), None]);
        // Only v2 is sick; names compare without case.
        assert_eq!(
            status("503@version=v2", here("v2", "p", 1), &mut rng),
            Some(503)
        );
        assert_eq!(
            status("503@version=V2", here("v2", "p", 1), &mut rng),
            Some(503)
        );
        assert_eq!(status("503@version=v2", here("v1", "p", 1), &mut rng), None);
        assert_eq!(
            status("503@pod=p-7", here("v1", "p-7", 1), &mut rng),
            Some(503)
        );
        assert_eq!(
            status("503@service=ratings", here("v1", "p", 1), &mut rng),
            None
        );
        // Combined with each other and with a probability.
        let both = "503@100%@version=v2@first=1";
        assert_eq!(status(both, here("v2", "p", 1), &mut rng), Some(503));
        assert_eq!(status(both, here("v2", "p", 2), &mut rng), None);
        assert_eq!(
            status("503@0%@version=v2", here("v2", "p", 1), &mut rng),
            None
        );
        // Every directive takes them.
        let d = set(&[
            (DELAY, "5ms@version=v2"),
            (SIZE, "8@first=1"),
            (RESET, "true@version=v2"),
        ]);
        let v1 = d.decide(&here("v1", "p", 1), &mut rng);
        assert_eq!((v1.delay, v1.size), (Duration::ZERO, 8));
        assert!(v1.injected.iter().all(|i| i.kind() == "size"), "{v1:?}");
        assert!(!d.decide_reset(&here("v1", "p", 1), &mut rng));
        assert!(d.decide_reset(&here("v2", "p", 1), &mut rng));
        assert_eq!(d.texts()[0], (DELAY, "5ms@version=v2"));
    }

    #[test]
    fn bad_conditions_are_named() {
        let e = |name, text: &str| {
            Directives::default()
                .set(name, text, CAP)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(STATUS, "503@first=0"),
            "x-mock-status: \"503@first=0\": @first=0: write a count of attempts from 1 to 1000"
        );
        assert!(e(STATUS, "503@colour=red").contains("unknown condition @colour="));
        assert!(e(STATUS, "503@version=").contains("@version= names nothing"));
        assert!(e(STATUS, "503@version=v2@version=v3").contains("given twice"));
        assert!(e(STATUS, "503@version=v2@25%").contains("conditions come last"));
        assert!(e(STATUS, "700@version=v2").contains("\"700\" is not an HTTP status"));
        assert_eq!(check_directive(STATUS, "503@first=2@pod=a"), Ok(()));
    }

    #[test]
    fn headers_override_process_defaults() {
        let defaults = set(&[(STATUS, "500"), (SIZE, "10")]);
        let given = Directives::from_headers(&headers(&[(STATUS, "503")]), CAP)
            .unwrap()
            .or(&defaults);
        assert_eq!(given.status.unwrap().value.choices, vec![(503, 100.0)]);
        assert_eq!(given.size.unwrap().value, 10);
    }

    #[test]
    fn observed_rates_match_the_asked_ones() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let d = set(&[(STATUS, "503:20,404:10")]);
        let n = 100_000;
        let (mut s503, mut s404) = (0, 0);
        for _ in 0..n {
            match d.decide(&Here::ANYWHERE, &mut rng).http_status {
                Some(503) => s503 += 1,
                Some(404) => s404 += 1,
                _ => {}
            }
        }
        assert!(
            (f64::from(s503) / f64::from(n) - 0.20).abs() < 0.01,
            "{s503}"
        );
        assert!(
            (f64::from(s404) / f64::from(n) - 0.10).abs() < 0.01,
            "{s404}"
        );
    }

    #[test]
    fn ranges_stay_in_bounds_and_statuses_map() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = set(&[(DELAY, "10ms..20ms")]);
        for _ in 0..1000 {
            let delay = d.decide(&Here::ANYWHERE, &mut rng).delay;
            assert!(delay >= Duration::from_millis(10) && delay <= Duration::from_millis(20));
        }
        let http = Decision {
            http_status: Some(503),
            ..Default::default()
        };
        assert_eq!(http.grpc_code(), Some(14));
        let grpc = Decision {
            grpc_code: Some(8),
            ..Default::default()
        };
        assert_eq!(grpc.http_status(), Some(429));
        assert_eq!(grpc_code_name(14), "UNAVAILABLE");
    }
}
