//! Who answered a hop when it was not a servicemock ([`AnsweredBy`]): a
//! proxy's own reply or another server, typed by what the parts that count
//! and tally it ask (which of the two), and rendered as one text at the
//! edges: `proxy (server: envoy, x-envoy-overloaded: true)`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What made an answer that is no servicemock report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Maker {
    /// A proxy's own reply (Envoy's or HAProxy's, by their headers and
    /// words).
    Proxy,
    /// Any other server.
    Other,
    /// A text from another servicemock that names neither (kept as it
    /// came).
    Unnamed,
}

impl Maker {
    /// The word the report starts its text with (`""` for
    /// [`Maker::Unnamed`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Maker::Proxy => "proxy",
            Maker::Other => "other",
            Maker::Unnamed => "",
        }
    }
}

/// Who answered a hop when it was not a servicemock, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredBy {
    pub maker: Maker,
    /// What follows the maker's word, its separator included: what it said
    /// about itself (` (server: envoy)`), and for an answer taken by its
    /// status alone the status and a quote (`: 418 I'm a teapot`).
    pub said: String,
}

impl AnsweredBy {
    /// `maker` with what it said about itself (`server: envoy`, …).
    pub fn new(maker: Maker, said: &[String]) -> AnsweredBy {
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(" ({})", said.join(", "))
        };
        AnsweredBy { maker, said }
    }

    /// The same maker, with what its answer was (`418 I'm a teapot: "…"`).
    pub fn with_answer(self, answer: &str) -> AnsweredBy {
        AnsweredBy {
            said: format!("{}: {answer}", self.said),
            ..self
        }
    }

    /// Reads the text a report carries: its first word names the maker;
    /// a text from elsewhere that names neither is kept whole.
    pub fn parse(text: &str) -> AnsweredBy {
        for maker in [Maker::Proxy, Maker::Other] {
            if let Some(rest) = text.strip_prefix(maker.as_str()) {
                if rest.is_empty() || rest.starts_with([' ', ':']) {
                    return AnsweredBy {
                        maker,
                        said: rest.to_owned(),
                    };
                }
            }
        }
        AnsweredBy {
            maker: Maker::Unnamed,
            said: text.to_owned(),
        }
    }

    /// The maker and what it said about itself, without the answer: how an
    /// error that names the maker writes it.
    pub fn who(&self) -> String {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((who, _)) => who.to_owned(),
            None => text,
        }
    }
}

impl fmt::Display for AnsweredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.maker.as_str())?;
        f.write_str(&self.said)
    }
}

impl Serialize for AnsweredBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AnsweredBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(AnsweredBy::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_reads_back_as_it_was_written() {
        let proxy = AnsweredBy::new(Maker::Proxy, &["server: envoy".into()]);
        assert_eq!(proxy.to_string(), "proxy (server: envoy)");
        let other = AnsweredBy::new(Maker::Other, &[]).with_answer("418 I'm a teapot");
        assert_eq!(other.to_string(), "other: 418 I'm a teapot");
        assert_eq!(other.who(), "other");
        for written in [
            "proxy (server: envoy)",
            "other",
            "other: 418 I'm a teapot",
            "something else",
            "proxyish",
        ] {
            let read = AnsweredBy::parse(written);
            assert_eq!(read.to_string(), written);
            let json = serde_json::to_string(&read).unwrap();
            assert_eq!(serde_json::from_str::<AnsweredBy>(&json).unwrap(), read);
        }
        assert_eq!(AnsweredBy::parse("proxyish").maker, Maker::Unnamed);
        assert_eq!(
            AnsweredBy::parse("other (server: nginx)").maker,
            Maker::Other
        );
    }
}
