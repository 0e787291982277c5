//! Durations and sizes as people write them (`250ms`, `1.5s`, `64KiB`),
//! read and written the same way by the CLI, the directives and the hop
//! options. Depends on nothing else in the crate.

use std::time::Duration;

/// Parses a duration written as a number and a unit: `250ms`, `1.5s`, `2m`,
/// `100us`, `1h`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a duration (write e.g. 250ms, 1.5s, 2m)"))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{text}\" (use ns, us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("\"{text}\" is out of range"))
}

/// A duration the way a person writes it: `450ms`, `9.5s`, `79.2ms`, `120us`.
pub fn human(d: Duration) -> String {
    let micros = d.as_micros();
    if micros >= 1_000_000 {
        trim_decimal(d.as_secs_f64(), "s")
    } else if micros >= 1_000 {
        trim_decimal(micros as f64 / 1000.0, "ms")
    } else {
        format!("{micros}us")
    }
}

/// One decimal at most, none when it is zero: `9.5s`, `10s`.
fn trim_decimal(value: f64, unit: &str) -> String {
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}{unit}")
}

/// A number of bytes with an optional unit (`1024`, `64KiB`, `1MB`): the
/// one reading of sizes for directives and hop options.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" | "K" | "k" => 1024,
        "MB" => 1_000_000,
        "MiB" | "M" => 1024 * 1024,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" (use B, KiB, MiB, KB or MB)"
            ))
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| "not a size (write e.g. 1024 or 64KiB)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human(Duration::from_micros(79_234)), "79.2ms");
        assert_eq!(human(Duration::from_millis(450)), "450ms");
        assert_eq!(human(Duration::from_millis(9_500)), "9.5s");
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_micros(120)), "120us");
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_bytes("1MB"), Ok(1_000_000));
        assert!(parse_bytes("1 parsec").is_err());
    }
}
