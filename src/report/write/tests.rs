//! The hand-written report against serde_json's: the same bytes, compact
//! and indented, for every field and escape; the word test of escapes.

use super::*;
use crate::caller::{Peer, Tls, XfccElement};
use crate::plan::Protocol;
use crate::report::{AnsweredBy, InboundProtocol, Outcome};

/// A report with every field set, strings that need every escape, a
/// parsed child, a received child kept as text, and raw groups.
fn rich() -> Report {
    let received_text = r#" {"Service":"c","Message":"a \"quoted\" \\ word\n","ParallelForwards":[ ],"Attempt":1} "#;
    let raw_child: Report = serde_json::from_str(
        r#"{"Service":"d","ParallelForwards":[{"SequentialForwards":[{"Url":"http://e:8080/","Result":"ok","Protocol":"http","Status":200,"StartMs":0.1,"DurationMs":1e-7}]}]}"#,
    )
    .unwrap();
    let child = Report {
        service: "b".into(),
        version: "v2".into(),
        protocol: InboundProtocol::H2c,
        duration_ms: 1.25,
        tls: Some(Box::new(Tls {
            version: "TLSv1_3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            alpn: "h2".into(),
            sni: String::new(),
        })),
        peer: Some(Box::new(Peer {
            source: "xfcc".into(),
            principal: "spiffe://cluster.local/ns/a/sa/b".into(),
            subject: "CN=\"b, inc\";O=x".into(),
            uri: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
            dns: vec![],
            serial: "0a".into(),
            not_after: String::new(),
            elements: vec![
                XfccElement {
                    by: "spiffe://x".into(),
                    hash: "ab".into(),
                    subject: String::new(),
                    uri: vec![],
                    dns: vec!["a".into(), "b".into()],
                },
                XfccElement::default(),
            ],
            omitted: 3,
            unparsed: "\u{7}bell".into(),
            error: "bad \t tab".into(),
        })),
        parallel_forwards: vec![ParallelForward {
            sequential_forwards: vec![Forward {
                url: "http://d:8080/".into(),
                result: Outcome::Ok,
                protocol: Protocol::Grpc,
                response: Some(Received::from(raw_child)),
                ..Forward::default()
            }],
        }]
        .into(),
        ..Report::default()
    };
    let hop = Forward {
        url: "http://b:8080/@c (POST plan)".into(),
        result: Outcome::Status,
        protocol: Protocol::H2c,
        status: Some(-2),
        start_ms: 0.016,
        duration_ms: f64::NAN,
        error: Some("answered 503 \u{1}\u{1f} é \u{2028} / done".into()),
        answered_by: Some(AnsweredBy::parse("proxy (server: envoy)")),
        received_as: Some(InboundProtocol::Http11),
        response: Some(Received::from(child)),
        options: Some("POST 1 KiB, timeout 3s".into()),
        tries: vec![
            Try {
                number: 1,
                result: Outcome::Timeout,
                status: None,
                start_ms: 0.0,
                duration_ms: 3000.5,
                error: Some("no answer".into()),
                answered_by: Some(AnsweredBy::parse("other: 418 teapot")),
                response: Some(Received::read(bytes::Bytes::from(received_text)).unwrap().0),
            },
            Try {
                number: 2,
                ..Try::default()
            },
        ],
    };
    Report {
        received_date: "2026-12-06T07:00:00.123456789Z".into(),
        message: "a called 1 hop(s), 1 failed".into(),
        request_info: vec![
            "GET /@b HTTP/1.1".into(),
            "x-weird: \"q\" \\ \u{7f}".into(),
            String::new(),
        ]
        .into(),
        service: "a".into(),
        version: "v1".into(),
        host: "pod-1".into(),
        namespace: "ns".into(),
        pod_ip: "10.0.0.1".into(),
        protocol: InboundProtocol::Http11,
        method: "POST".into(),
        body_bytes: 12,
        body_sha256: "ff".into(),
        request_id: "id".into(),
        duration_ms: 12345.678,
        parallel_forwards: vec![
            ParallelForward {
                sequential_forwards: vec![hop, Forward::default()],
            },
            ParallelForward::default(),
        ]
        .into(),
        injected: vec!["delay 2s".into()],
        padding: "xxxx".into(),
        timed_out: true,
        attempt: 2,
        try_number: 1,
        stream_message: 4,
        plan: "default".into(),
        tls: None,
        peer: None,
        trace_id: "4bf9".into(),
        span_id: "00f0".into(),
        trace_url: "http://j/{trace}".into(),
    }
}

/// Reports as they come: empty, rich, rich read back from its JSON
/// (groups and children kept as text), and rich as this service's own,
/// its `RequestInfo` the request's header map (values to escape, bytes
/// that are not UTF-8, a name twice).
fn reports() -> Vec<Report> {
    let rich = rich();
    let text = serde_json::to_string(&rich).unwrap();
    let read_back: Report = serde_json::from_str(&text).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "b:8080".parse().unwrap());
    for value in [&b"\"q\" \\ \t"[..], b"", b"caf\xe9", b"plain"] {
        let value = http::HeaderValue::from_bytes(value).unwrap();
        headers.append("x-weird", value);
    }
    let own = Report {
        request_info: RequestInfo::received("POST /@b HTTP/1.1".into(), headers.into()),
        ..rich.clone()
    };
    vec![Report::default(), rich, read_back, own]
}

