//! What a plan's checks measure of it, kept once measured: a plan kept by
//! [`super::recent`] is run by every request that asks its path, and each
//! of those checked its size (a walk of every call) three or four times,
//! its depth once and the padding its hops ask for once. Kept in the plan itself, so a hop's sub-plan is measured
//! once too.
//!
//! Never copied and never compared: a clone of a plan starts unmeasured, so
//! a copy changed after it was made (as the default cascade's remainder
//! is) is measured as it is, and two plans are equal whatever either one
//! has measured.

use std::fmt;
use std::sync::OnceLock;

#[derive(Default)]
pub(super) struct Measures {
    /// The first count taken: the limit it was taken under, and the count
    /// (`None`: past that limit).
    calls: OnceLock<(usize, Option<usize>)>,
    depth: OnceLock<usize>,
    padding: OnceLock<usize>,
}

impl Measures {
    /// The calls of the plan, as `count` (under `limit`) counts them: the
    /// kept count when it answers for `limit`, else counted (and kept, when
    /// none was).
    #[inline]
    pub(super) fn calls(
        &self,
        limit: usize,
        count: impl FnOnce(usize) -> Option<usize>,
    ) -> Option<usize> {
        match self.calls.get() {
            Some(&(_, Some(calls))) => (calls <= limit).then_some(calls),
            // Past a limit at least as large: past this one too.
            Some(&(kept, None)) if limit <= kept => None,
            Some(_) => count(limit),
            None => {
                let calls = count(limit);
                let _ = self.calls.set((limit, calls));
                calls
            }
        }
    }

    /// The plan's depth, measured by `measure` the first time.
    #[inline]
    pub(super) fn depth(&self, measure: impl FnOnce() -> usize) -> usize {
        *self.depth.get_or_init(measure)
    }

    /// The padding the plan's hops ask for, measured by `measure` the
    /// first time.
    #[inline]
    pub(super) fn padding(&self, measure: impl FnOnce() -> usize) -> usize {
        *self.padding.get_or_init(measure)
    }
}

impl Clone for Measures {
    fn clone(&self) -> Self {
        Measures::default()
    }
}

impl PartialEq for Measures {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Measures {}

impl fmt::Debug for Measures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Measures")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A count of a plan of `calls` calls, each taken counted in `counted`.
    fn counting(calls: usize, counted: &Cell<usize>) -> impl Fn(usize) -> Option<usize> + '_ {
        move |limit| {
            counted.set(counted.get() + 1);
            (calls <= limit).then_some(calls)
        }
    }

    #[test]
    fn a_count_is_taken_once_and_answers_every_limit_it_can() {
        let measures = Measures::default();
        let counted = Cell::new(0);
        let count = counting(7, &counted);
        assert_eq!(measures.calls(100, &count), Some(7));
        assert_eq!(measures.calls(7, &count), Some(7));
        assert_eq!(measures.calls(6, &count), None);
        assert_eq!(measures.calls(usize::MAX, &count), Some(7));
        assert_eq!(counted.get(), 1);
    }

    #[test]
    fn a_count_past_its_limit_is_taken_again_under_a_larger_one() {
        let measures = Measures::default();
        let counted = Cell::new(0);
        let count = counting(50, &counted);
        assert_eq!(measures.calls(10, &count), None);
        assert_eq!(measures.calls(5, &count), None, "smaller: known past it");
        assert_eq!(counted.get(), 1);
        assert_eq!(measures.calls(60, &count), Some(50), "larger: counted");
        assert_eq!(counted.get(), 2);
    }

    #[test]
    fn a_copy_starts_unmeasured_and_equals_its_original() {
        let measures = Measures::default();
        assert_eq!(measures.depth(|| 3), 3);
        assert_eq!(measures.depth(|| 9), 3, "kept");
        let copy = measures.clone();
        assert_eq!(copy.depth(|| 9), 9, "measured anew");
        assert_eq!(copy, measures);
    }
}
