//! The report as JSON, written field by field: what every level sends its
//! caller (compact) and what a person gets at the entry (indented, through
//! [`super::pretty::CappedPretty`]). Byte for byte what serde_json writes
//! for the same [`Report`] through its derived `Serialize` (the tests below
//! hold it so), at a fraction of the work on the path every request takes:
//! strings that need no escaping (nearly all: names, ids, dates, header
//! lines) are found so with one pass that does not branch per byte and
//! copied whole, and a downstream's report is written as the text it came
//! in — checked once, when it arrived — instead of being checked again.
//!
//! serde_json's formatter decides the layout (separators, indentation,
//! number forms), so both forms stay serde_json's own.

use std::io;

use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

use super::pretty::CappedPretty;
use super::{
    header_line, header_text, Forward, Forwards, ParallelForward, Received, Report, RequestInfo,
    Try,
};
use crate::caller::{Peer, Tls, XfccElement};
// Whether a string needs escaping (a control character, a quote, a
// backslash): the scanner's search for them, a vector's width at a time.
use crate::guard::scan::any_special as needs_escape;

/// `report` as compact JSON.
pub fn compact(report: &Report) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024 + passed_on(report));
    // Writing into a Vec cannot fail.
    let _ = write_report(&mut out, &mut CompactFormatter, report);
    out
}

/// Bytes of downstream reports `report` passes on as they came (the
/// text of each one nobody parsed, or of hop groups nobody looked at),
/// so its output is sized once rather than grown while written.
pub fn passed_on(report: &Report) -> usize {
    let forwards = &report.parallel_forwards;
    if let (None, Some(raw)) = (forwards.parsed.get(), &forwards.raw) {
        return raw.get().len();
    }
    let groups: &[ParallelForward] = forwards;
    let text = |received: &Received| match received.parsed.get() {
        None => received.text().map_or(0, str::len),
        Some(_) => 0,
    };
    groups
        .iter()
        .flat_map(|group| &group.sequential_forwards)
        .map(|hop| {
            let tries = hop.tries.iter().filter_map(|one| one.response.as_ref());
            hop.response.iter().chain(tries).map(text).sum::<usize>()
        })
        .sum()
}

