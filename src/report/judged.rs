//! What a caller judges a received report by, read in one validating pass
//! over its text ([`crate::guard::scan`]): every field of a report checked
//! to be of the type [`Report`](super::Report) reads it as (so a report
//! judged here parses whole later), the ones the caller judges by kept,
//! the subtree below (each hop's own report) held to JSON's grammar and
//! passed over, nothing built.

use std::borrow::Cow;

use super::{word, Gist, InboundProtocol};
use crate::guard::scan::{serde_said, Scan, ScanError, Scanned, Str};

/// A received report's text as its caller judges it: its gist, and
/// whether it names the service that wrote it.
#[derive(Debug)]
pub(super) struct Judged {
    pub(super) gist: Gist,
    pub(super) names_a_service: bool,
    /// How deep its arrays and objects nest (no deeper than any report
    /// may: the scanner refuses a text that does).
    pub(super) nesting: usize,
}

/// The fields of a report, by the type they are read as.
#[derive(Clone, Copy)]
enum Field {
    /// Judged by: the service's name (not empty), its message (kept when it
    /// timed out), how the request reached it, whether it ran out of time,
    /// and its hop groups (failed hops counted).
    Service,
    Message,
    Protocol,
    TimedOut,
    ParallelForwards,
    /// Checked and not kept.
    Text,
    Texts,
    U32,
    U64,
    F64,
    /// Checked by serde_json as the report's own type (a small object,
    /// present only with TLS or a known caller).
    Tls,
    Peer,
}

/// A report's fields by their JSON names, and the type each is read as,
/// in the order a servicemock writes them.
const FIELDS: [(&str, Field); 27] = [
    ("ReceivedDate", Field::Text),
    ("Message", Field::Message),
    ("RequestInfo", Field::Texts),
    ("Service", Field::Service),
    ("Version", Field::Text),
    ("Host", Field::Text),
    ("Namespace", Field::Text),
    ("PodIp", Field::Text),
    ("Protocol", Field::Protocol),
    ("Method", Field::Text),
    ("BodyBytes", Field::U64),
    ("BodySha256", Field::Text),
    ("RequestId", Field::Text),
    ("DurationMs", Field::F64),
    ("ParallelForwards", Field::ParallelForwards),
    ("Injected", Field::Texts),
    ("Padding", Field::Text),
    ("TimedOut", Field::TimedOut),
    ("Attempt", Field::U32),
    ("Try", Field::U32),
    ("StreamMessage", Field::U32),
    ("Plan", Field::Text),
    ("Tls", Field::Tls),
    ("Peer", Field::Peer),
    ("TraceId", Field::Text),
    ("SpanId", Field::Text),
    ("TraceUrl", Field::Text),
];

/// Where `name` is among [`FIELDS`]: a match on constant strings, which
/// the compiler makes a switch on the length and comparisons in place (a
/// test holds it to [`FIELDS`]).
fn field_index(name: &str) -> Option<usize> {
    Some(match name {
        "ReceivedDate" => 0,
        "Message" => 1,
        "RequestInfo" => 2,
        "Service" => 3,
        "Version" => 4,
        "Host" => 5,
        "Namespace" => 6,
        "PodIp" => 7,
        "Protocol" => 8,
        "Method" => 9,
        "BodyBytes" => 10,
        "BodySha256" => 11,
        "RequestId" => 12,
        "DurationMs" => 13,
        "ParallelForwards" => 14,
        "Injected" => 15,
        "Padding" => 16,
        "TimedOut" => 17,
        "Attempt" => 18,
        "Try" => 19,
        "StreamMessage" => 20,
        "Plan" => 21,
        "Tls" => 22,
        "Peer" => 23,
        "TraceId" => 24,
        "SpanId" => 25,
        "TraceUrl" => 26,
        _ => return None,
    })
}

