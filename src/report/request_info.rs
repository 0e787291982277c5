//! A report's `RequestInfo`: the request as its service received it, the
//! request line then `name: value` per header. A service's own report keeps
//! the request's header map (shared with the request, not copied) and its
//! JSON is written from it ([`super::write`]); the lines as strings are made
//! only when somebody reads them so (the tree view, a gRPC answer, tests),
//! once. A report read from elsewhere has its lines only.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use http::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The request line and headers a service received, as lines.
#[derive(Default, Clone)]
pub struct RequestInfo {
    /// The request line and headers this service received, when the report
    /// is its own.
    received: Option<(String, Arc<HeaderMap>)>,
    /// The lines: given (a report read from elsewhere), or made from
    /// `received` when first read as lines.
    lines: OnceLock<Vec<String>>,
}

impl RequestInfo {
    /// The request this service received: `line` (e.g. `GET /end HTTP/1.1`)
    /// and its `headers`, shared.
    pub fn received(line: String, headers: Arc<HeaderMap>) -> RequestInfo {
        RequestInfo {
            received: Some((line, headers)),
            lines: OnceLock::new(),
        }
    }

    /// The request line and headers it was made from, when the report is
    /// this service's own: what the JSON writer writes its lines from.
    pub(crate) fn head(&self) -> Option<(&str, &HeaderMap)> {
        self.received
            .as_ref()
            .map(|(line, headers)| (line.as_str(), &**headers))
    }
}

impl Deref for RequestInfo {
    type Target = [String];

    fn deref(&self) -> &[String] {
        self.lines.get_or_init(|| match &self.received {
            Some((line, headers)) => {
                let mut lines = Vec::with_capacity(headers.len() + 1);
                lines.push(line.clone());
                lines.extend(headers.iter().map(|(name, value)| header_line(name, value)));
                lines
            }
            None => Vec::new(),
        })
    }
}

/// `name: value`, a header as a line of `RequestInfo`.
pub(crate) fn header_line(name: &http::HeaderName, value: &http::HeaderValue) -> String {
    let value = header_text(value.as_bytes());
    let mut line = String::with_capacity(name.as_str().len() + 2 + value.len());
    line.push_str(name.as_str());
    line.push_str(": ");
    line.push_str(&value);
    line
}

/// A header value as text. Values are nearly always ASCII, checked a word
/// at a time (`str::from_utf8` spends about a hundred instructions on a
/// value of a few dozen bytes); one with other bytes is read lossily.
pub(crate) fn header_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are UTF-8.
        std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        String::from_utf8_lossy(bytes)
    }
}

impl From<Vec<String>> for RequestInfo {
    fn from(lines: Vec<String>) -> RequestInfo {
        RequestInfo {
            received: None,
            lines: OnceLock::from(lines),
        }
    }
}

impl PartialEq for RequestInfo {
    fn eq(&self, other: &RequestInfo) -> bool {
        **self == **other
    }
}

impl fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for RequestInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for RequestInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RequestInfo, D::Error> {
        Vec::<String>::deserialize(deserializer).map(RequestInfo::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Arc<HeaderMap> {
        let mut headers = HeaderMap::new();
        headers.insert("host", "b:8080".parse().unwrap());
        headers.append("x-team", "blue".parse().unwrap());
        headers.append("x-team", "green \"g\"".parse().unwrap());
        let odd = http::HeaderValue::from_bytes(b"caf\xe9").unwrap();
        headers.insert("x-odd", odd);
        Arc::new(headers)
    }

    #[test]
    fn header_values_read_as_text_whatever_their_bytes() {
        assert_eq!(header_text(b"curl/8.5.0"), "curl/8.5.0");
        assert_eq!(header_text(b""), "");
        assert_eq!(header_text("caf\u{e9} ok".as_bytes()), "caf\u{e9} ok");
        assert_eq!(header_text(b"obs-text \xe9 here"), "obs-text \u{fffd} here");
    }

    #[test]
    fn lines_are_made_from_the_head_as_it_came() {
        let info = RequestInfo::received("GET /end HTTP/1.1".into(), head());
        assert_eq!(
            &*info,
            [
                "GET /end HTTP/1.1",
                "host: b:8080",
                "x-team: blue",
                "x-team: green \"g\"",
                "x-odd: caf\u{fffd}",
            ]
        );
        assert!(info.head().is_some());
    }

    #[test]
    fn made_and_given_lines_are_equal_and_serialize_alike() {
        let made = RequestInfo::received("GET /end HTTP/1.1".into(), head());
        let given = RequestInfo::from(made.to_vec());
        assert_eq!(made, given);
        assert!(given.head().is_none());
        let json = serde_json::to_string(&made).unwrap();
        assert_eq!(json, serde_json::to_string(&given).unwrap());
        let read: RequestInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(read, made);
    }
}