/// `report` as one line of compact JSON, for readers of lines and
/// messages (TCP lines, WebSocket messages, `call --stream`).
pub fn compact_string(report: &Report) -> String {
    // Every piece written is a `&str` (or received text checked as UTF-8),
    // so the check never fails; were it to, nothing is lost but the bytes.
    String::from_utf8(compact(report))
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `report` as JSON laid out by `formatter`, into `out`.
pub fn write_report<F: Layout>(
    out: &mut Vec<u8>,
    formatter: &mut F,
    report: &Report,
) -> io::Result<()> {
    let mut o = Object::open(out, formatter)?;
    o.str("ReceivedDate", &report.received_date)?;
    o.str("Message", &report.message)?;
    o.key("RequestInfo")?;
    write_request_info(o.out, o.formatter, &report.request_info)?;
    o.end_value()?;
    o.str("Service", &report.service)?;
    o.str("Version", &report.version)?;
    o.str("Host", &report.host)?;
    o.str_unless_empty("Namespace", &report.namespace)?;
    o.str_unless_empty("PodIp", &report.pod_ip)?;
    o.str("Protocol", report.protocol.as_str())?;
    o.str_unless_empty("Method", &report.method)?;
    if report.body_bytes != 0 {
        o.key("BodyBytes")?;
        o.formatter.write_u64(o.out, report.body_bytes)?;
        o.end_value()?;
    }
    o.str_unless_empty("BodySha256", &report.body_sha256)?;
    o.str_unless_empty("RequestId", &report.request_id)?;
    o.f64("DurationMs", report.duration_ms)?;
    o.key("ParallelForwards")?;
    write_forwards(o.out, o.formatter, &report.parallel_forwards)?;
    o.end_value()?;
    if !report.injected.is_empty() {
        o.strs("Injected", &report.injected)?;
    }
    o.str_unless_empty("Padding", &report.padding)?;
    if report.timed_out {
        o.key("TimedOut")?;
        o.formatter.write_bool(o.out, true)?;
        o.end_value()?;
    }
    o.u32("Attempt", report.attempt)?;
    if report.try_number != 0 {
        o.u32("Try", report.try_number)?;
    }
    if report.stream_message != 0 {
        o.u32("StreamMessage", report.stream_message)?;
    }
    o.str_unless_empty("Plan", &report.plan)?;
    if let Some(tls) = &report.tls {
        o.key("Tls")?;
        write_tls(o.out, o.formatter, tls)?;
        o.end_value()?;
    }
    if let Some(peer) = &report.peer {
        o.key("Peer")?;
        write_peer(o.out, o.formatter, peer)?;
        o.end_value()?;
    }
    o.str_unless_empty("TraceId", &report.trace_id)?;
    o.str_unless_empty("SpanId", &report.span_id)?;
    o.str_unless_empty("TraceUrl", &report.trace_url)?;
    o.close()
}

/// The hop groups: the text they came in when nobody looked at them, else
/// each group.
fn write_forwards<F: Layout>(
    out: &mut Vec<u8>,
    formatter: &mut F,
    forwards: &Forwards,
) -> io::Result<()> {
    if let (None, Some(raw)) = (forwards.parsed.get(), &forwards.raw) {
        return formatter.raw(out, raw.get());
    }
    let groups: &[ParallelForward] = forwards;
    write_array(out, formatter, groups, |out, formatter, group| {
        let mut o = Object::open(out, formatter)?;
        o.key("SequentialForwards")?;
        write_array(
            o.out,
            o.formatter,
            &group.sequential_forwards,
            write_forward,
        )?;
        o.end_value()?;
        o.close()
    })
}

fn write_forward<F: Layout>(out: &mut Vec<u8>, formatter: &mut F, hop: &Forward) -> io::Result<()> {
    let mut o = Object::open(out, formatter)?;
    o.str("Url", &hop.url)?;
    o.str("Result", hop.result.as_str())?;
    o.str("Protocol", hop.protocol.as_str())?;
    o.status("Status", hop.status)?;
    o.f64("StartMs", hop.start_ms)?;
    o.f64("DurationMs", hop.duration_ms)?;
    if let Some(error) = &hop.error {
        o.str("Error", error)?;
    }
    if let Some(by) = &hop.answered_by {
        o.str("AnsweredBy", &by.to_string())?;
    }
    if let Some(received) = hop.received_as {
        o.str("ReceivedAs", received.as_str())?;
    }
    if let Some(response) = &hop.response {
        o.key("Response")?;
        write_received(o.out, o.formatter, response)?;
        o.end_value()?;
    }
    if let Some(options) = &hop.options {
        o.str("Options", options)?;
    }
    if !hop.tries.is_empty() {
        o.key("Tries")?;
        write_array(o.out, o.formatter, &hop.tries, write_try)?;
        o.end_value()?;
    }
    o.close()
}

fn write_try<F: Layout>(out: &mut Vec<u8>, formatter: &mut F, one: &Try) -> io::Result<()> {
    let mut o = Object::open(out, formatter)?;
    o.u32("Try", one.number)?;
    o.str("Result", one.result.as_str())?;
    o.status("Status", one.status)?;
    o.f64("StartMs", one.start_ms)?;
    o.f64("DurationMs", one.duration_ms)?;
    if let Some(error) = &one.error {
        o.str("Error", error)?;
    }
    if let Some(by) = &one.answered_by {
        o.str("AnsweredBy", &by.to_string())?;
    }
    if let Some(response) = &one.response {
        o.key("Response")?;
        write_received(o.out, o.formatter, response)?;
        o.end_value()?;
    }
    o.close()
}

/// A downstream's report: the text it came in (checked when it arrived),
/// unless it was parsed since.
fn write_received<F: Layout>(
    out: &mut Vec<u8>,
    formatter: &mut F,
    received: &Received,
) -> io::Result<()> {
    match (received.parsed.get(), received.text()) {
        (None, Some(text)) => formatter.raw(out, text.trim_matches(JSON_BLANK)),
        _ => write_report(out, formatter, received),
    }
}

/// The whitespace JSON allows around a value.
const JSON_BLANK: &[char] = &[' ', '\t', '\n', '\r'];

fn write_tls<F: Layout>(out: &mut Vec<u8>, formatter: &mut F, tls: &Tls) -> io::Result<()> {
    let mut o = Object::open(out, formatter)?;
    o.str("Version", &tls.version)?;
    o.str("Cipher", &tls.cipher)?;
    o.str_unless_empty("Alpn", &tls.alpn)?;
    o.str_unless_empty("Sni", &tls.sni)?;
    o.close()
}

fn write_peer<F: Layout>(out: &mut Vec<u8>, formatter: &mut F, peer: &Peer) -> io::Result<()> {
    let mut o = Object::open(out, formatter)?;
    o.str("Source", &peer.source)?;
    o.str_unless_empty("Principal", &peer.principal)?;
    o.str_unless_empty("Subject", &peer.subject)?;
    o.strs_unless_empty("URI", &peer.uri)?;
    o.strs_unless_empty("DNS", &peer.dns)?;
    o.str_unless_empty("Serial", &peer.serial)?;
    o.str_unless_empty("NotAfter", &peer.not_after)?;
    if !peer.elements.is_empty() {
        o.key("Elements")?;
        write_array(o.out, o.formatter, &peer.elements, write_element)?;
        o.end_value()?;
    }
    if peer.omitted != 0 {
        o.u32("Omitted", peer.omitted)?;
    }
    o.str_unless_empty("Unparsed", &peer.unparsed)?;
    o.str_unless_empty("Error", &peer.error)?;
    o.close()
}

fn write_element<F: Layout>(
    out: &mut Vec<u8>,
    formatter: &mut F,
    element: &XfccElement,
) -> io::Result<()> {
    let mut o = Object::open(out, formatter)?;
    o.str_unless_empty("By", &element.by)?;
    o.str_unless_empty("Hash", &element.hash)?;
    o.str_unless_empty("Subject", &element.subject)?;
    o.strs_unless_empty("URI", &element.uri)?;
    o.strs_unless_empty("DNS", &element.dns)?;
    o.close()
}

/// `items` as a JSON array, each written by `write`.
fn write_array<F: Layout, T>(
    out: &mut Vec<u8>,
    formatter: &mut F,
    items: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &mut F, &T) -> io::Result<()>,
) -> io::Result<()> {
    formatter.begin_array(out)?;
    for (i, item) in items.iter().enumerate() {
        formatter.begin_array_value(out, i == 0)?;
        write(out, formatter, item)?;
        formatter.end_array_value(out)?;
    }
    formatter.end_array(out)
}