/// Reads a report's text (checked as UTF-8) as its caller judges it,
/// measuring how deep it nests on the way.
pub(super) fn read(text: &str) -> Result<Judged, ScanError> {
    let mut scan = Scan::new(text);
    let mut seen = 0u32;
    let (mut service, mut message) = (None, None);
    let (mut protocol, mut timed_out, mut failed_hops) = (InboundProtocol::default(), false, 0);
    scan.object(|scan, key| {
        let name = key_name(scan, key)?;
        let Some(index) = field_index(&name) else {
            return scan.skip();
        };
        if seen & (1 << index) != 0 {
            return Err(scan.error(format!("duplicate field `{name}`")));
        }
        seen |= 1 << index;
        let at = scan.position();
        let typed = |e: ScanError| e.within(FIELDS[index].0);
        match FIELDS[index].1 {
            Field::Service => service = Some(text_value(scan).map_err(typed)?),
            Field::Message => message = Some(text_value(scan).map_err(typed)?),
            Field::Protocol => protocol = protocol_word(scan, at).map_err(typed)?,
            Field::TimedOut => timed_out = scan.boolean().map_err(typed)?,
            Field::ParallelForwards => failed_hops = failed_in_groups(scan).map_err(typed)?,
            Field::Text => plain_text(scan).map_err(typed)?,
            Field::Texts => scan.array(plain_text).map_err(typed)?,
            Field::U32 => unsigned(scan, u64::from(u32::MAX)).map_err(typed)?,
            Field::U64 => unsigned(scan, u64::MAX).map_err(typed)?,
            Field::F64 => finite(scan).map_err(typed)?,
            Field::Tls => as_serde_reads::<Option<crate::caller::Tls>>(scan).map_err(typed)?,
            Field::Peer => as_serde_reads::<Option<crate::caller::Peer>>(scan).map_err(typed)?,
        }
        Ok(())
    })?;
    let nesting = scan.deepest();
    scan.end()?;
    let names_a_service = service.as_ref().is_some_and(|s| !s.is_empty());
    Ok(Judged {
        gist: Gist {
            protocol,
            failed_hops,
            timed_out: timed_out.then(|| message.unwrap_or_default().into_owned()),
        },
        names_a_service,
        nesting,
    })
}

/// How many hops of a report's `ParallelForwards` carry an `Error` (one
/// that is not `null`), counted as the groups are read. Each hop's other
/// fields and its own report are passed over, checked as JSON only: their
/// shape is the downstream's to tell.
pub(super) fn failed_in_groups(scan: &mut Scan<'_>) -> Scanned<usize> {
    let mut failed = 0;
    scan.array(|scan| {
        only_field(scan, "SequentialForwards", |scan| {
            scan.array(|scan| {
                only_field(scan, "Error", |scan| {
                    if !scan.null()? {
                        scan.skip()?;
                        failed += 1;
                    }
                    Ok(())
                })
            })
        })
    })?;
    Ok(failed)
}

/// An object of which one field matters: `read` reads its value, every
/// other field is passed over (checked as JSON), and the field named twice
/// is an error, as serde's derived readers make it.
fn only_field<'a>(
    scan: &mut Scan<'a>,
    name: &'static str,
    mut read: impl FnMut(&mut Scan<'a>) -> Scanned<()>,
) -> Scanned<()> {
    let mut seen = false;
    scan.object(|scan, key| {
        if key_name(scan, key)? != name {
            return scan.skip();
        }
        if std::mem::replace(&mut seen, true) {
            return Err(scan.error(format!("duplicate field `{name}`")));
        }
        read(scan)
    })
}

/// How many hops of the hop groups in `text` carry an `Error`.
pub(super) fn failed_hops(text: &str) -> Scanned<usize> {
    let mut scan = Scan::new(text);
    let failed = failed_in_groups(&mut scan)?;
    scan.end()?;
    Ok(failed)
}

/// A key's name: as written, unless escapes make it another (decoded).
#[inline(always)]
fn key_name<'a>(scan: &Scan<'a>, key: Str<'a>) -> Scanned<Cow<'a, str>> {
    key.value()
        .map_err(|e| scan.error(format!("invalid key: {}", serde_said(&e))))
}

/// A string as a report's `String` reads it (an escaped one decoded, so
/// an unpaired surrogate is refused as serde_json refuses it).
#[inline]
fn text_value<'a>(scan: &mut Scan<'a>) -> Scanned<Cow<'a, str>> {
    let at = scan.position();
    let string = scan.string()?;
    string
        .value()
        .map_err(|e| scan.error_at(at, format!("invalid string: {}", serde_said(&e))))
}

/// A string as a report's `String` reads it, checked and not kept.
#[inline]
fn plain_text(scan: &mut Scan<'_>) -> Scanned<()> {
    text_value(scan).map(drop)
}

/// The word of an inbound protocol (`http/1.1`, `grpc`, …).
fn protocol_word(scan: &mut Scan<'_>, at: usize) -> Scanned<InboundProtocol> {
    use word::Word;
    let said = text_value(scan)?;
    InboundProtocol::from_word(&said)
        .ok_or_else(|| scan.error_at(at, format!("unknown {} {said:?}", InboundProtocol::WHAT)))
}