#[test]
fn compact_is_what_serde_json_writes() {
    for report in reports() {
        let by_hand = String::from_utf8(compact(&report)).unwrap();
        let by_serde = serde_json::to_string(&report).unwrap();
        assert_eq!(by_hand, by_serde);
    }
}

#[test]
fn indented_is_what_serde_json_writes() {
    for report in reports() {
        let mut by_hand = Vec::new();
        write_report(
            &mut by_hand,
            &mut super::super::pretty::CappedPretty::default(),
            &report,
        )
        .unwrap();
        let by_serde = super::super::pretty::to_vec(&report).unwrap();
        assert_eq!(
            String::from_utf8(by_hand).unwrap(),
            String::from_utf8(by_serde).unwrap()
        );
    }
}

#[test]
fn the_word_test_agrees_with_the_byte_test() {
    let naive = |text: &[u8]| text.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    let fillers = [
        b'a', b' ', b'!', b'#', b'[', b']', b'/', 0x7f, 0x80, 0xe9, 0xff,
    ];
    let specials = [
        0x00, 0x01, 0x1f, b'\n', b'"', b'\\', 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0xa2, 0xdc,
    ];
    for len in 0..=40 {
        for &filler in &fillers {
            let plain = vec![filler; len];
            assert_eq!(needs_escape(&plain), naive(&plain), "{filler:#x} x{len}");
            for at in 0..len {
                for &special in &specials {
                    let mut text = plain.clone();
                    text[at] = special;
                    assert_eq!(
                        needs_escape(&text),
                        naive(&text),
                        "{special:#x} at {at} in {filler:#x} x{len}"
                    );
                }
            }
        }
    }
}

#[test]
fn escapes_are_found_wherever_they_are() {
    assert!(!needs_escape(b"plain text, no escapes / at all \x7f"));
    for bad in [b'"', b'\\', b'\n', 0x00, 0x1f] {
        for at in [0, 15, 16, 33] {
            let mut text = vec![b'a'; 40];
            text[at] = bad;
            assert!(needs_escape(&text), "{bad} at {at}");
        }
    }
}

#[test]
fn what_is_passed_on_is_counted_from_the_texts_kept() {
    let text = r#"{"Service":"c","ParallelForwards":[],"Attempt":1}"#;
    let received = || Received::read(bytes::Bytes::from(text)).unwrap().0;
    let report = Report {
        parallel_forwards: vec![ParallelForward {
            sequential_forwards: vec![
                Forward {
                    response: Some(received()),
                    tries: vec![Try {
                        response: Some(received()),
                        ..Try::default()
                    }],
                    ..Forward::default()
                },
                Forward {
                    response: Some(Received::from(Report::default())),
                    ..Forward::default()
                },
            ],
        }]
        .into(),
        ..Report::default()
    };
    assert_eq!(passed_on(&report), 2 * text.len());
    // Groups read back and not looked at are passed on whole.
    let compact = String::from_utf8(compact(&report)).unwrap();
    let read_back: Report = serde_json::from_str(&compact).unwrap();
    let groups = &compact[compact.find("[{\"SequentialForwards\"").unwrap()..];
    let groups = &groups[..groups.rfind("],\"Attempt\"").unwrap_or(groups.len() - 1) + 1];
    assert_eq!(passed_on(&read_back), groups.len(), "{groups}");
    assert_eq!(passed_on(&Report::default()), 0);
}

#[test]
fn runs_of_every_length_are_appended_whole() {
    let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
    for len in 0..=text.len() {
        let mut out = b"{\"k\":".to_vec();
        super::put(&mut out, &text[..len]);
        assert_eq!(&out[5..], &text[..len], "{len} bytes");
        assert_eq!(out.len(), 5 + len);
    }
}

/// `{"k":value}` as the report writer writes a duration.
fn duration_written(value: f64) -> String {
    let (mut out, mut formatter) = (Vec::new(), CompactFormatter);
    let mut object = Object::open(&mut out, &mut formatter).unwrap();
    object.f64("k", value).unwrap();
    object.close().unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn durations_are_written_as_serde_json_writes_them() {
    let by_serde = |value: f64| format!("{{\"k\":{}}}", serde_json::to_string(&value).unwrap());
    // Every duration up to 2 s, a microsecond apart, as `millis` makes them.
    for micros in 0..2_000_000u64 {
        let value = crate::report::millis(std::time::Duration::from_micros(micros));
        assert_eq!(duration_written(value), by_serde(value), "{micros} us");
    }
    // Longer ones, spread up to and past where the short form stops (10^12 ms).
    let mut micros = 2_000_000u64;
    while micros < 10_000_000_000_000_000 {
        for near in [micros - 1, micros, micros + 1, micros * 10 - 1] {
            let value = crate::report::millis(std::time::Duration::from_micros(near));
            assert_eq!(duration_written(value), by_serde(value), "{near} us");
        }
        micros = micros * 3 + 7;
    }
    // Numbers no duration makes go the general way, as serde_json's.
    for value in [
        0.1 + 0.2,
        1e-7,
        0.0005,
        1.0 / 3.0,
        -0.0,
        -1.5,
        5e-324,
        1e300,
        2.5e12,
    ] {
        assert_eq!(duration_written(value), by_serde(value), "{value}");
    }
    assert_eq!(duration_written(f64::NAN), "{\"k\":null}");
    assert_eq!(duration_written(f64::INFINITY), "{\"k\":null}");
}
