//! The HTTP side against real servers: every row of the original URL table,
//! percent-encoding, headers, order and concurrency, failures of every kind,
//! the depth limit and syntax errors.

mod common;

use std::time::Duration;

use common::*;
use servicemock::config::Settings;

#[tokio::test]
async fn no_at_after_the_host_calls_nobody() {
    let mesh = mesh(&["service1", "service3"]).await;
    let (status, r) = report(mesh.at("service1"), "/service/calls/@service3/").await;
    assert_eq!(status, 200);
    assert_eq!(r.service, "service1");
    assert!(r.parallel_forwards.is_empty());
    assert_eq!(r.request_info[0], "GET /service/calls/@service3/ HTTP/1.1");
}

#[tokio::test]
async fn one_hop_gets_the_remainder() {
    let mesh = mesh(&["entry", "service1"]).await;
    let (status, r) = report(mesh.at("entry"), "/@service1/the-end").await;
    assert_eq!(status, 200);
    let hop = hops(&r)[0];
    assert_eq!(hop.url, "http://service1:8080/the-end");
    assert_eq!(
        (hop.result.as_str(), hop.status, hop.protocol.as_str()),
        ("ok", Some(200), "http")
    );
    let child = only_child(&r);
    assert_eq!(child.service, "service1");
    assert_eq!(child.request_info[0], "GET /the-end HTTP/1.1");
}

#[tokio::test]
async fn explicit_port_is_used() {
    let mesh = mesh(&["entry", "service1"]).await;
    let port = mesh.at("service1").port();
    let (status, r) = report(mesh.at("entry"), &format!("/@127.0.0.1:{port}/the-end")).await;
    assert_eq!(status, 200);
    assert_eq!(hops(&r)[0].url, format!("http://127.0.0.1:{port}/the-end"));
    assert_eq!(only_child(&r).service, "service1");
}

#[tokio::test]
async fn chain_of_three() {
    let mesh = mesh(&["entry", "service1", "service2", "service3"]).await;
    let (status, r) = report(mesh.at("entry"), "/@service1/@service2/@service3/").await;
    assert_eq!(status, 200);
    let s1 = only_child(&r);
    let s2 = only_child(s1);
    let s3 = only_child(s2);
    assert_eq!(
        [&s1.service, &s2.service, &s3.service],
        ["service1", "service2", "service3"]
    );
    assert_eq!(s3.request_info[0], "GET / HTTP/1.1");
    assert!(s3.parallel_forwards.is_empty());
}

#[tokio::test]
async fn no_at_before_the_second_name() {
    let mesh = mesh(&["entry", "service1", "service2"]).await;
    let (_, r) = report(mesh.at("entry"), "/@service1/service2").await;
    let s1 = only_child(&r);
    assert_eq!(s1.request_info[0], "GET /service2 HTTP/1.1");
    assert!(s1.parallel_forwards.is_empty());
}

#[tokio::test]
async fn sequence_and_parallel_keep_written_order() {
    let mesh = mesh(&["entry", "service1", "service2"]).await;
    let entry = mesh.at("entry");
    let (_, seq) = report(entry, "/@service1,service2/uri-reuse/").await;
    assert_eq!(seq.parallel_forwards.len(), 1);
    let names: Vec<_> = hops(&seq)
        .iter()
        .map(|h| h.response.as_ref().unwrap().service.clone())
        .collect();
    assert_eq!(names, ["service1", "service2"]);
    for hop in hops(&seq) {
        assert_eq!(
            hop.response.as_ref().unwrap().request_info[0],
            "GET /uri-reuse/ HTTP/1.1"
        );
    }
    let (_, par) = report(entry, "/@service2|service1/uri-reuse/").await;
    assert_eq!(par.parallel_forwards.len(), 2);
    let names: Vec<_> = hops(&par)
        .iter()
        .map(|h| h.response.as_ref().unwrap().service.clone())
        .collect();
    assert_eq!(names, ["service2", "service1"]);
}

#[tokio::test]
async fn parallel_of_parallel() {
    let mesh = mesh(&["entry", "service1", "service2", "service3", "service4"]).await;
    let (status, r) = report(
        mesh.at("entry"),
        "/@service1|service2/@service3|service4/uri/",
    )
    .await;
    assert_eq!(status, 200);
    for (hop, name) in hops(&r).into_iter().zip(["service1", "service2"]) {
        let child = hop.response.as_ref().unwrap();
        assert_eq!(child.service, name);
        assert_eq!(
            child.request_info[0],
            "GET /@service3|service4/uri/ HTTP/1.1"
        );
        let grandchildren: Vec<_> = hops(child)
            .iter()
            .map(|h| h.response.as_ref().unwrap().service.clone())
            .collect();
        assert_eq!(grandchildren, ["service3", "service4"]);
        for leaf in hops(child) {
            assert_eq!(
                leaf.response.as_ref().unwrap().request_info[0],
                "GET /uri/ HTTP/1.1"
            );
        }
    }
}