/// A report's `RequestInfo`: from the request's own header map when the
/// report is this service's (no line made as a string), else its lines.
fn write_request_info<F: Layout>(
    out: &mut Vec<u8>,
    formatter: &mut F,
    info: &RequestInfo,
) -> io::Result<()> {
    let Some((line, headers)) = info.head() else {
        return write_array(out, formatter, info, |out, formatter, line| {
            write_str(out, formatter, line)
        });
    };
    formatter.begin_array(out)?;
    formatter.begin_array_value(out, true)?;
    write_str(out, formatter, line)?;
    formatter.end_array_value(out)?;
    for (name, header) in headers {
        formatter.begin_array_value(out, false)?;
        let value = header_text(header.as_bytes());
        // A header's name is a token: nothing in it is ever escaped.
        if needs_escape(value.as_bytes()) {
            write_str(out, formatter, &header_line(name, header))?;
        } else {
            let name = name.as_str().as_bytes();
            out.reserve(name.len() + value.len() + 4);
            out.push(b'"');
            put(out, name);
            out.extend_from_slice(b": ");
            put(out, value.as_bytes());
            out.push(b'"');
        }
        formatter.end_array_value(out)?;
    }
    formatter.end_array(out)
}

/// A duration in milliseconds as [`super::millis`] makes it
/// (a whole number of microseconds over 1000): its whole milliseconds and
/// thousandths, when `value` is the `f64` nearest that decimal. Below
/// 10^12 such a decimal has at most 15 significant digits, so no other
/// decimal as short reads as the same `f64`: it is the shortest form that
/// reads back, the one serde_json writes, and it is written without the
/// shortest-digits search.
#[inline(always)]
fn whole_thousandths(value: f64) -> Option<(u64, u16)> {
    const BELOW: f64 = 1e12;
    let thousandths = value * 1000.0;
    // A range holds no NaN; the sign bit tells -0.0.
    if value.is_sign_negative() || !(0.0..BELOW).contains(&thousandths) {
        return None;
    }
    // Rounded by truncating half more (one instruction; `round` is a call
    // on baseline x86-64): a wrong guess fails the check below.
    let scaled = (thousandths + 0.5) as u64;
    if scaled as f64 / 1000.0 != value {
        return None;
    }
    Some((scaled / 1000, (scaled % 1000) as u16))
}

