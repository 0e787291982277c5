//! Directives for streams (CallStream, Converse): end a stream after N
//! messages, with a reset (`x-mock-stream-reset: true@after=3`) or with a
//! chosen status (`x-mock-stream-status: UNAVAILABLE@after=3`) — what a
//! proxy's `stream_idle_timeout` or a crashing pod does to a stream the
//! client thought was fine. The grammar of the other directives, with a
//! condition of their own (`@after=N`, required) beside the usual ones
//! (`@service=`, `@version=`, `@pod=`, `@from=`). A request that is no
//! stream is refused when it carries one (nothing is ignored silently).

use http::HeaderMap;

use super::{error, grpc_code, grpc_code_name, DirectiveError, Here, Only};

pub const STREAM_RESET: &str = "x-mock-stream-reset";
pub const STREAM_STATUS: &str = "x-mock-stream-status";

/// Every stream directive, for messages that list them.
pub const STREAM_DIRECTIVES: [&str; 2] = [STREAM_RESET, STREAM_STATUS];

/// Most messages a stream directive may wait for, and a stream may carry
/// (`count` of a CallStream).
pub const MAX_STREAM_MESSAGES: u32 = 10_000;

/// How a directive ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The HTTP/2 stream is reset (RST_STREAM), no status.
    Reset,
    /// The stream ends with this gRPC code.
    Status(i32),
}

/// One stream directive: how it ends the stream, after how many messages,
/// and where it applies.
#[derive(Debug, Clone, PartialEq)]
struct After {
    end: StreamEnd,
    after: u32,
    only: Only,
}

/// The stream directives a request carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamDirectives {
    reset: Option<After>,
    status: Option<After>,
}

impl StreamDirectives {
    /// Reads `x-mock-stream-*` from a stream's request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<StreamDirectives, DirectiveError> {
        let mut d = StreamDirectives::default();
        for name in STREAM_DIRECTIVES {
            if let Some(value) = headers.get(name) {
                let text = value.to_str().map_err(|_| DirectiveError {
                    header: name,
                    value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    problem: "not ASCII text".into(),
                })?;
                d.set(name, text)?;
            }
        }
        Ok(d)
    }

    /// Sets stream directive `name` from its text.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), DirectiveError> {
        let text = text.trim();
        let header = STREAM_DIRECTIVES
            .into_iter()
            .find(|d| d.eq_ignore_ascii_case(name))
            .ok_or_else(|| DirectiveError {
                header: "directive",
                value: name.to_owned(),
                problem: format!(
                    "unknown stream directive (known: {})",
                    STREAM_DIRECTIVES.join(", ")
                ),
            })?;
        let (rest, after) = split_after(header, text)?;
        let (value, only) = Only::split(header, &rest)?;
        if only.first.is_some() {
            return Err(error(
                header,
                text,
                "@first= counts attempts of a request; a stream directive counts messages (@after=N)",
            ));
        }
        if header == STREAM_RESET {
            if !value.eq_ignore_ascii_case("true") {
                return Err(error(
                    header,
                    text,
                    format!("\"{value}\": write true@after=N"),
                ));
            }
            self.reset = Some(After {
                end: StreamEnd::Reset,
                after,
                only,
            });
        } else {
            let code = grpc_code(value).map_err(|problem| error(header, text, problem))?;
            self.status = Some(After {
                end: StreamEnd::Status(code),
                after,
                only,
            });
        }
        Ok(())
    }

    /// Whether any stream directive is set.
    pub fn is_empty(&self) -> bool {
        self.reset.is_none() && self.status.is_none()
    }

    /// How the stream ends once `sent` messages have gone out `here`, if a
    /// directive says so now (the one with the smaller count first; a
    /// reset before a status at the same count).
    pub fn end_after(&self, sent: u32, here: &Here<'_>) -> Option<StreamEnd> {
        [&self.reset, &self.status]
            .into_iter()
            .flatten()
            .filter(|d| d.after <= sent && d.only.admits(here))
            .min_by_key(|d| d.after)
            .map(|d| d.end)
    }

    /// What the directives say, for the message a stream ends with.
    pub fn describe(end: StreamEnd, sent: u32) -> String {
        match end {
            StreamEnd::Reset => format!("{STREAM_RESET} reset the stream after {sent} message(s)"),
            StreamEnd::Status(code) => format!(
                "{STREAM_STATUS} ended the stream with {} after {sent} message(s)",
                grpc_code_name(code)
            ),
        }
    }
}

/// Takes the required `@after=N` off a stream directive's text.
fn split_after(header: &'static str, text: &str) -> Result<(String, u32), DirectiveError> {
    let mut after = None;
    let mut kept = Vec::new();
    for (i, part) in text.split('@').enumerate() {
        match part.trim().split_once('=') {
            Some(("after", n)) if i > 0 => {
                let n = n
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_STREAM_MESSAGES).contains(n))
                    .ok_or_else(|| {
                        error(
                            header,
                            text,
                            format!(
                                "@after={}: write a count of messages from 1 to {MAX_STREAM_MESSAGES}",
                                n.trim()
                            ),
                        )
                    })?;
                if after.replace(n).is_some() {
                    return Err(error(header, text, "@after is given twice"));
                }
            }
            _ => kept.push(part),
        }
    }
    let after = after.ok_or_else(|| {
        error(
            header,
            text,
            "say after how many messages: e.g. UNAVAILABLE@after=3",
        )
    })?;
    Ok((kept.join("@"), after))
}

/// Checks a stream directive's value where it is written (a hop's headers).
pub fn check(name: &str, value: &str) -> Result<(), String> {
    StreamDirectives::default()
        .set(name, value)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> Here<'static> {
        Here {
            service: "a",
            version: "v2",
            pod: "a-1",
            attempt: 1,
            caller: None,
        }
    }

    #[test]
    fn a_stream_ends_after_the_count_it_was_given() {
        let mut d = StreamDirectives::default();
        d.set(STREAM_STATUS, "UNAVAILABLE@after=3").unwrap();
        assert_eq!(d.end_after(2, &here()), None);
        assert_eq!(d.end_after(3, &here()), Some(StreamEnd::Status(14)));
        d.set(STREAM_RESET, "true@after=2@version=v2").unwrap();
        assert_eq!(d.end_after(2, &here()), Some(StreamEnd::Reset));
        d.set(STREAM_RESET, "true@after=2@version=v1").unwrap();
        assert_eq!(d.end_after(2, &here()), None, "only on v1");
    }

    #[test]
    fn mistakes_say_what_to_write() {
        let e = |name, text| check(name, text).unwrap_err();
        assert!(e(STREAM_STATUS, "UNAVAILABLE").contains("e.g. UNAVAILABLE@after=3"));
        assert!(e(STREAM_STATUS, "NOPE@after=1").contains("not a gRPC code"));
        assert!(e(STREAM_STATUS, "14@after=0").contains("from 1 to 10000"));
        assert!(e(STREAM_RESET, "yes@after=2").contains("write true@after=N"));
        assert!(e(STREAM_RESET, "true@after=2@first=1").contains("counts messages"));
        assert!(e(STREAM_RESET, "true@after=2@after=3").contains("twice"));
        assert!(check(STREAM_STATUS, "4@after=10000@service=a").is_ok());
    }
}
