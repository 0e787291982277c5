//! Where and when a directive takes effect: the conditions written after
//! its value (`@version=`, `@first=`, `@pod=`, `@service=`, `@from=`) and
//! the service answering they are checked against.

use std::fmt;

use super::values::{error, DirectiveError};

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
    pub(super) fn split<'t>(
        header: &'static str,
        text: &'t str,
    ) -> Result<(&'t str, Only), DirectiveError> {
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
