//! Bytes written as lowercase hex digits, as trace and span ids (W3C, B3)
//! and a body's SHA-256 are shown: from a table, not through the
//! formatter's machinery (a hop's trace headers are written for every
//! request). Depends on nothing else in the crate.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The two digits of `byte`.
fn pair(byte: u8) -> [u8; 2] {
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0f)],
    ]
}

/// `N` hex digits, on the stack: an id of `N / 2` bytes written out.
pub struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    /// `bytes` as digits; `N` must be twice `M` (checked when built).
    pub fn of<const M: usize>(bytes: [u8; M]) -> Hex<N> {
        const { assert!(N == 2 * M, "two digits a byte") };
        let mut digits = [0; N];
        for (two, byte) in digits.chunks_exact_mut(2).zip(bytes) {
            two.copy_from_slice(&pair(byte));
        }
        Hex(digits)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The digits as text (always ASCII).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Appends `bytes` to `out` as digits.
pub fn push(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &byte in bytes {
        out.extend(pair(byte).map(char::from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_the_formatters() {
        let bytes = [0x00, 0x0f, 0xa0, 0xff, 0x4b, 0x09, 0x10, 0x01];
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Hex::<16>::of(bytes).as_str(), formatted);
        let mut pushed = String::from("sha256:");
        push(&mut pushed, &bytes);
        assert_eq!(pushed, format!("sha256:{formatted}"));
    }
}
