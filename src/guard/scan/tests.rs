use super::runs::special_bytes_in_word;
use super::*;
use crate::guard::json::from_json_unbounded;

/// Whether serde_json reads `text` as one JSON value.
fn serde_reads(text: &str) -> bool {
    from_json_unbounded::<serde::de::IgnoredAny>(text).is_ok()
}

/// Whether the scanner reads `text` as one JSON value.
fn scans(text: &str) -> Result<(), ScanError> {
    let mut scan = Scan::new(text);
    scan.skip()?;
    scan.end()
}

const REPORT: &str = r#"{"ReceivedDate":"2026-11-26T00:00:00.000000000Z","Message":"a \"quoted\" \\ line\n\u00e9\ud83d\ude00","RequestInfo":["GET / HTTP/1.1","host: c"],"Service":"c","DurationMs":-0.1e-3,"ParallelForwards":[{"SequentialForwards":[{"Url":"http://d/","Status":200,"Error":null,"Response":{"Service":"d","ParallelForwards":[],"Attempt":1,"T":true,"F":false,"E":{},"N":[0,1.5,2E+10,-0]}}]}],"Attempt":1}"#;

#[test]
fn it_reads_what_serde_json_reads_and_refuses_what_it_refuses() {
    let cases = [
        REPORT,
        "0",
        "-0",
        "1.5e-3",
        "\"\"",
        " [ 1 , { \"a\" : [ ] } ]\n",
        "[]",
        "{}",
        "",
        " ",
        "01",
        "1.",
        ".5",
        "1e",
        "1e+",
        "-",
        "+1",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{1:2}",
        "{\"a\":1",
        "[1",
        "[1 2]",
        "\"unclosed",
        "\"bad \\x escape\"",
        "\"short \\u12\"",
        "\"\\u12G4\"",
        "\"tab\tinside\"",
        "\"nul\u{0}inside\"",
        "tru",
        "truth",
        "nul",
        "null null",
        "[true,false,null]",
        "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
        "\"\\\"\"",
        "\"\\\\\"",
        "\"ends with backslash\\",
    ];
    for text in cases {
        assert_eq!(
            scans(text).is_ok(),
            serde_reads(text),
            "{text:?}: {:?}",
            scans(text)
        );
    }
}

#[test]
fn mutated_reports_are_judged_as_serde_json_judges_them() {
    // A few thousand deterministic mutations of a report: a byte replaced
    // by one that matters to JSON, deleted, or doubled.
    let specials = b"\"\\{}[],:-+.eE0a \t\n\x01u/";
    let (mut accepted, mut refused) = (0, 0);
    for bytes in super::mutations::mutations(REPORT, specials, 3, 0x2545_f491_4f6c_dd1d, 20_000) {
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let ours = scans(text);
        assert_eq!(ours.is_ok(), serde_reads(text), "{text}: {ours:?}");
        if ours.is_ok() {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(accepted > 1000 && refused > 1000, "{accepted} / {refused}");
}

#[test]
fn a_plain_run_ends_at_the_first_quote_backslash_or_control_byte() {
    for len in 0..20 {
        for at in 0..=len {
            for special in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
                let mut bytes = vec![b'a'; len];
                // Bytes that are none of them around the special one,
                // including ones a word's borrow could confuse.
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = [b'a', 0x20, 0x7f, 0xff, 0x80, b'#', b']', 0x21][i % 8];
                }
                if at < len {
                    bytes[at] = special;
                }
                for from in 0..=at {
                    assert_eq!(plain_run_end(&bytes, from), at, "{bytes:?} from {from}");
                }
            }
        }
    }
}

#[test]
fn a_word_flags_its_first_special_byte_as_the_vector_does() {
    // The word's flags may be wrong above the first one (borrows); the
    // first is what both are read for.
    let samples = [
        b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xff, b'#', b']',
    ];
    let mut state = 7u64;
    for _ in 0..20_000 {
        let mut chunk = [0u8; 8];
        for b in &mut chunk {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = samples[(state >> 33) as usize % samples.len()];
        }
        let truth = chunk
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map_or(32, |i| i as u32);
        assert_eq!(
            special_bytes_in_word(&chunk).trailing_zeros(),
            truth,
            "{chunk:?}"
        );
    }
}

#[test]
fn errors_say_what_and_where() {
    let err = scans("{\"a\":[1,\n  2,]}").unwrap_err();
    assert_eq!(err.to_string(), "expected a value at line 2 column 5");
    let err = scans("{\"a\":\"x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "EOF while parsing a string at line 1 column 8"
    );
    let err = scans("[1] x").unwrap_err();
    assert_eq!(err.to_string(), "trailing characters at line 1 column 5");
}

#[test]
fn the_deepest_nesting_is_what_json_nesting_measures() {
    for text in [
        REPORT,
        "1",
        "[]",
        "{}",
        "[[],[[{}]]]",
        r#"{"a":"[[[{{{","b":[{"c":[]}]}"#,
    ] {
        let mut scan = Scan::new(text);
        scan.skip().unwrap();
        assert_eq!(
            scan.deepest(),
            crate::guard::json::json_nesting(text.as_bytes()),
            "{text}"
        );
    }
    // Objects and arrays read field by field count as skipped ones do.
    let mut scan = Scan::new(r#"{"a":[{"b":[[1]]}],"c":{}}"#);
    scan.object(|scan, key| match key.inner() {
        "a" => scan.array(Scan::skip),
        _ => scan.skip(),
    })
    .unwrap();
    assert_eq!(scan.deepest(), 5);
}

#[test]
fn nesting_is_bounded_without_recursion() {
    let nested = |levels: usize| {
        format!(
            "{}{}",
            "[{\"a\":".repeat(levels / 2),
            "}]".repeat(levels / 2)
        )
        .replace("{\"a\":}", "{\"a\":0}")
    };
    let within = nested(MAX_REPORT_NESTING);
    assert!(scans(&within).is_ok(), "{MAX_REPORT_NESTING} levels");
    let beyond = format!("[{within}]");
    let err = scans(&beyond).unwrap_err();
    assert!(err.to_string().starts_with("nested deeper than"), "{err}");
}

#[test]
fn objects_and_arrays_hand_over_their_members() {
    let mut scan = Scan::new(r#" { "a" : [ "x" , "y\n" ] , "b\u0062" : 7 , "c" : null } "#);
    let mut seen = Vec::new();
    scan.object(|scan, key| {
        let key = key.value().unwrap().into_owned();
        match key.as_str() {
            "a" => scan.array(|scan| {
                let s = scan.string()?;
                seen.push(format!("a[]={}/{}", s.value().unwrap(), s.escaped));
                Ok(())
            }),
            "bb" => {
                seen.push(format!("bb={}", scan.number()?));
                Ok(())
            }
            _ => {
                seen.push(format!("{key} null={}", scan.null()?));
                Ok(())
            }
        }
    })
    .unwrap();
    scan.end().unwrap();
    assert_eq!(seen, ["a[]=x/false", "a[]=y\n/true", "bb=7", "c null=true"]);
    let mut scan = Scan::new("[1]");
    assert_eq!(
        scan.string().unwrap_err().to_string(),
        "invalid type: expected a string at line 1 column 1"
    );
}
