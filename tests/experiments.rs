//! Mesh experiments behind a real proxy: HAProxy (from Debian) plays the
//! sidecar between servicemocks — it speaks HTTP/2 to the upstream (`proto
//! h2`, as Istio does for an `http2` port), retries (`retry-on`), times out,
//! balances with weights, health-checks `/ready`, and answers 503 or 504
//! itself. The tests show from curl, grpcurl, grpcio and tonic that the tree
//! tells the truth about all of it: the translation, who made an answer,
//! which attempt got through, which replica a fault was aimed at.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::haproxy::{replica, Proxy};
use common::*;
use servicemock::report::{Forward, Report};

/// curl's answer: status and body.
async fn curl(url: String, headers: &[&str]) -> (u16, String) {
    let curl = tool("curl");
    let mut args = vec![
        "-s".to_owned(),
        "-g".to_owned(),
        "-w".to_owned(),
        "\n%{http_code}".to_owned(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push((*h).to_owned());
    }
    args.push(url);
    let out = tokio::task::spawn_blocking(move || Command::new(curl).args(args).output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

fn parse(body: &str) -> Report {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The one hop of a report.
fn hop(report: &Report) -> &Forward {
    report.forwards().next().expect("one hop")
}

/// The hop protocols a test runs over, with the status an upstream 503 has
/// on each (gRPC maps HTTP 503 to UNAVAILABLE).
const PROTOCOLS: [(&str, i32); 3] = [("http", 503), ("h2c", 503), ("grpc", 14)];

#[ignore = "needs haproxy, curl and grpcurl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_translating_proxy_shows_in_the_tree() {
    let entry = replica("frontend", "v1").await;
    let leaf = replica("reviews", "v1").await;
    let proxy = Proxy {
        servers: &[(leaf.at("reviews"), 1)],
        ..Proxy::default()
    }
    .start()
    .await;
    let e = entry.at("frontend");
    let p = proxy.addr;

    // HTTP/1.1 sent, h2c received: the hop says so, and the tree marks it.
    let (status, body) = curl(format!("http://{e}/@{p}/end"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let r = parse(&body);
    let h = hop(&r);
    assert_eq!(
        h.received_as,
        Some(servicemock::report::InboundProtocol::H2c),
        "{h:#?}"
    );
    assert_eq!(h.response.as_ref().unwrap().protocol, "h2c");
    let (_, tree) = curl(format!("http://{e}/@{p}/end?view=tree"), &[]).await;
    eprintln!("{tree}");
    assert!(tree.contains("http→h2c reviews v1  200 ok"), "{tree}");

    // h2c and gRPC hops arrive as sent: nothing to mark.
    for (protocol, _) in &PROTOCOLS[1..] {
        let (status, body) = curl(format!("http://{e}/@{protocol}:{p}/end"), &[]).await;
        assert_eq!(status, 200, "{protocol}: {body}");
        let r = parse(&body);
        assert_eq!(hop(&r).received_as, None, "{protocol}: {r:#?}");
        assert_eq!(hop(&r).response.as_ref().unwrap().service, "reviews");
    }

    // curl straight to the proxy: the service says it got h2c.
    let (status, body) = curl(format!("http://{p}/x"), &[]).await;
    assert_eq!((status, parse(&body).protocol.as_str()), (200, "h2c"));

    // grpcurl through the proxy: reflection and the call both pass it.
    let out = grpcurl_run(
        ["-plaintext", "-d", r#"{"path": "/x"}"#, "-max-time", "20"]
            .map(String::from)
            .into_iter()
            .chain([p.to_string(), "servicemock.v1.MockService/Call".into()])
            .collect(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["service"], "reviews");
    assert_eq!(answer["protocol"], "grpc");
    assert_eq!(answer["attempt"], 1);
}

#[ignore = "needs haproxy and curl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn answers_the_proxy_made_are_attributed_to_the_proxy() {
    let entry = replica("frontend", "v1").await;
    let leaf = replica("reviews", "v1").await;
    let e = entry.at("frontend");
    // Nobody behind it: HAProxy answers 503 itself.
    let nobody = Proxy {
        servers: &[(closed_port().await, 1)],
        ..Proxy::default()
    }
    .start()
    .await;
    // A slow upstream: HAProxy gives up after 300 ms and answers 504.
    let impatient = Proxy {
        servers: &[(leaf.at("reviews"), 1)],
        server_timeout_ms: Some(300),
        ..Proxy::default()
    }
    .start()
    .await;
    for (protocol, unavailable) in PROTOCOLS {
        let path = format!("/@{protocol}:{}/end", nobody.addr);
        let (status, body) = curl(format!("http://{e}{path}"), &[]).await;
        assert_eq!(status, 502, "{protocol}: {body}");
        let r = parse(&body);
        let h = hop(&r);
        assert_eq!(
            (h.result.as_str(), h.status),
            ("status", Some(unavailable)),
            "{protocol}: {h:#?}"
        );
        assert!(h.response.is_none(), "no servicemock answered: {h:#?}");
        let by = h
            .answered_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            by.starts_with("proxy"),
            "{protocol}: answered by {by:?}: {h:#?}"
        );

        let path = format!("/@{protocol}:{}[x-mock-delay=2s]/end", impatient.addr);
        let (status, body) = curl(format!("http://{e}{path}"), &[]).await;
        assert_eq!(status, 502, "{protocol}: {body}");
        let r = parse(&body);
        let h = hop(&r);
        let timeout_status = if protocol == "grpc" { unavailable } else { 504 };
        assert_eq!(h.status, Some(timeout_status), "{protocol}: {h:#?}");
        assert!(
            h.answered_by
                .as_ref()
                .is_some_and(|by| by.to_string().starts_with("proxy")),
            "{protocol}: {h:#?}"
        );
        assert!(
            h.duration_ms < 1500.0,
            "the proxy's timeout answered, not the delay: {h:#?}"
        );
    }
    // The text tree names the proxy on the right hop.
    let (_, tree) = curl(format!("http://{e}/@{}/end?view=tree", nobody.addr), &[]).await;
    eprintln!("{tree}");
    // The hop's line, then the continuation line naming who answered.
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[1].contains("503 status"), "{tree}");
    assert!(lines[2].contains("made by proxy"), "{tree}");
    assert_eq!(tree.matches("proxy").count(), 1, "said once: {tree}");
}

#[ignore = "needs haproxy, curl and the test virtualenv: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_retry_policy_of_three_gets_past_503_at_first_2() {
    let entry = replica("frontend", "v1").await;
    let leaf = replica("reviews", "v1").await;
    let proxy = Proxy {
        servers: &[(leaf.at("reviews"), 1)],
        retries: Some(2),
        ..Proxy::default()
    }
    .start()
    .await;
    let e = entry.at("frontend");
    let p = proxy.addr;
    // HTTP/1.1 and h2c hops through the retrying proxy, every time.
    for protocol in ["http", "h2c"] {
        for _ in 0..5 {
            let path = format!("/@{protocol}:{p}[x-mock-status=503@first=2]/end");
            let (status, body) = curl(format!("http://{e}{path}"), &[]).await;
            assert_eq!(status, 200, "{protocol}: {body}");
            let r = parse(&body);
            let answered = hop(&r).response.as_ref().unwrap();
            assert_eq!(answered.attempt, 3, "{protocol}: {r:#?}");
            assert!(answered.injected.is_empty(), "{r:#?}");
        }
    }
    // The tree shows it.
    let (_, tree) = curl(
        format!("http://{e}/@{p}[x-mock-status=503@first=2]/end?view=tree"),
        &[],
    )
    .await;
    eprintln!("{tree}");
    assert!(
        tree.contains("200 ok") && tree.contains("attempt 3"),
        "{tree}"
    );
    // curl straight to the proxy: the proxy's request id marks the retries.
    let (status, body) = curl(format!("http://{p}/x"), &["x-mock-status: 503@first=2"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(parse(&body).attempt, 3);
    // Two retries are not enough for @first=3: the third 503 comes back.
    let (status, body) = curl(format!("http://{p}/x"), &["x-mock-status: 503@first=3"]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(parse(&body).attempt, 3);

    // gRPC: a grpcio client with a retry policy of 3 attempts, through the
    // proxy; it says which attempt this is in grpc-previous-rpc-attempts.
    for target in [p, leaf.at("reviews")] {
        let seen = python_json(
            "retrying_call.py",
            vec![
                target.to_string(),
                "/x".into(),
                "x-mock-status=503@first=2".into(),
            ],
        )
        .await;
        assert_eq!(seen["code"], "OK", "{seen}");
        assert_eq!(seen["response"]["attempt"], 3, "{seen}");
    }
}

#[ignore = "needs haproxy and curl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_fault_aimed_at_v2_behind_a_50_50_split_fails_only_v2() {
    let entry = replica("frontend", "v1").await;
    let v1 = replica("reviews", "v1").await;
    let v2 = replica("reviews", "v2").await;
    let proxy = Proxy {
        servers: &[(v1.at("reviews"), 50), (v2.at("reviews"), 50)],
        ..Proxy::default()
    }
    .start()
    .await;
    let e = entry.at("frontend");
    for (protocol, unavailable) in PROTOCOLS {
        let (mut ok_v1, mut failed_v2) = (0, 0);
        for _ in 0..20 {
            let path = format!(
                "/@{protocol}:{}[x-mock-status=503@version=v2]/end",
                proxy.addr
            );
            let (status, body) = curl(format!("http://{e}{path}"), &[]).await;
            let r = parse(&body);
            let h = hop(&r);
            let answered = h.response.as_ref().expect("a servicemock answered");
            match answered.version.as_str() {
                "v1" => {
                    assert_eq!((status, h.result.as_str()), (200, "ok"), "{r:#?}");
                    assert!(answered.injected.is_empty(), "nothing injected on v1");
                    ok_v1 += 1;
                }
                "v2" => {
                    assert_eq!((status, h.status), (502, Some(unavailable)), "{r:#?}");
                    assert_eq!(answered.injected, ["status 503"]);
                    failed_v2 += 1;
                }
                other => panic!("version {other}"),
            }
        }
        assert!(
            ok_v1 > 0 && failed_v2 > 0,
            "{protocol}: v1 {ok_v1}, v2 {failed_v2}"
        );
    }
}

/// Which replica answered each of `n` calls through the proxy, and whether
/// it failed.
async fn who_answers(entry: SocketAddr, proxy: SocketAddr, n: usize) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, r) = report(entry, &format!("/@{proxy}/end")).await;
        let h = hop(&r);
        let who = h
            .response
            .as_ref()
            .map_or("proxy".to_owned(), |r| r.version.to_string());
        out.push((who, h.error.is_some()));
    }
    out
}

#[ignore = "needs haproxy: scripts/test installs it and runs ignored tests"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_makes_one_of_two_replicas_sick_then_unready() {
    let entry = replica("frontend", "v1").await;
    let a = replica("reviews", "a").await;
    let b = replica("reviews", "b").await;
    let (a_addr, b_addr) = (a.at("reviews"), b.at("reviews"));
    let proxy = Proxy {
        servers: &[(a_addr, 1), (b_addr, 1)],
        check_ready: true,
        ..Proxy::default()
    }
    .start()
    .await;
    let e = entry.at("frontend");
    let control = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_servicemock"))
            .arg("control")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let b_text = b_addr.to_string();

    // b answers 503 from now on; a stays healthy.
    let state = control(&[&b_text, "status=503"]);
    assert_eq!(state["status"], "503");
    let seen = who_answers(e, proxy.addr, 10).await;
    assert!(seen.iter().any(|(v, _)| v == "b"), "{seen:?}");
    for (who, failed) in &seen {
        assert_eq!(*failed, who == "b", "only b fails: {seen:?}");
    }
    let (_, r) = report(b_addr, "/").await;
    let set = ["status 503", "set by /control: x-mock-status=503"];
    assert_eq!(r.injected, set, "the answer says what is set");
    let answer = grpc_call(b_addr, "/").await;
    assert_eq!(answer.code, tonic::Code::Unavailable, "{}", answer.message);
    assert_eq!(answer.report.unwrap().injected, set);

    // b not ready: /ready and gRPC health say so, the proxy's health check
    // takes it out, every answer comes from a.
    let state = control(&[&b_text, "status=", "ready=false"]);
    assert_eq!(
        (state["status"].is_null(), state["ready"].as_bool()),
        (true, Some(false))
    );
    assert_eq!(get(b_addr, "/ready").await.0, 503);
    let mut health = health_client(b_addr).await;
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    );
    eventually(
        "the proxy stops sending to b",
        Duration::from_secs(10),
        || async {
            let seen = who_answers(e, proxy.addr, 6).await;
            match seen.iter().all(|(who, failed)| who == "a" && !failed) {
                true => Ok(()),
                false => Err(format!("{seen:?}")),
            }
        },
    )
    .await;
    let (_, r) = report(b_addr, "/").await;
    assert!(
        r.injected.iter().any(|i| i.starts_with("not ready")),
        "{r:#?}"
    );
    assert!(
        !r.injected.iter().any(|i| i.starts_with("set by")),
        "status cleared, back to the flags: {r:#?}"
    );

    // Reset: b is back in the rotation.
    let state = control(&[&b_text, "--reset"]);
    assert_eq!(state["ready"], true);
    eventually("b comes back", Duration::from_secs(10), || async {
        let seen = who_answers(e, proxy.addr, 6).await;
        match seen.iter().any(|(v, _)| v == "b") {
            true => Ok(()),
            false => Err(format!("{seen:?}")),
        }
    })
    .await;

    // /control is off unless asked for, and a bad change names the key.
    let plain = mesh(&["plain"]).await;
    let (status, body) = get(plain.at("plain"), "/control").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("--control"));
    let response = client()
        .put(format!("http://{b_addr}/control?status=700"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("not an HTTP status"));
}

