//! A report received from a downstream servicemock over HTTP. It is kept as
//! the JSON text it came in: between services that text is passed on as it
//! is, at the entry it is re-indented byte by byte ([`super::pretty`]), and only someone who
//! looks at its fields (a view, the text tree, `servicemock load`) has it
//! parsed into a [`Report`], once. What the caller judges the hop by (who
//! wrote it, whether it timed out itself, how many of its hops failed) is
//! read out of the text when it arrives, without building anything: the
//! [`Gist`].

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::{InboundProtocol, Report};
use crate::guard::json::from_json_measured;

/// How a received report that cannot be parsed after all says so.
const UNREADABLE: &str = "this downstream report could not be read again";

/// A downstream's report: its text, parsed on first look.
#[derive(Default, Clone)]
pub struct Received {
    /// The JSON text, read by [`Received::read`] when it arrived; `None`
    /// for a report built here or read from a gRPC answer. Kept as the
    /// body it came in, checked to be UTF-8 once.
    text: Option<Text>,
    /// How deep the text nests at most, when it was measured (an upper
    /// bound: parsing on the stack is chosen by it).
    nesting: Option<usize>,
    pub(super) parsed: OnceLock<Box<Report>>,
}

/// UTF-8 text kept in the `Bytes` it arrived in (no copy): made only from
/// a body checked to be UTF-8 or from a `String`.
#[derive(Clone)]
struct Text(Bytes);

impl Text {
    /// `body`, once checked to be UTF-8 (SIMD, saying where as std's
    /// check does).
    fn checked(body: Bytes) -> Result<Text, simdutf8::compat::Utf8Error> {
        simdutf8::compat::from_utf8(&body)?;
        Ok(Text(body))
    }

    fn as_str(&self) -> &str {
        // SAFETY: a `Text` is made only by `checked` (UTF-8 checked) or
        // from a `String`, and its bytes are never changed.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text(Bytes::from(text))
    }
}

/// What a caller judges a downstream's hop by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gist {
    /// How the request reached the downstream.
    pub protocol: InboundProtocol,
    /// How many hops of its own report failed.
    pub failed_hops: usize,
    /// Its message, when it ran out of the time it was given itself (and so
    /// names who ran out of what).
    pub timed_out: Option<String>,
}

impl Received {
    /// A report at hand (one read from a gRPC answer) and its gist.
    pub fn judged(report: Report) -> (Received, Gist) {
        let gist = Gist {
            protocol: report.protocol,
            failed_hops: report.failed_hops(),
            timed_out: report.timed_out.then(|| report.message.clone()),
        };
        (Received::from(report), gist)
    }

    /// Reads a body as a servicemock report: JSON no deeper than any report
    /// may be, UTF-8, with the fields of a report and the name of the
    /// service that wrote it. Keeps the text; builds nothing.
    pub fn read(body: Bytes) -> Result<(Received, Gist), String> {
        let body = Text::checked(body).map_err(|e| format!("not UTF-8 text: {e}"))?;
        let text = body.as_str();
        // Its nesting is measured as it is read: no deeper than any report
        // may be (the scanner does not recurse; serde_json will, later).
        let judged = super::judged::read(text).map_err(|e| e.to_string())?;
        if !judged.names_a_service {
            return Err("it names no Service: not written by a servicemock".into());
        }
        let received = Received {
            text: Some(body),
            nesting: Some(judged.nesting),
            parsed: OnceLock::new(),
        };
        Ok((received, judged.gist))
    }

    /// The report, parsed if it was not yet.
    pub fn into_report(self) -> Report {
        let _parsed: &Report = &self;
        *self.parsed.into_inner().unwrap_or_default()
    }

    /// The text, when the report is still the text it came in.
    pub(super) fn text(&self) -> Option<&str> {
        self.text.as_ref().map(Text::as_str)
    }

    /// Whether the report has been parsed (tests of the laziness).
    #[cfg(test)]
    pub(crate) fn is_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }
}

impl Deref for Received {
    type Target = Report;

    fn deref(&self) -> &Report {
        self.parsed.get_or_init(|| {
            let Some(text) = self.text() else {
                return Box::default();
            };
            // The text was read with a report's field types when it
            // arrived, so this does not fail; were it to, the report says
            // so rather than vanish.
            Box::new(
                from_json_measured(text, self.nesting).unwrap_or_else(|e| Report {
                    message: format!("{UNREADABLE}: {e}"),
                    ..Report::default()
                }),
            )
        })
    }
}

impl From<Report> for Received {
    fn from(report: Report) -> Self {
        Received {
            text: None,
            nesting: None,
            parsed: OnceLock::from(Box::new(report)),
        }
    }
}

