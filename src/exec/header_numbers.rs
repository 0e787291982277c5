//! Numbers as header values, for the headers servicemock sets on every
//! hop (depth, calls left, call id, time budget, try). A `HeaderValue`
//! owns its bytes, so each one written is an allocation; the small numbers
//! most of them are (a depth, the calls a cascade has left under
//! `--max-hops`) are values made once, pointing into one table made at
//! compile time, which a hop clones without allocating or checking them.

use std::sync::LazyLock;

use http::HeaderValue;

/// The largest number the table holds: `--max-hops`' default.
const TABLE_MAX: u64 = 1024;

/// The numbers 0 to [`TABLE_MAX`] written one after another: `0123…1024`.
static DIGITS: [u8; table_len()] = table();

/// The numbers 0 to [`TABLE_MAX`] as header values, each its digits in
/// [`DIGITS`].
static VALUES: LazyLock<Box<[HeaderValue]>> = LazyLock::new(|| {
    (0..=TABLE_MAX)
        .map(|n| {
            let at = offset(n);
            let digits = std::str::from_utf8(&DIGITS[at..at + width(n)]);
            HeaderValue::from_static(digits.expect("digits are ASCII"))
        })
        .collect()
});

/// `n` as a header value: a copy of one made once when it is in the
/// table, else written out in one allocation (by `http`, which knows
/// digits need no check).
pub(super) fn number_value(n: u64) -> HeaderValue {
    match usize::try_from(n).ok().and_then(|n| VALUES.get(n)) {
        Some(value) => value.clone(),
        None => HeaderValue::from(n),
    }
}

/// How many digits `n` (at most [`TABLE_MAX`]) has.
const fn width(n: u64) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    }
}

/// Where `n` begins in [`DIGITS`]: after all the shorter numbers, and the
/// numbers of its width below it.
const fn offset(n: u64) -> usize {
    let (first, before) = match width(n) {
        1 => (0, 0),
        2 => (10, 10),
        3 => (100, 10 + 90 * 2),
        _ => (1000, 10 + 90 * 2 + 900 * 3),
    };
    before + (n - first) as usize * width(n)
}

const fn table_len() -> usize {
    offset(TABLE_MAX) + width(TABLE_MAX)
}

const fn table() -> [u8; table_len()] {
    let mut out = [0u8; table_len()];
    let mut n = 0;
    while n <= TABLE_MAX {
        let (at, mut k, mut rest) = (offset(n), width(n), n);
        while k > 0 {
            k -= 1;
            out[at + k] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_reads_as_itself() {
        for n in (0..=1100).chain([9_999, 65_536, u64::MAX]) {
            assert_eq!(number_value(n).to_str().unwrap(), n.to_string(), "{n}");
        }
    }
}
