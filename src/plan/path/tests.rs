//! The @-path grammar: every form it reads, renders and refuses.

use super::*;
use proptest::prelude::*;
use std::time::Duration;

fn parse(path: &str) -> Result<Plan, PlanError> {
    parse_path(path, &Limits::default())
}

fn targets(plan: &Plan) -> Vec<Vec<String>> {
    plan.parallel
        .iter()
        .map(|s| s.hops.iter().map(|h| h.target.authority()).collect())
        .collect()
}

fn err(path: &str) -> String {
    parse(path).unwrap_err().to_string()
}

#[test]
fn no_command_calls_nobody() {
    let plan = parse("/service/calls/@service3/").unwrap();
    assert!(plan.parallel.is_empty());
    assert_eq!(plan.uri, "/service/calls/@service3/");
    assert_eq!(parse("/").unwrap(), Plan::leaf("/"));
}

#[test]
fn single_target_gets_the_remainder() {
    let plan = parse("/@service1/the-end").unwrap();
    assert_eq!(targets(&plan), vec![vec!["service1:8080"]]);
    assert_eq!(
        render_path(&plan.parallel[0].hops[0].next).unwrap(),
        "/the-end"
    );
}

#[test]
fn explicit_port() {
    let plan = parse("/@service1:8081/the-end").unwrap();
    assert_eq!(
        plan.parallel[0].hops[0].target,
        Target::new("service1", Some(8081))
    );
}

#[test]
fn chain() {
    let plan = parse("/@service1/@service2/@service3/").unwrap();
    let s1 = &plan.parallel[0].hops[0];
    assert_eq!(render_path(&s1.next).unwrap(), "/@service2/@service3/");
    let s2 = &s1.next.parallel[0].hops[0];
    assert_eq!(s2.target.host, "service2");
    let s3 = &s2.next.parallel[0].hops[0];
    assert_eq!(s3.target.host, "service3");
    assert_eq!(render_path(&s3.next).unwrap(), "/");
}

#[test]
fn no_at_after_first_hop() {
    let plan = parse("/@service1/service2").unwrap();
    assert_eq!(
        render_path(&plan.parallel[0].hops[0].next).unwrap(),
        "/service2"
    );
}

#[test]
fn sequence_and_parallel() {
    let seq = parse("/@service1,service2/uri-reuse/").unwrap();
    assert_eq!(targets(&seq), vec![vec!["service1:8080", "service2:8080"]]);
    let par = parse("/@service1|service2/uri-reuse/").unwrap();
    assert_eq!(
        targets(&par),
        vec![vec!["service1:8080"], vec!["service2:8080"]]
    );
    for hop in par.hops() {
        assert_eq!(render_path(&hop.next).unwrap(), "/uri-reuse/");
    }
}

#[test]
fn parallel_of_parallel() {
    let plan = parse("/@service1|service2/@service3|service4/uri/").unwrap();
    for hop in plan.hops() {
        assert_eq!(render_path(&hop.next).unwrap(), "/@service3|service4/uri/");
        assert_eq!(
            targets(&hop.next),
            vec![vec!["service3:8080"], vec!["service4:8080"]]
        );
    }
}

#[test]
fn query_goes_with_the_remainder() {
    let plan = parse("/@a/@b/end?x=1&y=2").unwrap();
    assert_eq!(
        render_path(&plan.parallel[0].hops[0].next).unwrap(),
        "/@b/end?x=1&y=2"
    );
    let plan = parse("/@a?x=1").unwrap();
    assert_eq!(plan.uri, "/?x=1");
}

#[test]
fn percent_encoded_separators() {
    let plain = parse("/@a|b,c[x=1]/@d/end").unwrap();
    let encoded = parse("/%40a%7Cb%2Cc%5Bx%3D1%5D/%40d/end").unwrap();
    assert_eq!(plain, encoded);
}

#[test]
fn headers_and_schemes() {
    let plan = parse("/@grpc:svc[end-user=jason][X-Mock-Status=503]|h2c:other:9000/").unwrap();
    let hop = &plan.parallel[0].hops[0];
    assert_eq!(hop.protocol, Protocol::Grpc);
    assert_eq!(hop.headers["end-user"], "jason");
    assert_eq!(hop.headers["x-mock-status"], "503");
    let other = &plan.parallel[1].hops[0];
    assert_eq!(other.protocol, Protocol::H2c);
    assert_eq!(other.target, Target::new("other", Some(9000)));
}