impl PartialEq for Received {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for Received {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.parsed.get(), self.text()) {
            (None, Some(text)) => super::serialize_json_text(text, s),
            _ => (**self).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Received {
    /// A report nested in a parsed level keeps its text in turn.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Received {
            text: Some(Text::from(String::from(Box::<str>::from(raw)))),
            nesting: None,
            parsed: OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAF: &str = r#"{"ReceivedDate":"2026-11-26T00:00:00.000000000Z","Message":"","RequestInfo":["GET / HTTP/1.1","host: c"],"Service":"c","Version":"v1","Host":"h","Protocol":"http/1.1","DurationMs":0.1,"ParallelForwards":[],"Attempt":1}"#;

    fn read(text: &str) -> Result<(Received, Gist), String> {
        Received::read(Bytes::from(text.to_owned()))
    }

    #[test]
    fn a_report_is_judged_from_its_text_and_parsed_only_when_looked_at() {
        let (received, gist) = read(LEAF).unwrap();
        assert_eq!(
            gist,
            Gist {
                protocol: InboundProtocol::Http11,
                failed_hops: 0,
                timed_out: None,
            }
        );
        assert!(!received.is_parsed());
        let compact = serde_json::to_string(&received).unwrap();
        assert_eq!(compact, LEAF, "passed on as it came");
        let pretty = super::super::pretty::to_vec(&received).unwrap();
        assert!(String::from_utf8(pretty)
            .unwrap()
            .contains("\n  \"Service\": \"c\""));
        assert!(!received.is_parsed(), "neither output parses it");
        assert_eq!(received.service, "c");
        assert_eq!(received.request_info[1], "host: c");
        assert!(received.is_parsed());
    }

    #[test]
    fn the_gist_counts_failed_hops_and_keeps_the_message_of_its_own_timeout() {
        let text = LEAF
            .replace(r#""Message":"""#, r#""Message":"c ran out of 50ms","TimedOut":true"#)
            .replace(
                r#""ParallelForwards":[]"#,
                r#""ParallelForwards":[{"SequentialForwards":[{"Url":"http://d/","Result":"ok"},{"Url":"http://e/","Result":"status","Error":"answered 503"}]},{"SequentialForwards":[{"Url":"http://f/","Result":"dns","Error":"x","Response":{"Service":"f","ParallelForwards":[{"SequentialForwards":[{"Error":"deeper"}]}]}}]}]"#,
            );
        let (_, gist) = read(&text).unwrap();
        assert_eq!(gist.failed_hops, 2, "this level's hops, not deeper ones");
        assert_eq!(gist.timed_out.as_deref(), Some("c ran out of 50ms"));
    }

    #[test]
    fn a_body_that_is_not_a_report_is_named_as_such() {
        let wrong_type = LEAF.replace(r#""Attempt":1"#, r#""Attempt":"one""#);
        let wrong_list = LEAF.replace(r#""RequestInfo":["#, r#""RequestInfo":[7,"#);
        let wrong_word = LEAF.replace("http/1.1", "carrier pigeon");
        let nameless = LEAF.replace(r#""Service":"c""#, r#""Service":"""#);
        for (text, says) in [
            (wrong_type.as_str(), "invalid type"),
            (&wrong_list, "invalid type"),
            (&wrong_word, "unknown inbound protocol"),
            (&nameless, "names no Service"),
            ("[1,2]", "invalid type"),
            ("{\"Service\":\"c\"", "EOF"),
        ] {
            let why = read(text)
                .err()
                .unwrap_or_else(|| panic!("{text} was read"));
            assert!(why.contains(says), "{text}: {why}");
        }
        let mut latin1 = LEAF.replace(r#""Host":"h""#, r#""Host":"h?""#).into_bytes();
        let at = latin1.iter().position(|&b| b == b'?').unwrap();
        latin1[at] = 0xe9;
        let why = Received::read(Bytes::from(latin1)).err().unwrap();
        assert!(
            why.starts_with("not UTF-8 text: invalid utf-8 sequence"),
            "{why}"
        );
        // Nested as deep as any report may be, and one level deeper.
        use crate::guard::json::MAX_REPORT_NESTING;
        let nested = |levels: usize| {
            let inner = levels - 1;
            let value = format!("{}{}", "[".repeat(inner), "]".repeat(inner));
            LEAF.replace(r#""Attempt":1"#, &format!(r#""Attempt":1,"Later":{value}"#))
        };
        let (deepest, _) = read(&nested(MAX_REPORT_NESTING)).unwrap();
        assert_eq!(deepest.nesting, Some(MAX_REPORT_NESTING));
        let why = read(&nested(MAX_REPORT_NESTING + 1)).unwrap_err();
        assert!(why.starts_with("nested deeper than"), "{why}");
    }
}