/// A whole number from 0 to `max`, written without fraction or exponent
/// (as serde_json reads an unsigned integer).
fn unsigned(scan: &mut Scan<'_>, max: u64) -> Scanned<()> {
    let at = scan.position();
    let number = scan.number()?;
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(scan.error_at(
            at,
            format!("invalid type: {number}, expected an unsigned integer"),
        ));
    }
    // Nine digits fit any of them; only longer ones are read.
    if number.len() <= 9 {
        return Ok(());
    }
    match number.parse::<u64>() {
        Ok(n) if n <= max => Ok(()),
        _ => Err(scan.error_at(
            at,
            format!("invalid value: {number}, expected at most {max}"),
        )),
    }
}

/// A number a 64-bit float holds (serde_json refuses one out of range).
/// One without an exponent and of fewer than 300 digits always fits, and
/// is not converted.
fn finite(scan: &mut Scan<'_>) -> Scanned<()> {
    let at = scan.position();
    let number = scan.number()?;
    if number.len() < 300 && !number.bytes().any(|b| b == b'e' || b == b'E') {
        return Ok(());
    }
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(()),
        _ => Err(scan.error_at(at, "number out of range")),
    }
}

/// A value read by serde_json as `T` (its text found by the scanner).
fn as_serde_reads<'a, T: serde::Deserialize<'a>>(scan: &mut Scan<'a>) -> Scanned<()> {
    let at = scan.position();
    scan.skip()?;
    serde_json::from_str::<T>(scan.since(at))
        .map(drop)
        .map_err(|e| {
            // serde_json's own place is within the value; ours is in the text.
            let said = e.to_string();
            let what = said
                .rsplit_once(" at line ")
                .map_or(said.as_str(), |(what, _)| what);
            scan.error_at(at, what.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::json::from_json_unbounded;
    use crate::report::Report;

    /// A report with every field a servicemock writes, a failed hop and a
    /// nested report of its own.
    const FULL: &str = r#"{"ReceivedDate":"2026-11-26T00:00:00.000000000Z","Message":"b ran out of \"50ms\"","RequestInfo":["GET / HTTP/1.1","host: b"],"Service":"b","Version":"v1","Host":"h","Namespace":"n","PodIp":"10.0.0.1","Protocol":"h2c","Method":"POST","BodyBytes":12,"BodySha256":"ab","RequestId":"r","DurationMs":1.5,"ParallelForwards":[{"SequentialForwards":[{"Url":"http://c/","Result":"ok","Status":200,"Response":{"Service":"c","ParallelForwards":[{"SequentialForwards":[{"Error":"deeper"}]}]}},{"Url":"http://d/","Result":"status","Error":"answered 503"},{"Url":"http://e/","Error":null}]},{"SequentialForwards":[{"Url":"http://f/","Result":"dns","Error":"x"}]}],"Injected":["delay"],"Padding":"xx","TimedOut":true,"Attempt":2,"Try":1,"StreamMessage":3,"Plan":"p","Tls":{"Version":"TLSv1.3","Cipher":"c"},"Peer":{"Source":"tls","Principal":"spiffe://x","URI":["spiffe://x"]},"TraceId":"t","SpanId":"s","TraceUrl":"u"}"#;

    #[test]
    fn every_field_is_found_where_it_is_listed() {
        for (index, (name, _)) in FIELDS.iter().enumerate() {
            assert_eq!(field_index(name), Some(index), "{name}");
        }
        assert_eq!(field_index("Servic"), None);
        // And the list is every field a report is written with.
        let written: serde_json::Value = serde_json::from_str(FULL).unwrap();
        let names: Vec<&str> = written
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut listed: Vec<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
        listed.sort_unstable();
        let mut names = names;
        names.sort_unstable();
        assert_eq!(names, listed);
    }

    #[test]
    fn every_field_is_read_and_the_gist_is_what_the_parsed_report_says() {
        let judged = read(FULL).unwrap();
        let report: Report = serde_json::from_str(FULL).unwrap();
        assert!(judged.names_a_service);
        assert_eq!(judged.gist.protocol, report.protocol);
        assert_eq!(
            judged.gist.failed_hops, 2,
            "this level's hops, not deeper ones"
        );
        assert_eq!(judged.gist.failed_hops, report.failed_hops());
        assert_eq!(
            judged.gist.timed_out.as_deref(),
            Some(report.message.as_str())
        );
        assert_eq!(report.message, "b ran out of \"50ms\"", "unescaped");
    }

    #[test]
    fn a_field_of_another_type_or_read_twice_is_named() {
        for (from, to, says) in [
            (
                r#""Try":1"#,
                r#""Try":"1""#,
                "Try: invalid type: expected a number",
            ),
            (
                r#""Attempt":2"#,
                r#""Attempt":2.0"#,
                "Attempt: invalid type: 2.0",
            ),
            (
                r#""Attempt":2"#,
                r#""Attempt":4294967296"#,
                "Attempt: invalid value",
            ),
            (
                r#""BodyBytes":12"#,
                r#""BodyBytes":-1"#,
                "BodyBytes: invalid type",
            ),
            (
                r#""DurationMs":1.5"#,
                r#""DurationMs":1e999"#,
                "DurationMs: number out of range",
            ),
            (
                r#""TimedOut":true"#,
                r#""TimedOut":1"#,
                "TimedOut: invalid type: expected a boolean",
            ),
            (
                r#""Host":"h""#,
                r#""Host":null"#,
                "Host: invalid type: expected a string",
            ),
            (
                r#""Host":"h""#,
                r#""Host":"\ud800""#,
                "Host: invalid string: unexpected end of hex escape",
            ),
            (
                r#""Injected":["delay"]"#,
                r#""Injected":"delay""#,
                "Injected: invalid type: expected an array",
            ),
            (
                r#""Tls":{"Version""#,
                r#""Tls":{"Version":1,"V""#,
                "Tls: invalid type: integer `1`",
            ),
            (
                r#""Plan":"p""#,
                r#""Plan":"p","Service":"x""#,
                "duplicate field `Service`",
            ),
            (
                r#""Url":"http://e/","Error":null"#,
                r#""Error":null,"Error":"x""#,
                "ParallelForwards: duplicate field `Error`",
            ),
            (
                r#""Protocol":"h2c""#,
                r#""Protocol":"h3""#,
                "Protocol: unknown inbound protocol \"h3\"",
            ),
            (
                r#""ParallelForwards":["#,
                r#""ParallelForwards":[[],"#,
                "ParallelForwards: invalid type: expected an object",
            ),
        ] {
            assert!(FULL.contains(from), "{from}");
            let text = FULL.replacen(from, to, 1);
            let why = read(&text)
                .err()
                .unwrap_or_else(|| panic!("{to} was read"))
                .to_string();
            assert!(why.starts_with(says), "{to}: {why}");
            assert!(why.contains(" at line 1 column "), "{why}");
        }
        // A key written with escapes is the field it spells.
        let escaped = FULL.replacen(r#""Try":1"#, r#""T\u0072y":"1""#, 1);
        assert!(read(&escaped)
            .unwrap_err()
            .to_string()
            .starts_with("Try: invalid type"));
        // Unknown fields are passed over, checked as JSON only.
        let unknown = FULL.replacen(r#""Plan""#, r#""Later":{"x":[1,"y"]},"Plan""#, 1);
        assert!(read(&unknown).is_ok());
    }

    #[test]
    fn whatever_is_judged_a_report_parses_whole_with_the_same_gist() {
        // Deterministic mutations of a full report: whenever the judge
        // reads one, the report parses and says what the gist says.
        let specials = b"\"\\{}[],:-.e0 1a";
        let (mut read_ok, mut refused) = (0, 0);
        let seed = 0x9e37_79b9_7f4a_7c15;
        for bytes in crate::guard::scan::mutations::mutations(FULL, specials, 1, seed, 20_000) {
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let Ok(judged) = read(text) else {
                refused += 1;
                continue;
            };
            read_ok += 1;
            let report: Report = from_json_unbounded(text)
                .unwrap_or_else(|e| panic!("judged but does not parse: {e}\n{text}"));
            assert_eq!(judged.gist.protocol, report.protocol, "{text}");
            assert_eq!(judged.gist.failed_hops, report.failed_hops(), "{text}");
            let timed_out = report.timed_out.then(|| report.message.clone());
            assert_eq!(judged.gist.timed_out, timed_out, "{text}");
            assert_eq!(judged.names_a_service, !report.service.is_empty(), "{text}");
        }
        assert!(read_ok > 1000 && refused > 1000, "{read_ok} / {refused}");
    }
}