#[tokio::test]
async fn h2c_hops_and_h2c_entry() {
    let mesh = mesh(&["entry", "service1"]).await;
    let (status, r) = report(mesh.at("entry"), "/@h2c:service1/end").await;
    assert_eq!(status, 200);
    let hop = hops(&r)[0];
    assert_eq!(hop.protocol, "h2c");
    let child = only_child(&r);
    assert_eq!(child.protocol, "h2c");
    assert_eq!(child.request_info[0], "GET /end HTTP/2.0");
}

#[tokio::test]
async fn percent_encoded_separators() {
    let mesh = mesh(&["entry", "service1", "service2"]).await;
    let (status, r) = report(
        mesh.at("entry"),
        "/%40service1%7Cservice2%5Bend-user%3Djason%5D/end",
    )
    .await;
    assert_eq!(status, 200, "{r:#?}");
    assert_eq!(r.parallel_forwards.len(), 2);
    let second = hops(&r)[1].response.as_ref().unwrap();
    assert!(
        second.request_info.contains(&"end-user: jason".to_string()),
        "{second:#?}"
    );
}

#[tokio::test]
async fn hop_headers_reach_the_downstream_only() {
    let mesh = mesh(&["entry", "service1", "service2"]).await;
    let (_, r) = report(
        mesh.at("entry"),
        "/@service1[end-user=jason][x-team=blue]/@service2/",
    )
    .await;
    let s1 = only_child(&r);
    assert!(
        s1.request_info.contains(&"end-user: jason".into()),
        "{s1:#?}"
    );
    assert!(s1.request_info.contains(&"x-team: blue".into()));
    let s2 = only_child(s1);
    assert!(
        !s2.request_info.iter().any(|l| l.starts_with("x-team")),
        "{s2:#?}"
    );
}

#[tokio::test]
async fn sequences_wait_and_groups_overlap() {
    let slow = stand_in().await;
    let mesh = mesh(&["entry"]).await;
    let entry = mesh.at("entry");
    let target = format!("127.0.0.1:{}", slow.port());
    let (_, seq) = report(entry, &format!("/@{target},{target}/slow/150")).await;
    let h = hops(&seq);
    assert!(
        h[1].start_ms >= h[0].start_ms + h[0].duration_ms,
        "sequence overlapped: {h:#?}"
    );
    let (_, par) = report(entry, &format!("/@{target}|{target}|{target}/slow/150")).await;
    let h = hops(&par);
    for other in &h[1..] {
        assert!(
            other.start_ms < h[0].start_ms + h[0].duration_ms,
            "groups did not overlap: {h:#?}"
        );
    }
}