/// `whole.thousandths` as serde_json writes that `f64`: trailing zeros of
/// the fraction dropped, one kept (`2.0`, `0.05`, `1.496`).
#[inline(always)]
fn write_thousandths<F: Formatter>(
    out: &mut Vec<u8>,
    formatter: &mut F,
    whole: u64,
    thousandths: u16,
) -> io::Result<()> {
    formatter.write_u64(out, whole)?;
    let digits = [
        b'.',
        b'0' + (thousandths / 100) as u8,
        b'0' + (thousandths / 10 % 10) as u8,
        b'0' + (thousandths % 10) as u8,
    ];
    let len = match thousandths {
        t if t % 100 == 0 => 2,
        t if t % 10 == 0 => 3,
        _ => 4,
    };
    out.extend_from_slice(&digits[..len]);
    Ok(())
}

/// A JSON object being written: its fields in order, each a key and a
/// value, as serde_json's serializer asks its formatter for them.
struct Object<'a, F> {
    out: &'a mut Vec<u8>,
    formatter: &'a mut F,
    first: bool,
}

impl<'a, F: Layout> Object<'a, F> {
    fn open(out: &'a mut Vec<u8>, formatter: &'a mut F) -> io::Result<Self> {
        formatter.begin_object(out)?;
        Ok(Object {
            out,
            formatter,
            first: true,
        })
    }

    /// Starts a field; its value follows, then [`Object::end_value`].
    /// Inlined with [`Layout::field`], so the key is a constant where it
    /// is copied: a copy of a known length is made inline, not by `memcpy`.
    #[inline(always)]
    fn key(&mut self, key: &str) -> io::Result<()> {
        let first = std::mem::replace(&mut self.first, false);
        self.formatter.field(self.out, first, key)
    }

    #[inline(always)]
    fn end_value(&mut self) -> io::Result<()> {
        self.formatter.end_object_value(self.out)
    }

    #[inline(always)]
    fn str(&mut self, key: &str, value: &str) -> io::Result<()> {
        self.key(key)?;
        write_str(self.out, self.formatter, value)?;
        self.end_value()
    }

    #[inline(always)]
    fn str_unless_empty(&mut self, key: &str, value: &str) -> io::Result<()> {
        if value.is_empty() {
            return Ok(());
        }
        self.str(key, value)
    }

    fn strs(&mut self, key: &str, values: &[String]) -> io::Result<()> {
        self.key(key)?;
        write_array(self.out, self.formatter, values, |out, formatter, value| {
            write_str(out, formatter, value)
        })?;
        self.end_value()
    }

    fn strs_unless_empty(&mut self, key: &str, values: &[String]) -> io::Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.strs(key, values)
    }

    #[inline(always)]
    fn u32(&mut self, key: &str, value: u32) -> io::Result<()> {
        self.key(key)?;
        self.formatter.write_u32(self.out, value)?;
        self.end_value()
    }

    /// A number as serde_json writes an `f64`: `null` when not finite.
    #[inline(always)]
    fn f64(&mut self, key: &str, value: f64) -> io::Result<()> {
        self.key(key)?;
        if let Some((whole, thousandths)) = whole_thousandths(value) {
            write_thousandths(self.out, self.formatter, whole, thousandths)?;
        } else if value.is_finite() {
            self.formatter.write_f64(self.out, value)?;
        } else {
            self.formatter.write_null(self.out)?;
        }
        self.end_value()
    }

    /// An HTTP status or gRPC code, `null` when nothing answered.
    #[inline(always)]
    fn status(&mut self, key: &str, value: Option<i32>) -> io::Result<()> {
        self.key(key)?;
        match value {
            Some(code) => self.formatter.write_i32(self.out, code)?,
            None => self.formatter.write_null(self.out)?,
        }
        self.end_value()
    }

    fn close(self) -> io::Result<()> {
        self.formatter.end_object(self.out)
    }
}

