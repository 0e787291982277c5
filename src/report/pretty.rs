//! Indented JSON whose indentation stops growing past a depth, so output
//! stays linear in the report however deep it nests: serde_json's pretty
//! printer indents every level, and a report nested hundreds of JSON levels
//! deep would spend most of its bytes on spaces (a 267 KB report came out
//! as 308 MB).

use std::io::{self, Write};

use serde_json::ser::Formatter;

/// Levels of indentation written at most; deeper lines start at this one.
pub const MAX_INDENT_LEVELS: usize = 40;

/// Spaces per level.
const INDENT: usize = 2;

/// A separator, a line's end and the deepest indentation, sliced for each
/// line (`,` and `\n` and the line's spaces written at once).
/// Sixteen spaces more than any line takes, so that [`append`] copies
/// whole sixteen-byte pieces of it.
const LINE: [u8; 2 + MAX_INDENT_LEVELS * INDENT + 16] = {
    let mut line = [b' '; 2 + MAX_INDENT_LEVELS * INDENT + 16];
    line[0] = b',';
    line[1] = b'\n';
    line
};

/// serde_json's `PrettyFormatter`, with the indentation capped.
#[derive(Debug, Default)]
pub struct CappedPretty {
    level: usize,
    has_value: bool,
}

impl CappedPretty {
    /// Spaces of this line's indentation.
    fn indentation(&self) -> usize {
        self.level.min(MAX_INDENT_LEVELS) * INDENT
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            writer.write_all(&LINE[1..2 + self.indentation()])?;
        }
        writer.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        writer.write_all(&LINE[usize::from(first)..2 + self.indentation()])
    }
}

impl Formatter for CappedPretty {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    /// Received JSON text written through `RawValue` (serde's path):
    /// re-indented as [`CappedPretty::reindent`] does.
    fn write_raw_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut out = Vec::with_capacity(fragment.len() * 2);
        self.reindent(&mut out, fragment);
        writer.write_all(&out)
    }
}

impl CappedPretty {
    /// Received JSON text (a report kept as the text it came in): re-indented
    /// as the values around it are, without parsing it into values and
    /// escaping them again. Strings, numbers and literals are copied as they
    /// are; whitespace between tokens is dropped; empty containers stay `[]`
    /// and `{}`. Runs are copied sixteen bytes a copy (`append`).
    pub fn reindent(&mut self, out: &mut Vec<u8>, fragment: &str) {
        let bytes = fragment.as_bytes();
        out.reserve(bytes.len() + bytes.len() / 2);
        let (mut at, mut copied) = (0, 0);
        while let Some(&byte) = bytes.get(at) {
            if !STRUCTURAL[usize::from(byte)] {
                at += 1;
                continue;
            }
            if byte == b'"' {
                at = crate::guard::json::string_end(bytes, at);
                continue;
            }
            append(out, bytes, copied, at);
            at += 1;
            match byte {
                b'{' | b'[' => {
                    let close = if byte == b'{' { b'}' } else { b']' };
                    let blank = bytes[at..].iter().take_while(|b| b.is_ascii_whitespace());
                    let next = at + blank.count();
                    if bytes.get(next) == Some(&close) {
                        out.extend_from_slice(&[byte, close]);
                        at = next + 1;
                    } else {
                        self.level += 1;
                        self.has_value = false;
                        out.push(byte);
                        self.line(out, true);
                    }
                }
                b'}' | b']' => {
                    self.level -= 1;
                    self.has_value = true;
                    self.line(out, true);
                    out.push(byte);
                }
                b',' => self.line(out, false),
                b':' => out.extend_from_slice(b": "),
                _ => {} // whitespace between tokens
            }
            copied = at;
        }
        append(out, bytes, copied, bytes.len());
    }

    /// A new line at this level, after a comma unless `first`.
    #[inline(always)]
    fn line(&self, out: &mut Vec<u8>, first: bool) {
        append(out, &LINE, usize::from(first), 2 + self.indentation());
    }
}

