//! The directives: values, conditions, decisions.
use super::*;
use rand::SeedableRng;

const CAP: Duration = Duration::from_secs(10);

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.insert(*n, v.parse().unwrap());
    }
    h
}

#[test]
fn every_directive_is_read_past_the_no_directive_shortcut() {
    for name in DIRECTIVES {
        assert!(name.starts_with(DIRECTIVE_PREFIX), "{name}");
        let read = Directives::from_headers(&headers(&[(name, "1")]), CAP);
        assert_ne!(read, Ok(Directives::default()), "{name}");
    }
}

#[test]
fn forms_of_values() {
    assert_eq!(parse_status("503").unwrap().choices, vec![(503, 100.0)]);
    assert_eq!(parse_status("503@25%").unwrap().choices, vec![(503, 25.0)]);
    assert_eq!(
        parse_status("503:20,404:10").unwrap().choices,
        vec![(503, 20.0), (404, 10.0)]
    );
    assert_eq!(
        parse_grpc_status("UNAVAILABLE@50%").unwrap().choices,
        vec![(14, 50.0)]
    );
    assert_eq!(parse_grpc_status("8").unwrap().choices, vec![(8, 100.0)]);
    assert_eq!(
        parse_delay("150us:10,2ms:5", CAP).unwrap().choices,
        vec![
            (DelayValue::Fixed(Duration::from_micros(150)), 10.0),
            (DelayValue::Fixed(Duration::from_millis(2)), 5.0)
        ]
    );
    assert_eq!(
        parse_delay("50ms..200ms", CAP).unwrap().choices,
        vec![(
            DelayValue::Range(Duration::from_millis(50), Duration::from_millis(200)),
            100.0
        )]
    );
    assert_eq!(parse_size("64KiB").unwrap(), 65536);
    assert_eq!(parse_reset("25%").unwrap(), 25.0);
}

#[test]
fn bad_values_name_header_and_value() {
    let e = |r: Result<Directives, DirectiveError>| r.unwrap_err().to_string();
    let from = |n: &'static str, v: &str| Directives::from_headers(&headers(&[(n, v)]), CAP);
    assert_eq!(
        e(from(STATUS, "503@125%")),
        "x-mock-status: \"503@125%\": \"125\" is not a percentage from 0 to 100"
    );
    assert_eq!(
        e(from(STATUS, "700")),
        "x-mock-status: \"700\": \"700\" is not an HTTP status from 200 to 599"
    );
    assert_eq!(
        e(from(STATUS, "503:60,404:50")),
        "x-mock-status: \"503:60,404:50\": the percentages add up to 110, more than 100"
    );
    assert_eq!(
        e(from(STATUS, "503,404")),
        "x-mock-status: \"503,404\": \"503\" needs a weight in a list (write value:percent)"
    );
    assert!(e(from(DELAY, "1h")).contains("over the cap of 10s"));
    assert!(e(from(DELAY, "soon")).starts_with("x-mock-delay: \"soon\":"));
    assert!(e(from(DELAY, "2s..1s")).contains("runs backwards"));
    assert!(e(from(GRPC_STATUS, "BROKEN")).contains("not a gRPC code"));
    assert!(e(from(SIZE, "9GiB")).contains("unknown unit"));
    assert!(e(from(SIZE, "1025KiB")).contains("over the limit of 1048576 bytes"));
    assert_eq!(parse_size("1MiB"), Ok(MAX_SIZE));
    assert!(e(from(RESET, "maybe")).contains("x-mock-reset"));
    assert!(e(from(STATUS, "503@25")).contains("percentage"));
}

fn set(pairs: &[(&'static str, &str)]) -> Directives {
    let mut d = Directives::default();
    for (name, text) in pairs {
        d.set(name, text, CAP).unwrap();
    }
    d
}

fn here(version: &'static str, pod: &'static str, attempt: u32) -> Here<'static> {
    Here {
        service: "reviews",
        version,
        pod,
        attempt,
        caller: None,
    }
}

#[test]
fn from_names_the_caller_as_an_authorization_policy_would() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let caller = "spiffe://cluster.local/ns/mock-1/sa/service1";
    let at = |caller| Here {
        caller,
        ..here("v1", "p", 1)
    };
    let status = |text: &str, at: Here<'_>, rng: &mut rand::rngs::StdRng| {
        set(&[(STATUS, text)]).decide(&at, rng).http_status
    };
    assert_eq!(
        status("403@from=service1", at(Some(caller)), &mut rng),
        Some(403)
    );
    assert_eq!(
        status("403@from=SERVICE1", at(Some(caller)), &mut rng),
        Some(403)
    );
    assert_eq!(
        status(&format!("403@from={caller}"), at(Some(caller)), &mut rng),
        Some(403)
    );
    assert_eq!(
        status("403@from=service2", at(Some(caller)), &mut rng),
        None
    );
    assert_eq!(
        status("403@from=service1", at(None), &mut rng),
        None,
        "no caller known"
    );
    assert_eq!(
        status(
            "403@from=spiffe://x/ns/mock-1/sa/service1",
            at(Some(caller)),
            &mut rng
        ),
        None
    );
}

