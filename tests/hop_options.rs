//! Hop options (`[:name=value]`): a hop made as a real application makes
//! it — method and body, its own path, its own timeout and retries, a
//! target that is not a servicemock — against real servers: servicemocks,
//! Python's own `http.server`, and HAProxy retrying in front of a
//! servicemock (retry amplification, counted exactly).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::haproxy::Proxy;
use common::*;
use serde_json::Value;
use servicemock::config::Settings;

async fn json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, value)
}

fn first_hop(report: &Value) -> &Value {
    &report["ParallelForwards"][0]["SequentialForwards"][0]
}

#[tokio::test]
async fn method_body_and_path_reach_the_callee() {
    let mesh = mesh(&["a", "b", "c"]).await;
    let a = mesh.at("a");
    let (status, report) = json(
        a,
        "/@b[:method=POST][:body=1KiB]|c[:method=DELETE][:path=%2Freviews%2F0]/end",
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let b = first_hop(&report);
    assert_eq!(b["Result"], "ok", "{b}");
    assert_eq!(b["Options"], "POST 1 KiB");
    assert_eq!(b["Response"]["Method"], "POST");
    assert_eq!(b["Response"]["BodyBytes"], 1024);
    assert!(
        b["Response"]["RequestInfo"][0]
            .as_str()
            .unwrap()
            .starts_with("POST /end "),
        "{b}"
    );
    let c = &report["ParallelForwards"][1]["SequentialForwards"][0];
    assert_eq!(c["Response"]["Method"], "DELETE");
    assert_eq!(c["Url"], format!("http://c:8080/reviews/0"));
    assert!(c["Response"]["RequestInfo"][0]
        .as_str()
        .unwrap()
        .starts_with("DELETE /reviews/0 "));
    // HEAD carries no report: judged by its status alone, never a bad answer.
    let (_, head) = json(a, "/@b[:method=HEAD]/").await;
    let b = first_hop(&head);
    assert_eq!(b["Result"], "ok", "{b}");
    assert_eq!(b["Status"], 200);
    assert!(b["AnsweredBy"].as_str().unwrap().contains("200 OK"), "{b}");
}

/// Python's `http.server` on a loopback port, killed when dropped.
fn plain_server() -> PythonServer {
    python_server::<&str>("plain_server.py", &[])
}

#[ignore = "needs the test virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn a_target_that_is_no_servicemock_is_judged_by_its_status() {
    let python = plain_server();
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let p = python.addr;
    // Without the option, a 200 that is no report is a bad answer.
    let (_, plain) = json(a, &format!("/@{p}/")).await;
    assert_eq!(first_hop(&plain)["Result"], "bad-answer");
    let (status, ok) = json(a, &format!("/@{p}[:expect=any]/hello")).await;
    assert_eq!(status, 200, "{ok}");
    let hop = first_hop(&ok);
    assert_eq!(hop["Result"], "ok", "{hop}");
    let by = hop["AnsweredBy"].as_str().unwrap();
    assert!(by.starts_with("other (server: BaseHTTP/"), "{by}");
    assert!(by.contains("200 OK: \"hello from python\""), "{by}");
    assert!(hop.get("Response").is_none());
    // The remainder is sent as written.
    let (status, teapot) = json(a, &format!("/@{p}[:expect=any]/status/418")).await;
    assert_eq!(status, 502, "{teapot}");
    let hop = first_hop(&teapot);
    assert_eq!(hop["Result"], "status", "{hop}");
    assert_eq!(hop["Status"], 418);
    assert!(
        hop["Error"]
            .as_str()
            .unwrap()
            .starts_with("answered 418 I'm a teapot, made by other (server: BaseHTTP/"),
        "{hop}"
    );
    let (_, unavailable) = json(a, &format!("/@{p}[:expect=any]/status/503")).await;
    assert_eq!(first_hop(&unavailable)["Result"], "status");
}