/// Appends `source[from..to]` to `out`, sixteen bytes a copy: a copy of one
/// constant size is made inline, where a copy whose length is known only
/// when it runs is a call to `memcpy` (most runs are a dozen bytes). What
/// is copied past `to` is cut off again.
#[inline(always)]
fn append(out: &mut Vec<u8>, source: &[u8], mut from: usize, to: usize) {
    let end = out.len() + (to - from);
    while from < to {
        match source.get(from..from + 16) {
            Some(chunk) => {
                let chunk: &[u8; 16] = chunk.try_into().expect("sixteen bytes");
                out.extend_from_slice(chunk);
            }
            None => {
                out.extend_from_slice(&source[from..to]);
                break;
            }
        }
        from += 16;
    }
    out.truncate(end);
}

/// The bytes that end a run copied as it is: brackets, separators, the
/// quote that opens a string, whitespace between tokens.
const STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    let bytes = b"{}[],:\" \t\n\r";
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

/// `value` as indented JSON, indentation capped at [`MAX_INDENT_LEVELS`].
pub fn to_vec<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, CappedPretty::default());
    value.serialize(&mut serializer)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn shallow_values_match_serde_json_pretty() {
        let value = serde_json::json!({"a": [1, {"b": []}, {}], "c": "d"});
        assert_eq!(
            String::from_utf8(to_vec(&value).unwrap()).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }

    #[test]
    fn raw_text_is_reindented_as_its_values_would_be() {
        let texts = [
            r#"{"a":[1,{"b":[]},{}],"c":"d"}"#,
            r#"{"n":-1.5e3,"s":"x\",y:{[z]}\\","t":true,"u":null}"#,
            " { \"empty\" : { } , \"list\" : [ ] , \"spaced\" : [ 1 ,\n 2 ] } ",
            r#"[[[[{"deep":[[["x"]]]}]]]]"#,
            r#""just a string""#,
            "7",
        ];
        for text in texts {
            let raw: &serde_json::value::RawValue = serde_json::from_str(text).unwrap();
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            // Alone, and nested where the surrounding levels indent it.
            let wrapped = serde_json::json!({"outer": [{"inner": value.clone()}]});
            let raw_wrapped = serde_json::json!({"outer": [{"inner": 0}]})
                .to_string()
                .replace(r#""inner":0"#, &format!(r#""inner":{}"#, raw.get()));
            let raw_wrapped: &serde_json::value::RawValue =
                serde_json::from_str(&raw_wrapped).unwrap();
            for (raw, value) in [(raw, &value), (raw_wrapped, &wrapped)] {
                let mut out = Vec::new();
                let mut ser =
                    serde_json::Serializer::with_formatter(&mut out, CappedPretty::default());
                raw.serialize(&mut ser).unwrap();
                let expected = to_vec(value).unwrap();
                // Numbers are copied as written, not re-encoded.
                let expected = String::from_utf8(expected)
                    .unwrap()
                    .replace("-1500.0", "-1.5e3");
                assert_eq!(String::from_utf8(out).unwrap(), expected, "{text}");
            }
        }
    }

    #[test]
    fn raw_strings_keep_their_escapes() {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(r#"{"e":"caf\u00e9 \/ \n"}"#).unwrap();
        let out = String::from_utf8(to_vec(raw).unwrap()).unwrap();
        assert_eq!(out, "{\n  \"e\": \"caf\\u00e9 \\/ \\n\"\n}");
    }

    #[test]
    fn deep_raw_text_is_reindented_within_the_cap() {
        let text = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let raw: &serde_json::value::RawValue = serde_json::from_str(&text).unwrap();
        let out = to_vec(raw).unwrap();
        let widest = out.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap();
        assert!(widest <= 2 * MAX_INDENT_LEVELS + 2, "{widest}");
        let back = String::from_utf8(out).unwrap();
        let back: String = back.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(back, text);
    }

    #[test]
    fn deep_values_grow_linearly() {
        let mut value = serde_json::json!(1);
        for _ in 0..120 {
            value = serde_json::json!([value]);
        }
        let text = to_vec(&value).unwrap();
        let compact = serde_json::to_vec(&value).unwrap();
        let widest = text.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap();
        assert!(widest <= 2 * MAX_INDENT_LEVELS + 2, "{widest}");
        assert!(text.len() < compact.len() * (2 * MAX_INDENT_LEVELS + 3));
    }
}
