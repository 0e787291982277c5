//! Text made once and shared: a service's name, version and host are in
//! every report it writes, so a report takes them by a counter's increment
//! instead of an allocation and a copy each. Depends on nothing else in
//! the crate.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string shared by every clone. Reads as `&str` (`Deref`), compares
/// with `str` and `&str`, and is serialized as the plain string.
/// The empty string holds nothing, so a default one costs no allocation;
/// a `String` is kept as it is (no copy), behind the shared counter.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SharedStr(Option<Arc<String>>);

impl SharedStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().map_or("", String::as_str)
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for SharedStr {
    fn from(text: &str) -> SharedStr {
        SharedStr::from(text.to_owned())
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> SharedStr {
        SharedStr((!text.is_empty()).then(|| Arc::new(text)))
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SharedStr, D::Error> {
        String::deserialize(deserializer).map(SharedStr::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_text() {
        let name = SharedStr::from("reviews");
        let copy = name.clone();
        assert!(std::ptr::eq(name.as_str(), copy.as_str()), "shared");
        assert_eq!(copy, "reviews");
        assert_eq!(copy, *"reviews");
        assert_eq!(copy.len(), 7, "reads as a str");
        assert_eq!(format!("{copy} {copy:?}"), "reviews \"reviews\"");
    }

    #[test]
    fn the_empty_text_holds_nothing() {
        assert_eq!(SharedStr::default().0, None);
        assert_eq!(SharedStr::from(String::new()).0, None);
        assert_eq!(SharedStr::from(""), SharedStr::default());
        assert!(SharedStr::default().is_empty());
    }

    #[test]
    fn it_is_serialized_as_the_plain_string() {
        let name = SharedStr::from("v2 \"quoted\"");
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, r#""v2 \"quoted\"""#);
        let back: SharedStr = serde_json::from_str(&json).unwrap();
        assert_eq!(back, name);
        let empty: SharedStr = serde_json::from_str(r#""""#).unwrap();
        assert_eq!(empty.0, None);
    }
}