/// Two layers of retries multiply: HAProxy retries each try twice on 503
/// (three attempts), the calling service retries the hop once more.
#[ignore = "needs haproxy: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn retries_in_the_application_multiply_with_the_proxys() {
    let upstream = mesh(&["c"]).await;
    let c = upstream.at("c");
    let proxy = Proxy {
        servers: &[(c, 1)],
        retries: Some(2),
        ..Proxy::default()
    }
    .start()
    .await;
    let callers = mesh(&["a"]).await;
    let a = callers.at("a");
    let path = format!("/@{}[:retries=2][x-mock-status=503@first=4]/", proxy.addr);
    let (status, report) = json(a, &path).await;
    assert_eq!(status, 200, "{report}");
    let hop = first_hop(&report);
    assert_eq!(hop["Result"], "ok", "{hop}");
    assert_eq!(hop["Options"], "retries 2");
    let tries = hop["Tries"].as_array().unwrap();
    assert_eq!(tries.len(), 2, "{hop}");
    // Try 1: the proxy's three attempts (arrivals 1 to 3) all 503.
    assert_eq!(tries[0]["Try"], 1);
    assert_eq!(tries[0]["Result"], "status");
    assert_eq!(tries[0]["Status"], 503);
    assert_eq!(tries[0]["Response"]["Attempt"], 3);
    assert_eq!(tries[0]["Response"]["Try"], 1);
    // Try 2: arrival 4 is 503, the proxy's retry (arrival 5) is ok.
    assert_eq!(tries[1]["Try"], 2);
    assert_eq!(tries[1]["Result"], "ok");
    assert!(
        tries[1].get("Response").is_none(),
        "the hop's Response is it"
    );
    assert_eq!(hop["Response"]["Attempt"], 5);
    assert_eq!(hop["Response"]["Try"], 2);
    // The text tree shows each try under the hop.
    let (_, tree) = get(a, &format!("{path}?view=tree")).await;
    assert!(tree.contains("{retries 2}"), "{tree}");
    assert!(tree.contains("try 1  503 status"), "{tree}");
    assert!(tree.contains("try 2  200 ok"), "{tree}");
    drop(proxy);
}

/// Bookinfo's productpage "bug": a 3 s timeout and one retry of its own,
/// against a service delayed 7 s (the Istio fault rule's stand-in).
#[tokio::test]
async fn the_bookinfo_timeout_bug_shows_both_tries() {
    let settings = Settings {
        max_delay: Duration::from_secs(10),
        ..Settings::default()
    };
    let mesh = mesh_with(&["productpage", "reviews"], settings).await;
    let entry = mesh.at("productpage");
    let started = Instant::now();
    let (status, report) = json(
        entry,
        "/@reviews[:timeout=3s][:retries=1][x-mock-delay=7s]/reviews/0",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 502, "{report}");
    assert!(
        took > Duration::from_secs(5) && took < Duration::from_secs(7),
        "{took:?}"
    );
    let hop = first_hop(&report);
    assert_eq!(hop["Result"], "timeout", "{hop}");
    let tries = hop["Tries"].as_array().unwrap();
    assert_eq!(tries.len(), 2, "{hop}");
    for t in tries {
        assert_eq!(t["Result"], "timeout", "{t}");
        assert!(
            t["Error"]
                .as_str()
                .unwrap()
                .ends_with("(the hop's own timeout of 3s)"),
            "{t}"
        );
    }
    assert_eq!(hop["Response"]["Attempt"], 2);
}

