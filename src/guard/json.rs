//! The guard in front of every JSON decode of a plan or a report: how deep
//! a text nests is measured without parsing or recursion before any parser
//! recurses into it, and texts measured deep are parsed with the stack on
//! the heap.

use serde::Deserialize;

use super::MAX_DEPTH_CEILING;

/// JSON levels one hop adds to a report: the report object, its
/// `ParallelForwards` array, a group object, its `SequentialForwards` array
/// and the hop object whose `Response` is the next report.
pub const JSON_LEVELS_PER_HOP: usize = 5;

/// The deepest JSON a received report may be: a report of
/// [`MAX_DEPTH_CEILING`] hops in depth, and some room.
pub const MAX_REPORT_NESTING: usize = (MAX_DEPTH_CEILING as usize + 2) * JSON_LEVELS_PER_HOP + 4;

/// How deep the arrays and objects of a JSON text nest, found without
/// parsing or recursion (strings and escapes are skipped), so a hostile
/// body is measured before any parser recurses into it.
pub fn json_nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => {
                at = string_end(bytes, at);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    deepest
}

/// Where the JSON string opening at `open` ends: past its closing quote,
/// or at the end of `bytes` when it does not close. Jumps from one quote,
/// backslash or control byte to the next, sixteen bytes a step
/// (`scan::plain_run_end`), not byte by byte; an escape's second
/// byte is passed over.
#[inline]
pub fn string_end(bytes: &[u8], open: usize) -> usize {
    let mut at = open + 1;
    loop {
        at = super::scan::plain_run_end(bytes, at);
        match bytes.get(at) {
            Some(b'"') => return at + 1,
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
            None => return bytes.len(),
        }
    }
}

/// Parses JSON whose nesting was measured ([`json_nesting`]) when it
/// arrived: serde_json's own limit of 128 levels would cut a report of
/// about 25 hops, so it is lifted, and the stack grows on the heap instead
/// of overflowing.
pub fn from_json_unbounded<'de, T: Deserialize<'de>>(text: &'de str) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut de))?;
    de.end()?;
    Ok(value)
}

/// JSON nesting that serde_json walks by plain recursion on the thread's
/// stack (its own limit is 128 levels). Deeper or unmeasured text is walked
/// through serde_stacker, which grows the stack on the heap but checks it
/// at every value: a third of the cost of re-indenting a small report.
const STACK_NESTING: usize = 64;

/// Parses JSON whose nesting was measured ([`json_nesting`]), on the stack
/// when it is shallow.
pub fn from_json_measured<'de, T: Deserialize<'de>>(
    text: &'de str,
    nesting: Option<usize>,
) -> serde_json::Result<T> {
    match nesting {
        Some(levels) if levels <= STACK_NESTING => serde_json::from_str(text),
        _ => from_json_unbounded(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings_only() {
        for (text, levels) in [
            ("1", 0),
            ("[]", 1),
            (r#"{"a":[{"b":[]}],"c":{}}"#, 4),
            (r#"{"a":"[[[{{{"}"#, 1),
            (r#"{"a":"\"[[[","b":[["\\"]]}"#, 3),
            (r#"["unclosed \" [[["#, 1),
            (r#"["ends in a backslash \"#, 1),
        ] {
            assert_eq!(json_nesting(text.as_bytes()), levels, "{text}");
        }
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(json_nesting(deep.as_bytes()), 500);
    }
}
