//! Indented JSON whose indentation stops growing past a depth, so output
//! stays linear in the report however deep it nests: serde_json's pretty
//! printer indents every level, and a report nested hundreds of JSON levels
//! deep would spend most of its bytes on spaces (a 267 KB report came out
//! as 308 MB).

use std::io::{self, Write};

use serde_json::ser::Formatter;

/// Levels of indentation written at most; deeper lines start at this one.
pub const MAX_INDENT_LEVELS: usize = 40;

const INDENT: &[u8] = b"  ";

/// serde_json's `PrettyFormatter`, with the indentation capped.
#[derive(Debug, Default)]
pub struct CappedPretty {
    level: usize,
    has_value: bool,
}

impl CappedPretty {
    fn indent<W: ?Sized + Write>(&self, writer: &mut W) -> io::Result<()> {
        for _ in 0..self.level.min(MAX_INDENT_LEVELS) {
            writer.write_all(INDENT)?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            writer.write_all(b"\n")?;
            self.indent(writer)?;
        }
        writer.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        writer.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(writer)
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
}

/// `value` as indented JSON, indentation capped at [`MAX_INDENT_LEVELS`].
pub fn to_vec<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, CappedPretty::default());
    let _indenting = Indenting::begin();
    value.serialize(&mut serializer)?;
    Ok(out)
}

thread_local! {
    static INDENTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as writing indented JSON until dropped, so received
/// subtrees kept as raw text ([`super::Forwards`]) are re-indented as they
/// are written instead of copied verbatim.
struct Indenting(bool);

impl Indenting {
    fn begin() -> Indenting {
        Indenting(INDENTING.with(|i| i.replace(true)))
    }
}

impl Drop for Indenting {
    fn drop(&mut self) {
        INDENTING.with(|i| i.set(self.0));
    }
}

/// Whether this thread is writing indented JSON ([`to_vec`]).
pub(crate) fn indenting() -> bool {
    INDENTING.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shallow_values_match_serde_json_pretty() {
        let value = serde_json::json!({"a": [1, {"b": []}, {}], "c": "d"});
        assert_eq!(
            String::from_utf8(to_vec(&value).unwrap()).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
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
