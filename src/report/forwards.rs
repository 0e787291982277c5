//! The hop groups of a report ([`Forwards`]), kept as the raw JSON they
//! arrived in until someone looks at them.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Forward, Outcome, ParallelForward};
use crate::guard::json::from_json_unbounded;

/// The hop groups of a report. A report received from downstream keeps its
/// groups as the raw JSON they came in until someone looks at them, so a
/// service in the middle of a deep tree passes the subtree on without
/// parsing and re-encoding it; looking (`Deref`) parses once.
#[derive(Default, Clone)]
pub struct Forwards {
    pub(super) raw: Option<Box<RawValue>>,
    pub(super) parsed: OnceLock<Vec<ParallelForward>>,
}

impl Forwards {
    /// Parses every level below, so the whole tree serializes from parsed
    /// values (pretty output then indents all of it).
    pub fn expand(&self) {
        for forward in self.iter().flat_map(|g| g.sequential_forwards.iter()) {
            if let Some(child) = &forward.response {
                child.parallel_forwards.expand();
            }
        }
    }

    /// How many hops of these groups carry an `Error`, read from the raw
    /// text when the groups were not parsed (hops with an error, nothing
    /// built); groups of another shape are parsed, and so counted as the
    /// failed hop [`Deref`] makes of them.
    pub(super) fn failed(&self) -> usize {
        if let (None, Some(raw)) = (self.parsed.get(), &self.raw) {
            if let Ok(failed) = super::judged::failed_hops(raw.get()) {
                return failed;
            }
        }
        self.iter()
            .flat_map(|g| &g.sequential_forwards)
            .filter(|f| f.error.is_some())
            .count()
    }
}

impl Deref for Forwards {
    type Target = Vec<ParallelForward>;

    fn deref(&self) -> &Vec<ParallelForward> {
        // A leaf's: no hops, nothing to make (its cell is never set).
        static NONE: Vec<ParallelForward> = Vec::new();
        if let (None, None) = (self.parsed.get(), &self.raw) {
            return &NONE;
        }
        self.parsed.get_or_init(|| {
            let Some(raw) = &self.raw else {
                return Vec::new();
            };
            // The raw text was checked to be JSON, and no deeper than a
            // report may be, when it arrived; groups of another shape are
            // shown as one failed hop, never dropped silently.
            from_json_unbounded(raw.get()).unwrap_or_else(|e| {
                vec![ParallelForward {
                    sequential_forwards: vec![Forward {
                        result: Outcome::BadAnswer,
                        error: Some(format!(
                            "the downstream's ParallelForwards are not servicemock's shape: {e}"
                        )),
                        ..Forward::default()
                    }],
                }]
            })
        })
    }
}

impl From<Vec<ParallelForward>> for Forwards {
    fn from(groups: Vec<ParallelForward>) -> Self {
        Forwards {
            raw: None,
            parsed: OnceLock::from(groups),
        }
    }
}

impl FromIterator<ParallelForward> for Forwards {
    fn from_iter<I: IntoIterator<Item = ParallelForward>>(iter: I) -> Self {
        Forwards::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl PartialEq for Forwards {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Forwards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for Forwards {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.parsed.get(), &self.raw) {
            (Some(parsed), _) => parsed.serialize(s),
            (None, Some(raw)) => raw.serialize(s),
            (None, None) => s.collect_seq(std::iter::empty::<ParallelForward>()),
        }
    }
}

impl<'de> Deserialize<'de> for Forwards {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Forwards {
            raw: Some(Box::<RawValue>::deserialize(d)?),
            parsed: OnceLock::new(),
        })
    }
}
