//! Serde for the enums a report shows as one word (`ok`, `grpc`,
//! `http/1.1`): written as the word, read back strictly, so a report from
//! another servicemock keeps its meaning and a foreign word is an error
//! rather than a guess.

use std::borrow::Cow;

use serde::de::Error;
use serde::{Deserialize, Deserializer, Serializer};

/// An enum with one word per variant.
pub(crate) trait Word: Sized + Copy {
    /// What the word names, for errors: `hop result`.
    const WHAT: &'static str;
    fn as_str(self) -> &'static str;
    fn from_word(word: &str) -> Option<Self>;
}

pub(crate) fn serialize<T: Word, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.as_str())
}

pub(crate) fn deserialize<'de, T: Word, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    let word = Cow::<str>::deserialize(d)?;
    T::from_word(&word).ok_or_else(|| D::Error::custom(format!("unknown {} {word:?}", T::WHAT)))
}
