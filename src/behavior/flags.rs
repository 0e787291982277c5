//! A service's behaviour as flags give it (`--delay`, `--status`,
//! `--error-rate`, ...): the same directives a request's `x-mock-*` headers
//! ask, set for every request that asks for none. `serve`, `mesh` and the
//! versions of a topology file read them here, by one list of names.

use std::time::Duration;

use super::{Directives, DELAY, GRPC_STATUS, RESET, SIZE, STATUS};

/// Each behaviour flag (without its `--`) and the directive it sets;
/// `error-rate` sets the status directive (503, UNAVAILABLE over gRPC).
pub const FLAGS: &[(&str, &str)] = &[
    ("delay", DELAY),
    ("status", STATUS),
    ("grpc-status", GRPC_STATUS),
    ("error-rate", STATUS),
    ("size", SIZE),
    ("reset-rate", RESET),
];

/// The directives `flags` (name without `--`, value) set, delays bounded
/// by `max_delay`; a mistake names its flag.
pub fn directives(flags: &[(&str, &str)], max_delay: Duration) -> Result<Directives, String> {
    let mut d = Directives::default();
    for (flag, value) in flags {
        let Some((_, name)) = FLAGS.iter().find(|(f, _)| f == flag) else {
            let known: Vec<&str> = FLAGS.iter().map(|(f, _)| *f).collect();
            return Err(format!(
                "unknown behaviour {flag:?} (one of {})",
                known.join(", ")
            ));
        };
        let text = match *flag {
            "error-rate" => {
                let rate = percentage(value)?;
                if !(0.0..=100.0).contains(&rate) {
                    return Err(format!("--error-rate {rate}: a percentage from 0 to 100"));
                }
                // One draw: 503 over HTTP, UNAVAILABLE (its gRPC mapping)
                // over gRPC. Two draws would fail 19 % at --error-rate 10.
                format!("503@{rate}%")
            }
            // A rate is a percentage with or without its '%'.
            "reset-rate" => match value.trim().parse::<f64>() {
                Ok(_) => format!("{}%", value.trim()),
                Err(_) => (*value).to_owned(),
            },
            _ => (*value).to_owned(),
        };
        d.set(name, &text, max_delay)
            .map_err(|e| format!("--{flag}: {e}"))?;
    }
    Ok(d)
}

/// Whether `value` is a valid value of the behaviour flag `flag`.
pub fn check(flag: &str, value: &str) -> Result<(), String> {
    directives(&[(flag, value)], Duration::MAX).map(|_| ())
}

/// A percentage as people write it: `10` or `10%`.
pub fn percentage(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    number
        .parse::<f64>()
        .map_err(|_| format!("\"{text}\" is not a percentage: write e.g. 10 or 10%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_their_directives_and_name_mistakes() {
        let d = directives(
            &[("delay", "5ms"), ("error-rate", "10")],
            Duration::from_secs(1),
        );
        assert!(d.is_ok());
        assert!(check("delay", "soon").unwrap_err().starts_with("--delay"));
        assert!(check("error-rate", "200").unwrap_err().contains("0 to 100"));
        assert!(check("colour", "red").unwrap_err().contains("one of delay"));
        assert!(check("reset-rate", "5").is_ok());
    }
}