#[test]
fn conditions_choose_where_and_when() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let status = |text: &str, at: Here<'_>, rng: &mut rand::rngs::StdRng| {
        set(&[(STATUS, text)]).decide(&at, rng).http_status
    };
    // The first two attempts fail, the third gets through.
    let by_attempt: Vec<_> = (1..=3)
        .map(|n| status("503@first=2", here("v1", "p", n), &mut rng))
        .collect();
    assert_eq!(by_attempt, [Some(503), Some(503), None]);
    // Only v2 is sick; names compare without case.
    assert_eq!(
        status("503@version=v2", here("v2", "p", 1), &mut rng),
        Some(503)
    );
    assert_eq!(
        status("503@version=V2", here("v2", "p", 1), &mut rng),
        Some(503)
    );
    assert_eq!(status("503@version=v2", here("v1", "p", 1), &mut rng), None);
    assert_eq!(
        status("503@pod=p-7", here("v1", "p-7", 1), &mut rng),
        Some(503)
    );
    assert_eq!(
        status("503@service=ratings", here("v1", "p", 1), &mut rng),
        None
    );
    // Combined with each other and with a probability.
    let both = "503@100%@version=v2@first=1";
    assert_eq!(status(both, here("v2", "p", 1), &mut rng), Some(503));
    assert_eq!(status(both, here("v2", "p", 2), &mut rng), None);
    assert_eq!(
        status("503@0%@version=v2", here("v2", "p", 1), &mut rng),
        None
    );
    // Every directive takes them.
    let d = set(&[
        (DELAY, "5ms@version=v2"),
        (SIZE, "8@first=1"),
        (RESET, "true@version=v2"),
    ]);
    let v1 = d.decide(&here("v1", "p", 1), &mut rng);
    assert_eq!((v1.delay, v1.size), (Duration::ZERO, 8));
    assert!(v1.injected.iter().all(|i| i.kind() == "size"), "{v1:?}");
    assert!(!d.decide_reset(&here("v1", "p", 1), &mut rng));
    assert!(d.decide_reset(&here("v2", "p", 1), &mut rng));
    assert_eq!(d.texts()[0], (DELAY, "5ms@version=v2"));
}

#[test]
fn bad_conditions_are_named() {
    let e = |name, text: &str| {
        Directives::default()
            .set(name, text, CAP)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        e(STATUS, "503@first=0"),
        "x-mock-status: \"503@first=0\": @first=0: write a count of attempts from 1 to 1000"
    );
    assert!(e(STATUS, "503@colour=red").contains("unknown condition @colour="));
    assert!(e(STATUS, "503@version=").contains("@version= names nothing"));
    assert!(e(STATUS, "503@version=v2@version=v3").contains("given twice"));
    assert!(e(STATUS, "503@version=v2@25%").contains("conditions come last"));
    assert!(e(STATUS, "700@version=v2").contains("\"700\" is not an HTTP status"));
    assert_eq!(check_directive(STATUS, "503@first=2@pod=a"), Ok(()));
}

#[test]
fn headers_override_process_defaults() {
    let defaults = set(&[(STATUS, "500"), (SIZE, "10")]);
    let given = Directives::from_headers(&headers(&[(STATUS, "503")]), CAP)
        .unwrap()
        .or(&defaults);
    assert_eq!(given.status.unwrap().value.choices, vec![(503, 100.0)]);
    assert_eq!(given.size.unwrap().value, 10);
}

#[test]
fn observed_rates_match_the_asked_ones() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let d = set(&[(STATUS, "503:20,404:10")]);
    let n = 100_000;
    let (mut s503, mut s404) = (0, 0);
    for _ in 0..n {
        match d.decide(&Here::ANYWHERE, &mut rng).http_status {
            Some(503) => s503 += 1,
            Some(404) => s404 += 1,
            _ => {}
        }
    }
    assert!(
        (f64::from(s503) / f64::from(n) - 0.20).abs() < 0.01,
        "{s503}"
    );
    assert!(
        (f64::from(s404) / f64::from(n) - 0.10).abs() < 0.01,
        "{s404}"
    );
}

#[test]
fn ranges_stay_in_bounds_and_statuses_map() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let d = set(&[(DELAY, "10ms..20ms")]);
    for _ in 0..1000 {
        let delay = d.decide(&Here::ANYWHERE, &mut rng).delay;
        assert!(delay >= Duration::from_millis(10) && delay <= Duration::from_millis(20));
    }
    let http = Decision {
        http_status: Some(503),
        ..Default::default()
    };
    assert_eq!(http.grpc_code(), Some(14));
    let grpc = Decision {
        grpc_code: Some(8),
        ..Default::default()
    };
    assert_eq!(grpc.http_status(), Some(429));
    assert_eq!(grpc_code_name(14), "UNAVAILABLE");
}