#[test]
fn scheme_word_before_a_port_is_a_host() {
    let plan = parse("/@grpc:8080/").unwrap();
    let hop = &plan.parallel[0].hops[0];
    assert_eq!(hop.protocol, Protocol::Http);
    assert_eq!(hop.target, Target::new("grpc", Some(8080)));
    let plan = parse("/@http:grpc:9/").unwrap();
    assert_eq!(
        plan.parallel[0].hops[0].target,
        Target::new("grpc", Some(9))
    );
}

#[test]
fn ipv6_literal() {
    let plan = parse("/@[::1]:8081[a=b]/").unwrap();
    let hop = &plan.parallel[0].hops[0];
    assert_eq!(hop.target, Target::new("::1", Some(8081)));
    assert_eq!(hop.headers["a"], "b");
}

#[test]
fn syntax_errors_name_problem_and_position() {
    assert_eq!(err("/@"), "empty target at position 2 in \"@\"");
    assert_eq!(err("/@a||b"), "empty target at position 4 in \"@a||b\"");
    assert_eq!(err("/@a,"), "empty target at position 4 in \"@a,\"");
    assert_eq!(err("/@|a"), "empty target at position 2 in \"@|a\"");
    assert_eq!(
        err("/@a:99999"),
        "bad port '99999' (expected 1 to 65535) at position 4 in \"@a:99999\""
    );
    assert_eq!(
        err("/@a:9x"),
        "bad port '9x' (expected 1 to 65535) at position 4 in \"@a:9x\""
    );
    assert_eq!(
        err("/@ftp:a"),
        "unknown scheme 'ftp' (known: http, h2c, grpc, https, grpcs, tcp; after a host, ':' takes a port number) at position 2 in \"@ftp:a\""
    );
    let upper = parse("/@GRPC:service2/").unwrap();
    assert_eq!(
        upper.parallel[0].hops[0].protocol,
        Protocol::Grpc,
        "schemes ignore case"
    );
    assert_eq!(
        err("/@ftp:127.0.0.1:80/"),
        "unknown scheme 'ftp' (known: http, h2c, grpc, https, grpcs, tcp; after a host, ':' takes a port number) at position 2 in \"@ftp:127.0.0.1:80\""
    );
    assert_eq!(
        err("/@service2/@"),
        "empty target at position 2 in \"@\" (@-command 2 of 2 in the path)"
    );
    assert_eq!(
        err("/@a:0"),
        "bad port '0' (expected 1 to 65535) at position 4 in \"@a:0\""
    );
    assert_eq!(err("/@a[x=1"), "unclosed '[' at position 3 in \"@a[x=1\"");
    assert_eq!(
        err("/@a[x]"),
        "header '[x]' has no '=' (write [name=value]) at position 3 in \"@a[x]\""
    );
    assert_eq!(
        err("/@a[=1]"),
        "empty header name at position 3 in \"@a[=1]\""
    );
    assert_eq!(
        err("/@a[x=1][x=2]"),
        "header 'x' given twice at position 8 in \"@a[x=1][x=2]\""
    );
    assert_eq!(
        err("/@a[x=1]b"),
        "unexpected 'b' at position 8 in \"@a[x=1]b\""
    );
    assert_eq!(
        err("/@a*b"),
        "invalid character '*' in host at position 3 in \"@a*b\""
    );
    // A character of several bytes is named whole, at its position in
    // characters.
    assert_eq!(
        err("/@caf%C3%A9:80"),
        "invalid character 'é' in host at position 5 in \"@café:80\""
    );
    assert_eq!(
        err("/@grpc:"),
        "empty host after 'grpc:' at position 7 in \"@grpc:\""
    );
    assert_eq!(
        err("/@[x=1]"),
        "empty target (a host must come before '[name=value]') at position 2 in \"@[x=1]\""
    );
    assert_eq!(
        err("/%40a%7C%7Cb/"),
        "empty target at position 4 in \"@a||b\""
    );
    assert!(err("/%40%FF").contains("not UTF-8"));
}

#[test]
fn limits() {
    let long = format!("/{}", "a".repeat(9000));
    assert_eq!(err(&long), "path too long: 9001 bytes, the limit is 8192");
    let many = format!("/@{}/", vec!["a"; 65].join("|"));
    assert!(
        err(&many).starts_with("too many targets (more than 64 in one command) at position 130")
    );
    let ok = format!("/@{}/", vec!["a"; 64].join(","));
    assert!(parse(&ok).is_ok());
}

