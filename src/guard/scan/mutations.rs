//! Deterministic mutations of a JSON text, for the tests that hold the
//! scanner and the judge of received reports to what serde_json reads.

/// `count` mutations of `text`, each of one to `edits` edits: a byte
/// replaced by one of `specials`, deleted, or doubled, where a xorshift
/// generator seeded with `seed` says.
pub(crate) fn mutations<'a>(
    text: &'a str,
    specials: &'static [u8],
    edits: u64,
    seed: u64,
    count: usize,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count).map(move |_| {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..1 + next() % edits {
            if bytes.is_empty() {
                break;
            }
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => bytes[at] = specials[(next() % specials.len() as u64) as usize],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, bytes[at]),
            }
        }
        bytes
    })
}
