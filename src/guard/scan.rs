//! A validating JSON scanner: walks a text once, token by token, holding it
//! to JSON's grammar as strictly as serde_json reads it (strings without
//! control characters and with valid escapes, numbers of JSON's form,
//! literals spelled out, one value and nothing after it), and builds
//! nothing. A received report is judged with it ([`crate::report`]): its
//! caller reads a dozen fields and must still know that all the rest,
//! the subtree it passes on, is JSON. serde_json's skip of the values
//! nobody reads costs about 10 instructions a byte of a report; this one
//! about 6, finding string ends sixteen bytes at a time (SSE2 on x86-64)
//! and walking tokens in one loop without recursion.

use std::borrow::Cow;
use std::fmt;

use super::json::MAX_REPORT_NESTING;

/// Why a text is not the JSON it should be, and where (boxed: a result
/// that can carry one stays small enough to come back in registers).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanError(Box<Failure>);

#[derive(Debug, Clone, PartialEq)]
struct Failure {
    what: Cow<'static, str>,
    line: usize,
    column: usize,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Failure { what, line, column } = &*self.0;
        write!(f, "{what} at line {line} column {column}")
    }
}

impl std::error::Error for ScanError {}

impl ScanError {
    /// The same error, said to be inside `field`.
    pub fn within(mut self, field: &str) -> Self {
        self.0.what = format!("{field}: {}", self.0.what).into();
        self
    }
}

pub type Scanned<T> = Result<T, ScanError>;

/// What serde_json said of a piece of the text, without its place in the
/// piece (the scanner says where the piece is in the whole).
pub fn serde_said(error: &serde_json::Error) -> String {
    let said = error.to_string();
    match said.rsplit_once(" at line ") {
        Some((what, _)) => what.to_owned(),
        None => said,
    }
}

/// A JSON string as it lies in the text.
#[derive(Debug, Clone, Copy)]
pub struct Str<'a> {
    /// The string with its quotes, as serde_json reads a string.
    pub quoted: &'a str,
    /// Whether it holds an escape, so its value differs from its text.
    pub escaped: bool,
}

impl<'a> Str<'a> {
    /// The text between the quotes.
    pub fn inner(&self) -> &'a str {
        &self.quoted[1..self.quoted.len() - 1]
    }

    /// Its value: the text itself unless escapes make a new string, then
    /// decoded by serde_json (which also refuses an unpaired surrogate).
    #[inline(always)]
    pub fn value(&self) -> serde_json::Result<Cow<'a, str>> {
        if self.escaped {
            self.decoded()
        } else {
            Ok(Cow::Borrowed(self.inner()))
        }
    }

    #[inline(never)]
    fn decoded(&self) -> serde_json::Result<Cow<'a, str>> {
        serde_json::from_str::<String>(self.quoted).map(Cow::Owned)
    }
}

/// A cursor over a JSON text.
pub struct Scan<'a> {
    text: &'a str,
    at: usize,
    /// Arrays and objects open around the cursor (those of [`Scan::object`]
    /// and [`Scan::array`]; [`Scan::skip`] counts its own above them).
    depth: usize,
    /// The most that were ever open at once.
    deepest: usize,
}

impl<'a> Scan<'a> {
    pub fn new(text: &'a str) -> Self {
        Scan {
            text,
            at: 0,
            depth: 0,
            deepest: 0,
        }
    }

    /// How deep the arrays and objects read so far nested at most: a text
    /// read to its end nests this deep, as [`super::json::json_nesting`]
    /// measures it.
    pub fn deepest(&self) -> usize {
        self.deepest
    }

    /// One more array or object open: refused past [`MAX_REPORT_NESTING`].
    #[inline(always)]
    fn open(&mut self, above: usize) -> Scanned<()> {
        let depth = self.depth + above + 1;
        if depth > MAX_REPORT_NESTING {
            return Err(self.error(format!("nested deeper than {MAX_REPORT_NESTING} levels")));
        }
        self.deepest = self.deepest.max(depth);
        Ok(())
    }

    /// The error `what`, placed where the cursor is.
    #[cold]
    pub fn error(&self, what: impl Into<Cow<'static, str>>) -> ScanError {
        self.error_at(self.at, what)
    }