#[test]
fn divergent_plans_do_not_render() {
    let mut plan = parse("/@a|b/@c/").unwrap();
    plan.parallel[1].hops[0].next = Arc::new(Plan::leaf("/other"));
    assert!(render_path(&plan)
        .unwrap_err()
        .to_string()
        .contains("cannot express"));
}

#[test]
fn values_with_reserved_characters_round_trip() {
    let plan = parse("/@a[v=x%2Fy%3Fz%25%20w|,]/end").unwrap();
    assert_eq!(plan.parallel[0].hops[0].headers["v"], "x/y?z% w|,");
    let rendered = render_path(&plan).unwrap();
    assert_eq!(parse(&rendered).unwrap(), plan);
}

fn arb_target() -> impl Strategy<Value = Target> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z0-9]{1,5}){0,2}",
        Just("::1".to_string()),
        Just("127.0.0.1".to_string()),
    ];
    (host, proptest::option::of(1u16..)).prop_map(|(h, p)| Target::new(h, p))
}

/// Options that fit a hop of `protocol` whose sub-plan is a path.
fn arb_options(protocol: Protocol) -> impl Strategy<Value = HopOptions> {
    let http = !protocol.is_grpc();
    (
        proptest::option::of(prop_oneof![Just("POST"), Just("PUT"), Just("HEAD")]),
        proptest::option::of(0usize..4096),
        proptest::option::of(1_000u64..5_000_000),
        0u32..4,
        proptest::option::of(1u8..16),
        any::<bool>(),
    )
        .prop_map(move |(method, body, timeout_us, retries, on, any)| {
            let mut o = HopOptions {
                timeout: timeout_us.map(Duration::from_micros),
                retries,
                ..HopOptions::default()
            };
            if http {
                o.method = method.map(str::to_owned);
                o.body = body;
                o.expect_any = any;
            }
            if retries > 0 {
                if let Some(bits) = on {
                    let words = ["5xx", "reset", "timeout", "unavailable"];
                    let picked: Vec<&str> = (0..4)
                        .filter(|i| bits & (1 << i) != 0)
                        .map(|i| words[i])
                        .collect();
                    o.set("retry-on", &picked.join(","), &Limits::default())
                        .unwrap();
                }
            }
            o
        })
}

#[allow(clippy::type_complexity)]
fn arb_hop_head() -> impl Strategy<Value = (Protocol, Target, BTreeMap<String, String>, HopOptions)>
{
    let proto = prop_oneof![
        Just(Protocol::Http),
        Just(Protocol::H2c),
        Just(Protocol::Grpc)
    ];
    let headers = proptest::collection::btree_map(
        "[a-z][a-z0-9_-]{0,6}".prop_filter("a header a hop may carry", |n| {
            check_hop_header(n, "v").is_ok()
        }),
        "[\\x20-\\x5c\\x5e-\\x7e]{0,8}",
        0..3,
    );
    (proto, arb_target(), headers)
        .prop_flat_map(|(p, t, h)| (Just(p), Just(t), Just(h), arb_options(p)))
}

fn arb_path_plan() -> impl Strategy<Value = Plan> {
    let level = proptest::collection::vec(proptest::collection::vec(arb_hop_head(), 1..4), 1..4);
    let uri = prop_oneof![
        Just("/".to_string()),
        "/[a-z0-9._~-]{1,6}(/[a-z]{0,4})?(\\?[a-z]=[0-9])?"
    ];
    (proptest::collection::vec(level, 0..4), uri).prop_map(|(levels, uri)| {
        let mut next = Arc::new(Plan::leaf(uri.clone()));
        for level in levels.into_iter().rev() {
            let parallel = level
                .into_iter()
                .map(|group| Sequence {
                    hops: group
                        .into_iter()
                        .map(|(protocol, target, headers, options)| Hop {
                            target,
                            protocol,
                            headers,
                            options,
                            next: next.clone(),
                        })
                        .collect(),
                })
                .collect();
            next = Arc::new(Plan::new(parallel, uri.clone()));
        }
        Arc::unwrap_or_clone(next)
    })
}

proptest! {
    #[test]
    fn plan_to_path_to_plan_is_identity(plan in arb_path_plan()) {
        let path = render_path(&plan).unwrap();
        let back = parse(&path).unwrap();
        prop_assert_eq!(&back, &plan);
        prop_assert_eq!(render_path(&back).unwrap(), path);
    }

    #[test]
    fn parse_never_panics(path in "/[@a-z0-9|,:\\[\\]=%/?.-]{0,40}") {
        let _ = parse(&path);
    }
}