#[tokio::test]
async fn failures_are_recorded_on_their_hops() {
    let stand_in = stand_in().await;
    let closed = closed_port().await;
    let settings = Settings {
        hop_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let mesh = mesh_with(&["entry", "service1"], settings).await;
    let entry = mesh.at("entry");
    let port = stand_in.port();

    let (status, r) = report(
        entry,
        &format!("/@127.0.0.1:{}|service1/end", closed.port()),
    )
    .await;
    assert_eq!(status, 502);
    let h = hops(&r);
    assert_eq!(h[0].result, "refused");
    assert!(
        h[0].error.as_ref().unwrap().contains("connection refused"),
        "{h:#?}"
    );
    assert_eq!(h[0].status, None);
    assert_eq!(h[1].result, "ok", "the other group still ran");

    let (status, r) = report(entry, &format!("/@127.0.0.1:{port}/slow/3000")).await;
    assert_eq!(status, 502);
    assert_eq!(hops(&r)[0].result, "timeout", "{r:#?}");

    let (status, r) = report(entry, "/@no-such-host.invalid/").await;
    assert_eq!(status, 502);
    assert_eq!(hops(&r)[0].result, "dns", "{r:#?}");
    assert!(hops(&r)[0]
        .error
        .as_ref()
        .unwrap()
        .contains("cannot resolve \"no-such-host.invalid\""));

    let (status, r) = report(entry, &format!("/@127.0.0.1:{port}/status/503")).await;
    assert_eq!(status, 502);
    let hop = hops(&r)[0];
    assert_eq!((hop.result.as_str(), hop.status), ("status", Some(503)));
    assert!(hop
        .error
        .as_ref()
        .unwrap()
        .contains("503 Service Unavailable"));
    assert_eq!(
        hop.response.as_ref().unwrap().service,
        "stand-in",
        "the failing answer's report is kept"
    );

    let (status, r) = report(entry, &format!("/@127.0.0.1:{port}/text")).await;
    assert_eq!(status, 502);
    let hop = hops(&r)[0];
    assert_eq!(hop.result, "bad-answer");
    assert!(
        hop.error
            .as_ref()
            .unwrap()
            .contains("not a servicemock report"),
        "{hop:#?}"
    );
    assert!(hop
        .error
        .as_ref()
        .unwrap()
        .contains("hello, I am no report"));

    let (status, r) = report(entry, "/@service1/@nobody.invalid/").await;
    assert_eq!(status, 502, "a failure deep down fails every level above");
    assert_eq!(hops(&r)[0].result, "status");
    assert_eq!(hops(only_child(&r))[0].result, "dns");
}

#[tokio::test]
async fn syntax_errors_answer_400_with_position() {
    let mesh = mesh(&["entry"]).await;
    let entry = mesh.at("entry");
    for (path, message) in [
        ("/@", "empty target at position 2 in \"@\""),
        ("/@a%7C%7Cb/", "empty target at position 4 in \"@a||b\""),
        ("/@a,/", "empty target at position 4 in \"@a,\""),
        (
            "/@a:http/",
            "unknown scheme 'a' (known: http, h2c, grpc, https, grpcs, tcp; after a host, ':' takes a port number) at position 2",
        ),
        ("/@a:80x/", "bad port '80x' (expected 1 to 65535) at position 4"),
        ("/@a[x=1/", "unclosed '[' at position 3"),
        ("/@a[x]/", "has no '='"),
        ("/@a[x=1]b/", "unexpected 'b' at position 8"),
        ("/@grpc:/", "empty host after 'grpc:'"),
    ] {
        let (status, body) = get(entry, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(message), "{path}: {body}");
        assert_eq!(body.lines().count(), 1, "one line: {body}");
    }
    let long = format!("/{}", "a".repeat(9000));
    let (status, body) = get(entry, &long).await;
    assert_eq!(
        (status, body.trim()),
        (400, "path too long: 9001 bytes, the limit is 8192")
    );
    let wide = format!("/@{}/", vec!["a"; 65].join("|"));
    let (status, body) = get(entry, &wide).await;
    assert_eq!(status, 400);
    assert!(body.contains("too many targets"), "{body}");
}

#[tokio::test]
async fn one_depth_rule_refuses_deep_plans_before_anyone_is_called() {
    let settings = Settings {
        limits: servicemock::plan::Limits {
            max_depth: 3,
            ..Default::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_with(&["self"], settings).await;
    let addr = mesh.at("self");
    // Deeper than --max-depth: 400 at the entry, and nobody was called.
    let (status, body) = get(addr, &format!("{}end", "/@self".repeat(4) + "/")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("plan too deep: it nests 4 levels"), "{body}");
    assert!(body.contains("--max-depth 3"), "{body}");
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        !metrics.contains("servicemock_hops_total{"),
        "no hop was made: {metrics}"
    );
    // Exactly the limit works.
    let (status, r) = report(addr, &format!("{}end", "/@self".repeat(3) + "/")).await;
    assert_eq!(status, 200);
    assert_eq!(
        only_child(only_child(only_child(&r)))
            .parallel_forwards
            .len(),
        0
    );
    // Below the entry, a plan deeper than the depth left is refused with a
    // report (508), so the caller's tree shows where it stopped.
    let response = client()
        .get(format!("http://{addr}/@self/@self/end"))
        .header("x-servicemock-depth", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 508);
    let refused: servicemock::report::Report =
        serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        refused
            .message
            .starts_with("refused before calling anyone: plan too deep"),
        "{refused:#?}"
    );
    assert!(refused.parallel_forwards.is_empty(), "508 forwards nothing");
    // Past the limit (a loop through proxies): 508 loop detected.
    let response = client()
        .get(format!("http://{addr}/end"))
        .header("x-servicemock-depth", "4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 508);
    let looped: servicemock::report::Report =
        serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(looped.message.starts_with("loop detected"), "{looped:#?}");
}

#[tokio::test]
async fn exponential_fan_out_is_refused_before_any_call() {
    let mesh = mesh(&["a"]).await;
    let path = format!("{}end", "/@a|a|a|a".repeat(6) + "/");
    let (status, body) = get(mesh.at("a"), &path).await;
    assert_eq!(status, 400);
    assert!(body.contains("plan too large"), "{body}");
}

#[tokio::test]
async fn health_ready_and_identity_headers() {
    let mesh = mesh(&["service1"]).await;
    let addr = mesh.at("service1");
    assert_eq!(get(addr, "/health").await, (200, "ok\n".into()));
    assert_eq!(get(addr, "/ready").await.0, 200);
    let response = client()
        .get(format!("http://{addr}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-servicemock-service"], "service1");
    assert_eq!(response.headers()["x-servicemock-version"], "v1");
}

#[tokio::test]
async fn text_tree_at_the_entry_only() {
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let entry = mesh.at("service1");
    let response = client()
        .get(format!(
            "http://{entry}/@service2|service3/@grpc:service1/end?x=1&view=tree"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("service1 v1  http/1.1"), "{text}");
    assert!(
        lines[1].starts_with("├─ 1.1 http  service2 v1  200 ok"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("│  └─ 1.1.1 grpc  service1 v1  0 ok"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("└─ 1.2 http  service3 v1  200 ok"),
        "{text}"
    );
    assert_eq!(
        text.matches(" *").count(),
        3,
        "one slowest hop per level with hops, plus the legend: {text}"
    );

    // The view is taken out of the remainder: the leaves see only x=1, and
    // every hop still exchanged JSON reports (or the tree could not be drawn).
    let (_, r) = report(entry, "/@service2/end?x=1&view=json").await;
    let leaf = only_child(&r);
    assert_eq!(leaf.request_info[0], "GET /end?x=1 HTTP/1.1");

    let tree = client()
        .get(format!("http://{entry}/@service2/end"))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(tree.contains("└─ 1.1 http  service2 v1  200 ok"), "{tree}");
}

#[tokio::test]
async fn service_routes_as_remainder_still_get_a_report() {
    let mesh = mesh(&["entry", "service2"]).await;
    for remainder in ["/health", "/ui", "/metrics"] {
        let (status, r) = report(mesh.at("entry"), &format!("/@service2{remainder}")).await;
        assert_eq!(status, 200, "{remainder}: {r:#?}");
        assert_eq!(
            only_child(&r).request_info[0],
            format!("GET {remainder} HTTP/1.1")
        );
    }
}

async fn post_json(addr: std::net::SocketAddr, body: String) -> (u16, String) {
    let response = client()
        .post(format!("http://{addr}/"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn json_plans_over_http_reach_trees_no_path_can_say() {
    let mesh = mesh(&["entry", "a", "b", "c"]).await;
    let entry = mesh.at("entry");
    // a calls b (which calls c) beside c (which calls nobody): no single
    // @-path says that, so the HTTP hop to a carries its plan as JSON.
    let body = r#"{"plan": {"uri": "/end", "parallel": [
        {"hops": [{"target": "a", "next": {"parallel": [
            {"hops": [{"target": "b", "next": {"parallel": [{"hops": [{"target": "c"}]}]}}]},
            {"hops": [{"target": "c", "protocol": "PROTOCOL_GRPC"}]}]}}]},
        {"hops": [{"target": "a", "protocol": "PROTOCOL_H2C", "next": {"parallel": [{"hops": [{"target": "c"}]}]}},
                  {"target": "b", "headers": {"end-user": "jason"}}]}]}}"#;
    let (status, text) = post_json(entry, body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let r: servicemock::report::Report = serde_json::from_str(&text).unwrap();
    let first = hops(&r)[0];
    assert_eq!(first.url, "http://a:8080/ (POST plan)");
    let a = first.response.as_deref().unwrap();
    let below: Vec<_> = hops(a)
        .iter()
        .map(|h| {
            (
                h.protocol.to_string(),
                h.response.as_ref().unwrap().service.to_string(),
            )
        })
        .collect();
    assert_eq!(
        below,
        [
            ("http".to_string(), "b".to_string()),
            ("grpc".to_string(), "c".to_string())
        ]
    );
    let b = hops(a)[0].response.as_deref().unwrap();
    assert_eq!(b.request_info[0], "GET /@c/end HTTP/1.1");
    assert_eq!(only_child(b).service, "c");
    let second = hops(&r)[1];
    assert_eq!(
        second.url, "http://a:8080/@c/end",
        "a tree a path can say still travels as a path"
    );
    assert!(hops(&r)[2]
        .response
        .as_ref()
        .unwrap()
        .request_info
        .contains(&"end-user: jason".to_string()));

    let (status, text) = post_json(
        entry,
        r#"{"plan": {"parallel": [{"hops": [{"target": "a:0"}]}]}}"#.into(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        text.starts_with("plan.parallel[0].hops[0].target: bad port"),
        "{text}"
    );
    // A body that is no plan object is a payload: answered, never a 400.
    let (status, text) = post_json(entry, "not json".into()).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"BodyBytes\": 8"), "{text}");
    let (status, text) = post_json(entry, r#"{"order": 7, "items": []}"#.into()).await;
    assert_eq!(status, 200, "someone's JSON is a payload: {text}");
    // Beside `path`, an unknown key is a mistake in a plan: named.
    let (status, text) = post_json(entry, r#"{"path": "/", "paht": 1}"#.into()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("paht"), "{text}");
    let (status, _) = post_json(
        entry,
        format!("{{\"path\": \"/{}\"}}", "a".repeat(2 * 1024 * 1024)),
    )
    .await;
    assert_eq!(status, 413);
}
