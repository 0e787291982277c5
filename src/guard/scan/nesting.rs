//! The containers a skip of nested JSON is inside, kept as a bit a level
//! instead of a call stack: how [`super::Scan::skip`] walks any depth
//! without recursion.

use super::super::json::MAX_REPORT_NESTING;

/// Which containers [`super::Scan::skip`] is inside, a bit a level (set: an
/// object), up to [`MAX_REPORT_NESTING`] levels.
#[derive(Default)]
pub(super) struct Nesting {
    bits: [u64; NESTING_WORDS],
    pub(super) depth: usize,
}

const NESTING_WORDS: usize = MAX_REPORT_NESTING.div_ceil(64);

impl Nesting {
    /// One more level (its depth checked by [`super::Scan::open`] first).
    pub(super) fn push(&mut self, object: bool) {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        self.bits[word] = (self.bits[word] & !(1 << bit)) | (u64::from(object) << bit);
        self.depth += 1;
    }

    pub(super) fn pop(&mut self) {
        self.depth -= 1;
    }

    /// Whether the innermost open container is an object; `None` when
    /// none is open.
    pub(super) fn top(&self) -> Option<bool> {
        let level = self.depth.checked_sub(1)?;
        Some(self.bits[level / 64] >> (level % 64) & 1 == 1)
    }
}
