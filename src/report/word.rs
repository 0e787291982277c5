//! Serde for the enums a report shows as one word (`ok`, `grpc`,
//! `http/1.1`): written as the word, read back strictly, so a report from
//! another servicemock keeps its meaning and a foreign word is an error
//! rather than a guess.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error, Visitor};
use serde::{Deserializer, Serializer};

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

/// Reads the word where it lies in the text (no copy), unless escapes
/// make it a new string.
pub(crate) fn deserialize<'de, T: Word, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    struct Named<T>(PhantomData<T>);
    impl<T: Word> Visitor<'_> for Named<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a {} word", T::WHAT)
        }
        fn visit_str<E: Error>(self, word: &str) -> Result<T, E> {
            T::from_word(word).ok_or_else(|| E::custom(format!("unknown {} {word:?}", T::WHAT)))
        }
    }
    d.deserialize_str(Named(PhantomData))
}

/// The same for an optional word (absent, or `null`, is `None`).
pub(crate) mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Word;

    pub(crate) fn serialize<T: Word, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(word) => s.serialize_str(word.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, T: Word, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        struct Read<T>(T);
        impl<'de, T: Word> Deserialize<'de> for Read<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::deserialize(d).map(Read)
            }
        }
        Ok(Option::<Read<T>>::deserialize(d)?.map(|Read(word)| word))
    }
}