/// A serde_json formatter that also writes a field's key in one go: what
/// `begin_object_key`, the quoted key, `end_object_key` and
/// `begin_object_value` write, without a call for each. Keys are known
/// words that need no escaping.
pub trait Layout: Formatter {
    fn field(&mut self, out: &mut Vec<u8>, first: bool, key: &str) -> io::Result<()>;

    /// JSON text received as it is (a downstream's report), laid out.
    fn raw(&mut self, out: &mut Vec<u8>, text: &str) -> io::Result<()> {
        self.write_raw_fragment(out, text)
    }
}

impl Layout for CompactFormatter {
    #[inline(always)]
    fn field(&mut self, out: &mut Vec<u8>, first: bool, key: &str) -> io::Result<()> {
        out.reserve(key.len() + 4);
        if !first {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        Ok(())
    }
}

impl Layout for CappedPretty {
    #[inline(always)]
    fn field(&mut self, out: &mut Vec<u8>, first: bool, key: &str) -> io::Result<()> {
        self.begin_object_key(out, first)?;
        out.reserve(key.len() + 4);
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\": ");
        Ok(())
    }

    fn raw(&mut self, out: &mut Vec<u8>, text: &str) -> io::Result<()> {
        self.reindent(out, text);
        Ok(())
    }
}

/// A JSON string: copied whole when nothing in it needs escaping, else
/// escaped as serde_json escapes (quote, backslash, control characters;
/// nothing else).
fn write_str<F: Layout>(out: &mut Vec<u8>, formatter: &mut F, value: &str) -> io::Result<()> {
    let bytes = value.as_bytes();
    if !needs_escape(bytes) {
        // What begin_string, the fragment and end_string write, at once.
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        put(out, bytes);
        out.push(b'"');
        return Ok(());
    }
    formatter.begin_string(out)?;
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape = match byte {
            b'"' => CharEscape::Quote,
            b'\\' => CharEscape::ReverseSolidus,
            0x08 => CharEscape::Backspace,
            0x0c => CharEscape::FormFeed,
            b'\n' => CharEscape::LineFeed,
            b'\r' => CharEscape::CarriageReturn,
            b'\t' => CharEscape::Tab,
            0x00..=0x1f => CharEscape::AsciiControl(byte),
            _ => continue,
        };
        if start < at {
            formatter.write_string_fragment(out, &value[start..at])?;
        }
        formatter.write_char_escape(out, escape)?;
        start = at + 1;
    }
    if start < bytes.len() {
        formatter.write_string_fragment(out, &value[start..])?;
    }
    formatter.end_string(out)
}

/// Appends `bytes`. Most strings of a report are short (words, numbers,
/// ids, names): one of 4 to 32 bytes is copied as two overlapping pieces
/// of a fixed size, which the compiler writes inline, where a copy of a
/// length known only when it runs is a call to `memcpy`.
#[inline(always)]
pub(crate) fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    #[inline(always)]
    fn overlapping<const N: usize>(out: &mut Vec<u8>, bytes: &[u8]) {
        let (len, base) = (bytes.len(), out.len());
        let head: &[u8; N] = bytes[..N].try_into().expect("N bytes");
        let tail: &[u8; N] = bytes[len - N..].try_into().expect("N bytes");
        out.extend_from_slice(head);
        out.truncate(base + len - N);
        out.extend_from_slice(tail);
    }
    match bytes.len() {
        17..=32 => overlapping::<16>(out, bytes),
        8..=16 => overlapping::<8>(out, bytes),
        4..=7 => overlapping::<4>(out, bytes),
        _ => out.extend_from_slice(bytes),
    }
}

#[cfg(test)]
mod tests;