#[tokio::test]
async fn grpc_hops_take_their_own_timeout_and_retries() {
    let mesh = mesh(&["a", "b"]).await;
    let a = mesh.at("a");
    let (status, report) = json(
        a,
        "/@grpc:b[:retries=1][:retry-on=unavailable][:timeout=2s][x-mock-grpc-status=UNAVAILABLE@first=1]/",
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let hop = first_hop(&report);
    let tries = hop["Tries"].as_array().unwrap();
    assert_eq!(tries[0]["Result"], "status", "{hop}");
    assert_eq!(tries[0]["Status"], 14);
    assert_eq!(tries[1]["Result"], "ok");
    assert_eq!(hop["Response"]["Attempt"], 2);
    // A 5xx is no reason to retry when only `unavailable` is asked.
    let (_, once) = json(
        a,
        "/@b[:retries=3][:retry-on=unavailable][x-mock-status=503@first=1]/",
    )
    .await;
    assert_eq!(first_hop(&once)["Tries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_connect_timeout_is_not_the_request_timeout() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let hole = unconnectable().await;
    let started = Instant::now();
    let (_, report) = json(a, &format!("/@{hole}[:connect=200ms][:timeout=5s]/")).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{report}");
    let hop = first_hop(&report);
    assert_eq!(hop["Result"], "timeout", "{hop}");
    assert_eq!(hop["Options"], "timeout 5s, connect 200ms");
    assert!(
        hop["Error"].as_str().unwrap().starts_with(&format!(
            "no connection to {hole} within the connect timeout of 200ms"
        )),
        "{hop}"
    );
    // Without it, the same address holds the hop for its whole timeout.
    let started = Instant::now();
    let (_, report) = json(a, &format!("/@{hole}[:timeout=1s]/")).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "{report}");
    assert!(first_hop(&report)["Error"]
        .as_str()
        .unwrap()
        .contains("(the hop's own timeout of 1s)"));
}

#[tokio::test]
async fn bad_options_are_refused_before_anyone_is_called() {
    let settings = Settings {
        limits: servicemock::plan::Limits {
            max_hops: 8,
            ..Default::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_with(&["a", "b"], settings).await;
    let a = mesh.at("a");
    for (path, says) in [
        (
            "/@b[:methd=POST]/",
            "unknown hop option ':methd' (known: :method, :body, :path, :timeout",
        ),
        (
            "/@b[:retries=1000]/",
            "option ':retries=1000': not a number from 0 to 10",
        ),
        ("/@b[:timeout=0]/", "option ':timeout=0': at least 1ms"),
        (
            "/@grpc:b[:method=POST]/",
            "option ':method' does not apply to a grpc hop (only to http, h2c, https)",
        ),
        ("/@b[:sni=x]/", "option ':sni' does not apply to a http hop"),
        ("/@b[:backoff=1s]/", "option ':backoff' needs ':retries'"),
        (
            "/@b[:path=%2Fx]/@b/",
            "option ':path' sends that path as written",
        ),
        ("/@b[:body=2MiB]/", "over --max-body"),
        // 1 + 3 tries of b, each calling b twice: 4 + 8 calls, over 8.
        ("/@b[:retries=3]/@b,b/", "plan too large"),
    ] {
        let (status, body) = get(a, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    // The same in a gRPC plan names the field.
    let mut client = grpc_client(a).await;
    let request = servicemock::pb::CallRequest {
        request: Some(servicemock::pb::call_request::Request::Plan(
            servicemock::pb::Plan {
                parallel: vec![servicemock::pb::Sequence {
                    hops: vec![servicemock::pb::Hop {
                        target: "b".into(),
                        options: Some(servicemock::pb::HopOptions {
                            retries: 11,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                }],
                uri: String::new(),
            },
        )),
    };
    let status = client.call(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "plan.parallel[0].hops[0].options.retries: option ':retries=11': not a number from 0 to 10"
    );
}

/// The options on h2c and gRPC hops too: method and body over h2c, a
/// connect timeout on a gRPC channel.
#[tokio::test]
async fn options_work_over_h2c_and_grpc() {
    let mesh = mesh(&["a", "b"]).await;
    let a = mesh.at("a");
    let (status, report) = json(a, "/@h2c:b[:method=PUT][:body=10][:path=%2Fitems%2F7]/").await;
    assert_eq!(status, 200, "{report}");
    let b = &first_hop(&report)["Response"];
    assert_eq!(b["Method"], "PUT");
    assert_eq!(b["BodyBytes"], 10);
    assert_eq!(b["Protocol"], "h2c");
    assert!(b["RequestInfo"][0]
        .as_str()
        .unwrap()
        .starts_with("PUT /items/7 "));
    let hole = unconnectable().await;
    let started = Instant::now();
    let (_, report) = json(a, &format!("/@grpc:{hole}[:connect=200ms][:timeout=5s]/")).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{report}");
    assert_ne!(first_hop(&report)["Result"], "ok", "{report}");
}

/// `servicemock load` tallies the tries per position: every call's hop
/// fails once (503 on its first arrival) and is retried once.
#[tokio::test]
async fn load_tallies_tries_per_position() {
    let mesh = mesh(&["a", "b"]).await;
    let a = mesh.at("a").to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicemock"))
        .args([
            "load",
            &a,
            "/@b[:retries=1][x-mock-status=503@first=1]/",
            "-n",
            "40",
        ])
        .args([
            "--expect",
            "1.1.tries=2:100",
            "--expect",
            "1.1.attempt=2:100",
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tries        2 40 (100.0%)"), "{text}");
}