    /// The error `what`, placed at byte `at`, as line and column (from 1).
    #[cold]
    pub fn error_at(&self, at: usize, what: impl Into<Cow<'static, str>>) -> ScanError {
        let before = &self.text.as_bytes()[..at.min(self.text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        ScanError(Box::new(Failure {
            what: what.into(),
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            column: 1 + at - line_start,
        }))
    }

    /// Where the cursor is, in bytes.
    pub fn position(&self) -> usize {
        self.at
    }

    /// The text from `from` to the cursor.
    pub fn since(&self, from: usize) -> &'a str {
        &self.text[from..self.at]
    }

    /// The first byte of the next token, whitespace skipped; `None` at the
    /// end of the text.
    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        self.at = blank_end(self.text.as_bytes(), self.at);
        self.text.as_bytes().get(self.at).copied()
    }

    /// The next token's first byte, or the error of a text that ends here.
    #[inline(always)]
    fn next_byte(&mut self, wanted: &'static str) -> Scanned<u8> {
        self.peek()
            .ok_or_else(|| self.error(format!("EOF while parsing {wanted}")))
    }

    /// Nothing but whitespace is left.
    pub fn end(mut self) -> Scanned<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    /// `null` comes next: read, and `true`; otherwise nothing is read.
    pub fn null(&mut self) -> Scanned<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    /// A `true` or `false`.
    pub fn boolean(&mut self) -> Scanned<bool> {
        match self.next_byte("a value")? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => Err(self.error("invalid type: expected a boolean")),
        }
    }

    /// A string, checked.
    #[inline]
    pub fn string(&mut self) -> Scanned<Str<'a>> {
        let start = self.at_token()?;
        if self.text.as_bytes()[start] != b'"' {
            return Err(self.error("invalid type: expected a string"));
        }
        let (end, escaped) = self.string_span(start)?;
        self.at = end;
        Ok(Str {
            quoted: &self.text[start..end],
            escaped,
        })
    }

    /// A number of JSON's form, as it is written.
    pub fn number(&mut self) -> Scanned<&'a str> {
        let first = self.next_byte("a value")?;
        if first != b'-' && !first.is_ascii_digit() {
            return Err(self.error("invalid type: expected a number"));
        }
        let start = self.at;
        self.number_body()?;
        Ok(&self.text[start..self.at])
    }

    /// An object, each of its keys handed to `member` with the cursor
    /// before the key's value, which `member` must read (or [`Scan::skip`]).
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Str<'a>) -> Scanned<()>,
    ) -> Scanned<()> {
        self.items(OBJECT, |scan| {
            let key = scan.key()?;
            member(scan, key)
        })
    }

    /// An array, `element` called with the cursor before each element,
    /// which it must read (or [`Scan::skip`]).
    pub fn array(&mut self, element: impl FnMut(&mut Self) -> Scanned<()>) -> Scanned<()> {
        self.items(ARRAY, element)
    }

    /// The items of an object or array, each read by `item`, the commas
    /// and brackets around them checked, the depth counted.
    #[inline(always)]
    fn items(
        &mut self,
        kind: Container,
        mut item: impl FnMut(&mut Self) -> Scanned<()>,
    ) -> Scanned<()> {
        if self.next_byte("a value")? != kind.open {
            return Err(self.error(kind.expected));
        }
        self.open(0)?;
        self.at += 1;
        if self.next_byte(kind.inside)? == kind.close {
            self.at += 1;
            return Ok(());
        }
        self.depth += 1;
        loop {
            item(self)?;
            match self.next_byte(kind.inside)? {
                b',' => self.at += 1,
                b if b == kind.close => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected(kind.inside)),
            }
        }
    }

    /// Any value, checked and passed over, however it nests (up to
    /// [`MAX_REPORT_NESTING`] levels), without recursion: one loop over the
    /// text's tokens with the cursor in a register, the first byte of each
    /// deciding what it is; errors are said where the cursor stopped.
    pub fn skip(&mut self) -> Scanned<()> {
        let bytes = self.text.as_bytes();
        // 0 past the end: no JSON token starts with it, so the end of the
        // text fails where any unexpected byte fails.
        let byte = |at: usize| bytes.get(at).copied().unwrap_or(0);
        let mut at = self.at;
        let mut open = Nesting::default();
        loop {
            // A value starts here.
            at = blank_end(bytes, at);
            let first = byte(at);
            match first {
                b'"' => at = self.string_span(at)?.0,
                b'{' | b'[' => {
                    self.at = at;
                    self.open(open.depth)?;
                    at = blank_end(bytes, at + 1);
                    // `{` + 2 is `}`, `[` + 2 is `]`.
                    if byte(at) == first + 2 {
                        at += 1;
                    } else {
                        open.push(first == b'{');
                        if first == b'{' {
                            at = self.key_from(at)?;
                        }
                        continue;
                    }
                }
                b't' | b'f' | b'n' => {
                    self.at = at;
                    self.literal(match first {
                        b't' => b"true",
                        b'f' => b"false",
                        _ => b"null",
                    })?;
                    at = self.at;
                }
                b'-' | b'0'..=b'9' => {
                    self.at = at;
                    self.number_body()?;
                    at = self.at;
                }
                _ => {
                    self.at = at;
                    return Err(self.unexpected("a value"));
                }
            }
            // A value ended: close what it ends, then on to the next one.
            loop {
                let Some(in_object) = open.top() else {
                    self.at = at;
                    return Ok(());
                };
                at = blank_end(bytes, at);
                let next = byte(at);
                if next == b',' {
                    at += 1;
                    if in_object {
                        at = self.key_from(at)?;
                    }
                    break;
                }
                if next == if in_object { b'}' } else { b']' } {
                    at += 1;
                    open.pop();
                    continue;
                }
                self.at = at;
                return Err(self.unexpected(if in_object { "an object" } else { "a list" }));
            }
        }
    }

    /// Past the string opening at `at` (a quote): where it ends, and
    /// whether it holds escapes.
    #[inline(always)]
    fn string_span(&mut self, at: usize) -> Scanned<(usize, bool)> {
        let bytes = self.text.as_bytes();
        let end = plain_run_end(bytes, at + 1);
        if bytes.get(end) == Some(&b'"') {
            return Ok((end + 1, false));
        }
        self.string_rest(end)?;
        Ok((self.at, true))
    }

    /// Past an object's key and its colon, from `at` (whitespace first).
    #[inline(always)]
    fn key_from(&mut self, at: usize) -> Scanned<usize> {
        Ok(self.key_span(at)?.after)
    }

    /// An object's key from `at` (whitespace first): where it starts and
    /// ends, whether it holds escapes, and where its colon ends.
    #[inline(always)]
    fn key_span(&mut self, at: usize) -> Scanned<KeySpan> {
        let bytes = self.text.as_bytes();
        let start = blank_end(bytes, at);
        if bytes.get(start) != Some(&b'"') {
            self.at = start;
            return Err(self.unexpected("a key"));
        }
        let (end, escaped) = self.string_span(start)?;
        let colon = blank_end(bytes, end);
        if bytes.get(colon) != Some(&b':') {
            self.at = colon;
            return Err(self.unexpected("a colon"));
        }
        Ok(KeySpan {
            start,
            end,
            escaped,
            after: colon + 1,
        })
    }

    /// Where the next token starts (whitespace skipped), or the error of
    /// a text that ends before it.
    #[inline(always)]
    fn at_token(&mut self) -> Scanned<usize> {
        match self.peek() {
            Some(_) => Ok(self.at),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    /// The error of an unexpected byte (or end) where `wanted` was.
    #[cold]
    fn unexpected(&self, wanted: &'static str) -> ScanError {
        match self.text.as_bytes().get(self.at) {
            None if wanted == "a key" || wanted == "a colon" => {
                self.error("EOF while parsing an object")
            }
            None => self.error(format!("EOF while parsing {wanted}")),
            Some(_) if wanted == "a value" => self.error("expected a value"),
            Some(_) if wanted == "a key" => self.error("key must be a string"),
            Some(_) if wanted == "a colon" => self.error("expected `:`"),
            Some(_) if wanted == "an object" => self.error("expected `,` or `}`"),
            Some(_) => self.error("expected `,` or `]`"),
        }
    }

    /// An object's key and the colon after it.
    #[inline]
    fn key(&mut self) -> Scanned<Str<'a>> {
        let key = self.key_span(self.at)?;
        self.at = key.after;
        Ok(Str {
            quoted: &self.text[key.start..key.end],
            escaped: key.escaped,
        })
    }

    /// `word` spelled out where the cursor is.
    fn literal(&mut self, word: &'static [u8]) -> Scanned<()> {
        let bytes = &self.text.as_bytes()[self.at..];
        let same = bytes.iter().zip(word).take_while(|(a, b)| a == b).count();
        if same == word.len() {
            self.at += word.len();
            return Ok(());
        }
        self.at += same;
        Err(if same == bytes.len() {
            self.error("EOF while parsing a value")
        } else {
            self.error("expected ident")
        })
    }

    /// The rest of a string from a byte that is neither plain nor its
    /// closing quote: escapes checked, or the error that byte makes.
    #[inline(never)]
    fn string_rest(&mut self, mut at: usize) -> Scanned<bool> {
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(at) {
                Some(b'"') => {
                    self.at = at + 1;
                    return Ok(true);
                }
                Some(b'\\') => {
                    let width = match bytes.get(at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u') => {
                            let hex = bytes.get(at + 2..at + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                self.at = at;
                                return Err(self.error(if hex.is_none() {
                                    "EOF while parsing a string"
                                } else {
                                    "invalid escape"
                                }));
                            }
                            6
                        }
                        Some(_) => {
                            self.at = at + 1;
                            return Err(self.error("invalid escape"));
                        }
                        None => {
                            self.at = at + 1;
                            return Err(self.error("EOF while parsing a string"));
                        }
                    };
                    at = plain_run_end(bytes, at + width);
                }
                Some(_) => {
                    self.at = at;
                    return Err(self.error(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
                None => {
                    self.at = at;
                    return Err(self.error("EOF while parsing a string"));
                }
            }
        }
    }

    /// A number from its first byte (at the cursor) past its last.
    fn number_body(&mut self) -> Scanned<()> {
        let bytes = self.text.as_bytes();
        let digits = |from: usize| {
            from + bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut at = self.at;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => at = digits(at + 1),
            _ => {
                self.at = at;
                return Err(self.error("invalid number"));
            }
        }
        if bytes.get(at) == Some(&b'.') {
            let end = digits(at + 1);
            if end == at + 1 {
                self.at = end;
                return Err(self.error("invalid number"));
            }
            at = end;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(bytes.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            let end = digits(at);
            if end == at {
                self.at = end;
                return Err(self.error("invalid number"));
            }
            at = end;
        }
        self.at = at;
        Ok(())
    }
}

/// Where an object's key lies, as [`Scan::key_span`] finds it.
struct KeySpan {
    start: usize,
    end: usize,
    escaped: bool,
    after: usize,
}

/// What tells an object from an array to [`Scan::items`].
#[derive(Clone, Copy)]
struct Container {
    open: u8,
    close: u8,
    /// The error of another value where this one was wanted.
    expected: &'static str,
    /// What an error inside it says it was parsing.
    inside: &'static str,
}

const OBJECT: Container = Container {
    open: b'{',
    close: b'}',
    expected: "invalid type: expected an object",
    inside: "an object",
};

const ARRAY: Container = Container {
    open: b'[',
    close: b']',
    expected: "invalid type: expected an array",
    inside: "a list",
};

/// Where the whitespace from `at` on ends.
#[inline(always)]
fn blank_end(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|&b| is_blank(b)) {
        at += 1;
    }
    at
}

/// JSON's whitespace between tokens.
#[inline(always)]
fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\t' | b'\r')
}

#[cfg(test)]
pub(crate) mod mutations;
mod nesting;
mod runs;
#[cfg(test)]
mod tests;

use nesting::Nesting;
pub(crate) use runs::{any_special, plain_run_end};