/// What Envoy says on each retry (`x-envoy-attempt-count`), over each
/// protocol a hop can use: `@first=2` fails the first two attempts, the
/// third gets through, and every answer names its attempt.
#[tokio::test]
async fn envoy_attempt_counts_drive_first_n_over_every_protocol() {
    let entry = mesh(&["entry", "reviews"]).await;
    let e = entry.at("entry");
    for protocol in ["http", "h2c", "grpc"] {
        let mut seen = Vec::new();
        for attempt in 1..=3 {
            // The entry calls reviews as a sidecar's retry would arrive:
            // the attempt count set on the hop.
            let path = format!(
                "/@{protocol}:reviews[x-mock-status=503@first=2][x-envoy-attempt-count={attempt}]/end"
            );
            let (_, r) = report(e, &path).await;
            let h = hop(&r);
            let answered = h.response.as_ref().expect("reviews answered");
            seen.push((h.result.as_str(), answered.attempt));
        }
        assert_eq!(
            seen,
            [("status", 1), ("status", 2), ("ok", 3)],
            "{protocol}"
        );
    }
    // Straight to a service over gRPC, as a sidecar retrying a gRPC call.
    let mut client = grpc_client(e).await;
    let mut codes = Vec::new();
    for attempt in 1..=3 {
        let mut request = tonic::Request::new(path_request("/"));
        let metadata = request.metadata_mut();
        metadata.insert("x-mock-grpc-status", "UNAVAILABLE@first=2".parse().unwrap());
        metadata.insert(
            "x-envoy-attempt-count",
            attempt.to_string().parse().unwrap(),
        );
        codes.push(match client.call(request).await {
            Ok(answer) => (tonic::Code::Ok, answer.into_inner().attempt),
            Err(status) => (status.code(), attempt),
        });
    }
    assert_eq!(
        codes,
        [
            (tonic::Code::Unavailable, 1),
            (tonic::Code::Unavailable, 2),
            (tonic::Code::Ok, 3)
        ]
    );
}
