//! The values of the directives and how they are written: durations and
//! ranges, weighted lists (`503:20,404:10`), probabilities (`503@25%`),
//! gRPC codes by name or number, sizes, reset rates.

use std::fmt;
use std::time::Duration;

use rand::Rng;

use crate::codes::GRPC_CODES;
use crate::units::parse_duration;

use super::{DELAY, GRPC_STATUS, RESET, SIZE, STATUS};

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
    pub(super) fn draw(self, rng: &mut impl Rng) -> Duration {
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

pub(super) fn error(
    header: &'static str,
    value: &str,
    problem: impl fmt::Display,
) -> DirectiveError {
    DirectiveError {
        header,
        value: value.to_owned(),
        problem: problem.to_string(),
    }
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
pub(super) fn grpc_code(v: &str) -> Result<i32, String> {
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
