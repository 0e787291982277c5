//! Where a run of a string's plain bytes ends (its closing quote, an
//! escape, or a control byte that makes it an error): the search both the
//! scanner and the re-indenting of a received report spend their time in,
//! sixteen bytes a step; and whether a string written needs escaping.

/// Where the run of a string's plain bytes starting at `at` ends: at its
/// first quote, backslash or control character, or at the end of `bytes`.
/// Sixteen bytes a step where the words of a vector are there to be had
/// (SSE2, on every x86-64), eight a step in a word otherwise.
#[inline(always)]
pub(crate) fn plain_run_end(bytes: &[u8], mut at: usize) -> usize {
    while let Some(chunk) = bytes.get(at..at + STEP) {
        let flags = step_flags(chunk.try_into().expect("a step"));
        if flags != 0 {
            return at + flags.trailing_zeros() as usize;
        }
        at += STEP;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(rest.len())
}

/// Whether any byte of `bytes` is a quote, a backslash or a control
/// character (whether a string written needs escaping): a step at a time,
/// the tail as the last step's worth (some of it seen already); a string
/// shorter than a step as its first and last eight bytes, a string shorter
/// than eight byte by byte.
#[inline]
pub(crate) fn any_special(bytes: &[u8]) -> bool {
    if let Some(last) = bytes.len().checked_sub(STEP) {
        let flags = |at: usize| step_flags(bytes[at..at + STEP].try_into().expect("a step"));
        let mut at = 0;
        while at < last {
            if flags(at) != 0 {
                return true;
            }
            at += STEP;
        }
        return flags(last) != 0;
    }
    if let Some(last) = bytes.len().checked_sub(8) {
        let word = |at: usize| word_flags(bytes[at..at + 8].try_into().expect("eight bytes"));
        return word(0) | word(last) != 0;
    }
    bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

/// A bit for each byte of one step that is `"`, `\` or below 0x20, the
/// first byte's the lowest: sixteen bytes in a vector (SSE2, on every
/// x86-64), eight in a word otherwise.
#[inline(always)]
fn step_flags(chunk: &[u8; STEP]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2, the one feature `special_bytes` enables, is part of
    // x86-64 itself: every Rust target of that architecture has it.
    let flags = unsafe { special_bytes(chunk) };
    #[cfg(not(target_arch = "x86_64"))]
    let flags = special_bytes_in_word(chunk);
    flags
}

#[cfg(target_arch = "x86_64")]
const STEP: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
const STEP: usize = 8;

/// A bit for each byte of `chunk` that is `"`, `\` or below 0x20, the
/// first byte's the lowest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn special_bytes(chunk: &[u8; STEP]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: `chunk` is sixteen readable bytes, and the load is unaligned.
    let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()) };
    let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
    let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
    // Below 0x20, unsigned: the smaller of it and 0x1f is itself.
    let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
}

/// The same, eight bytes in a word: a byte is flagged when it equals `"`
/// or `\` or is below 0x20, and the lowest flag is exact (the borrows that
/// can raise false flags only run upward, past it).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
pub(super) fn special_bytes_in_word(chunk: &[u8; 8]) -> u32 {
    let flags = word_flags(chunk);
    // One bit a byte, at the byte's place: the high bit of each, gathered.
    let mut bits = 0;
    for i in 0..8 {
        bits |= u32::from((flags >> (8 * i + 7)) & 1 == 1) << i;
    }
    bits
}

/// The flags of [`special_bytes_in_word`] at each byte's high bit, not
/// gathered: not zero exactly when a byte is flagged.
#[inline(always)]
fn word_flags(chunk: &[u8; 8]) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    let equal = |word: u64, b: u8| below(word ^ (ONES * u64::from(b)), 1);
    let word = u64::from_le_bytes(*chunk);
    equal(word, b'"') | equal(word, b'\\') | below(word, 0x20)
}
