//! `--expect`: the shares a run should show, tested against the observed
//! ones with Pearson's chi-square goodness-of-fit test at a stated
//! confidence, with a Wilson score interval for each share.
//!
//! Syntax: `[PLACE.]FIELD=VALUE:SHARE,VALUE:SHARE…` where PLACE is a
//! position (`1.1`) or a name (the host a hop called, or the service that
//! answered; default: the target, position `1`), FIELD one of `version`,
//! `pod`, `service`, `status`, `result`, `attempt`, and the shares are
//! percentages adding up to 100: `service2.version=v1:90,v2:10`,
//! `status=200:90,503:10`.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

use super::tally::{Counts, PositionTally, Tally};

/// Fewest answers each expected value must be due for the chi-square test
/// to be trusted (the usual rule of thumb).
pub const MIN_EXPECTED: f64 = 5.0;

/// One `--expect`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// As written, for the report.
    pub text: String,
    pub place: String,
    pub field: String,
    /// Values and their expected shares (0..=1).
    pub shares: Vec<(String, f64)>,
}

impl Expectation {
    /// Reads one `--expect`, naming what is wrong.
    pub fn parse(text: &str) -> Result<Expectation, String> {
        let bad = |problem: String| format!("--expect {text:?}: {problem}");
        let (key, dist) = text.split_once('=').ok_or_else(|| {
            bad("write [PLACE.]FIELD=VALUE:SHARE,… e.g. service2.version=v1:90,v2:10".into())
        })?;
        let (place, field) = match key.trim().rsplit_once('.') {
            Some((place, field)) => (place.trim().to_owned(), field.trim().to_owned()),
            None => ("1".to_owned(), key.trim().to_owned()),
        };
        if !PositionTally::FIELDS.contains(&field.as_str()) {
            return Err(bad(format!(
                "unknown field {field:?} (one of {})",
                PositionTally::FIELDS.join(", ")
            )));
        }
        if place.is_empty() {
            return Err(bad("the place before the field is empty".into()));
        }
        let mut shares = Vec::new();
        for item in dist.split(',').map(str::trim) {
            let (value, share) = item
                .rsplit_once(':')
                .ok_or_else(|| bad(format!("{item:?} needs a share: VALUE:PERCENT")))?;
            let share = share
                .trim()
                .trim_end_matches('%')
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=100.0).contains(s))
                .ok_or_else(|| bad(format!("{share:?} is not a percentage from 0 to 100")))?;
            if shares.iter().any(|(v, _)| v == value.trim()) {
                return Err(bad(format!("{value:?} is given twice")));
            }
            // gRPC codes by number (0 to 16, never an HTTP status) as the
            // tally names them.
            let value = match value.trim().parse::<i32>() {
                Ok(code) if field == "status" && (0..=16).contains(&code) => {
                    crate::codes::grpc_code_name(code).to_owned()
                }
                _ => value.trim().to_owned(),
            };
            shares.push((value, share / 100.0));
        }
        let total: f64 = shares.iter().map(|(_, s)| s).sum();
        if (total - 1.0).abs() > 1e-6 {
            let total = format!("{:.2}", total * 100.0);
            let total = total.trim_end_matches('0').trim_end_matches('.');
            return Err(bad(format!("the shares add up to {total}, not 100")));
        }
        Ok(Expectation {
            text: text.to_owned(),
            place,
            field,
            shares,
        })
    }

    /// Tests the run against this expectation at `confidence` (0..1).
    pub fn judge(&self, tally: &Tally, confidence: f64) -> Judgement {
        let mut observed = Counts::new();
        for (_, position) in tally.positions_named(&self.place) {
            if let Some(counts) = position.field(&self.field) {
                for (value, n) in counts {
                    *observed.entry(value.clone()).or_default() += n;
                }
            }
        }
        let n: u64 = observed.values().sum();
        let z = Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
        let mut values: Vec<ValueJudgement> = self
            .shares
            .iter()
            .map(|(value, expected)| {
                let seen = observed.get(value).copied().unwrap_or(0);
                ValueJudgement::new(value, seen, n, *expected, z)
            })
            .collect();
        // Values nobody expected: each is a failure in itself.
        for (value, seen) in &observed {
            if !self.shares.iter().any(|(v, _)| v == value) {
                values.push(ValueJudgement::new(value, *seen, n, 0.0, z));
            }
        }
        let mut judgement = Judgement {
            expect: self.text.clone(),
            answers: n,
            confidence,
            values,
            chi_square: None,
            p_value: None,
            verdict: Verdict::Pass,
            problem: None,
        };
        if n == 0 {
            judgement.verdict = Verdict::CannotJudge;
            judgement.problem = Some(format!(
                "no answers at {:?} (positions: {})",
                self.place,
                tally
                    .positions
                    .iter()
                    .map(|(k, p)| format!("{k} {}", p.target))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return judgement;
        }
        let unexpected: Vec<&ValueJudgement> = judgement
            .values
            .iter()
            .filter(|v| v.expected == 0.0 && v.count > 0)
            .collect();
        if !unexpected.is_empty() {
            judgement.verdict = Verdict::Fail;
            judgement.problem = Some(format!(
                "seen, not expected at all: {}",
                unexpected
                    .iter()
                    .map(|v| format!("{} ({})", v.value, v.count))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return judgement;
        }
        let expected: Vec<&(String, f64)> = self.shares.iter().filter(|(_, s)| *s > 0.0).collect();
        let smallest = expected
            .iter()
            .map(|(_, s)| *s)
            .fold(f64::INFINITY, f64::min);
        if expected.len() > 1 && (n as f64) * smallest < MIN_EXPECTED {
            judgement.verdict = Verdict::CannotJudge;
            judgement.problem = Some(format!(
                "too few answers to judge: {n}; with a {:.1} % share expected, at least {} are needed (every value due {MIN_EXPECTED} times)",
                smallest * 100.0,
                (MIN_EXPECTED / smallest).ceil() as u64
            ));
            return judgement;
        }
        if expected.len() <= 1 {
            // One value expected and nothing else seen: nothing to test.
            return judgement;
        }
        let statistic: f64 = expected
            .iter()
            .map(|(value, share)| {
                let e = n as f64 * share;
                let o = observed.get(value).copied().unwrap_or(0) as f64;
                (o - e).powi(2) / e
            })
            .sum();
        let freedom = (expected.len() - 1) as f64;
        let p = ChiSquared::new(freedom).map_or(0.0, |d| d.sf(statistic));
        judgement.chi_square = Some(statistic);
        judgement.p_value = Some(p);
        if p < 1.0 - confidence {
            judgement.verdict = Verdict::Fail;
            judgement.problem = Some(format!(
                "the observed shares differ from the expected ones (p = {p:.2e} < {:.2})",
                1.0 - confidence
            ));
        }
        judgement
    }
}

/// The outcome of one expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Too few answers (or none) to say.
    CannotJudge,
}

/// One expectation, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub expect: String,
    pub answers: u64,
    pub confidence: f64,
    pub values: Vec<ValueJudgement>,
    pub chi_square: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: Verdict,
    pub problem: Option<String>,
}

/// One value: how often it was seen and expected, with the interval its
/// observed share has at the stated confidence.
#[derive(Debug, Clone, Serialize)]
pub struct ValueJudgement {
    pub value: String,
    pub count: u64,
    pub observed: f64,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
}

impl ValueJudgement {
    fn new(value: &str, count: u64, n: u64, expected: f64, z: f64) -> ValueJudgement {
        let (low, high) = wilson(count, n, z);
        ValueJudgement {
            value: value.to_owned(),
            count,
            observed: if n == 0 { 0.0 } else { count as f64 / n as f64 },
            expected,
            low,
            high,
        }
    }
}

/// The Wilson score interval of `k` successes in `n` at `z`.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Requests a split needs so that each share's interval is within
/// `tolerance` (0..1) at `confidence`: n = z² p(1−p) / tolerance², for the
/// share nearest one half.
pub fn requests_needed(shares: &[f64], tolerance: f64, confidence: f64) -> u64 {
    let z = Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let worst = shares.iter().map(|p| p * (1.0 - p)).fold(0.0, f64::max);
    (z * z * worst / (tolerance * tolerance)).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Protocol;
    use crate::report::{Forward, Outcome, Report};
    use std::time::Duration;

    /// A tally of `n` calls to `service2` answered by v1 or v2 as `pick` says.
    fn split(n: u64, v2_every: u64) -> Tally {
        let mut tally = Tally::default();
        for i in 0..n {
            let version = if v2_every > 0 && i % v2_every == 0 {
                "v2"
            } else {
                "v1"
            };
            let call = Forward {
                url: "http://service2:8080/".into(),
                result: Outcome::Ok,
                protocol: Protocol::Http,
                status: Some(200),
                response: Some(
                    Report {
                        service: "service2".into(),
                        version: version.into(),
                        attempt: 1,
                        ..Report::default()
                    }
                    .into(),
                ),
                ..Forward::default()
            };
            tally.record(&call, Duration::from_micros(100));
        }
        tally
    }

    #[test]
    fn a_90_10_split_passes_its_expectation_and_fails_50_50() {
        let tally = split(1000, 10);
        let e = Expectation::parse("service2.version=v1:90,v2:10").unwrap();
        let j = e.judge(&tally, 0.99);
        assert_eq!(j.verdict, Verdict::Pass, "{j:#?}");
        assert!(j.values[1].low < 0.10 && 0.10 < j.values[1].high, "{j:#?}");
        let j = Expectation::parse("service2.version=v1:50,v2:50")
            .unwrap()
            .judge(&tally, 0.99);
        assert_eq!(j.verdict, Verdict::Fail, "{j:#?}");
        // By position too, and the status of the call.
        let j = Expectation::parse("1.version=v1:90,v2:10")
            .unwrap()
            .judge(&tally, 0.99);
        assert_eq!(j.verdict, Verdict::Pass);
        let j = Expectation::parse("status=200:100")
            .unwrap()
            .judge(&tally, 0.99);
        assert_eq!(j.verdict, Verdict::Pass, "{j:#?}");
    }

    #[test]
    fn small_samples_and_surprises_are_named() {
        let j = Expectation::parse("service2.version=v1:90,v2:10")
            .unwrap()
            .judge(&split(20, 10), 0.99);
        assert_eq!(j.verdict, Verdict::CannotJudge);
        assert!(j.problem.unwrap().contains("at least 50 are needed"));
        let j = Expectation::parse("version=v1:100")
            .unwrap()
            .judge(&split(100, 10), 0.99);
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.problem.unwrap().contains("v2 (10)"));
        let j = Expectation::parse("nowhere.version=v1:100")
            .unwrap()
            .judge(&split(10, 0), 0.99);
        assert_eq!(j.verdict, Verdict::CannotJudge);
    }

    #[test]
    fn bad_expectations_say_why() {
        let e = |t: &str| Expectation::parse(t).unwrap_err();
        assert!(e("version").contains("write [PLACE.]FIELD"));
        assert!(e("colour=red:100").contains("unknown field \"colour\""));
        assert!(e("version=v1:90,v2:20").contains("add up to 110, not 100"));
        assert!(
            e("version=v1:33.3,v2:33.3,v3:33.3").contains("add up to 99.9, not 100"),
            "{}",
            e("version=v1:33.3,v2:33.3,v3:33.3")
        );
        assert!(e("version=v1").contains("needs a share"));
        assert!(e("version=v1:x").contains("not a percentage"));
    }

    #[test]
    fn sample_sizes_follow_the_formula() {
        // 90/10 within ±3 points at 99 %: 2.576² × 0.09 / 0.0009 ≈ 664.
        assert_eq!(requests_needed(&[0.9, 0.1], 0.03, 0.99), 664);
        // 50/50 within ±5 points at 95 %: 1.96² × 0.25 / 0.0025 ≈ 385.
        assert_eq!(requests_needed(&[0.5, 0.5], 0.05, 0.95), 385);
    }
}
