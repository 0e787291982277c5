//! No input can crash, wedge or bloat a service: hostile downstreams (deep,
//! huge or lying reports), hostile clients (bytes that once panicked,
//! fan-in bombs, giant messages, slow or idle connections, floods that
//! would starve probes, framing headers, terminal escapes) and the small
//! ones (invalid protobuf, two messages in a unary call, CONNECT).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::routing;
use common::*;
use prost::Message;
use servicemock::config::{ConnectionLimits, Settings};
use servicemock::pb;
use tonic::Code;

/// A report nested `levels` deep, each level one hop: what a hostile (or
/// broken) downstream may answer.
fn nested_report(levels: usize, message: &str) -> String {
    let open = r#"{"Service":"deep","ReceivedDate":"x","ParallelForwards":[{"SequentialForwards":[{"Url":"http://d:8080/","Result":"ok","Response":"#;
    let mut text = String::with_capacity(levels * (open.len() + 8) + 64);
    for _ in 0..levels {
        text.push_str(open);
    }
    text.push_str(&format!(r#"{{"Service":"bottom","Message":"{message}"}}"#));
    for _ in 0..levels {
        text.push_str("}]}]}");
    }
    text
}

/// A downstream that answers `/deep/N` with a report N levels deep,
/// `/big/KB` with a valid report padded to KB KiB, and `/ansi` with a report
/// whose message would clear a terminal.
async fn hostile_downstream() -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/deep/{n}",
            routing::get(|axum::extract::Path(n): axum::extract::Path<usize>| async move {
                nested_report(n, "bottom")
            }),
        )
        .route(
            "/big/{kb}",
            routing::get(|axum::extract::Path(kb): axum::extract::Path<usize>| async move {
                format!(
                    r#"{{"Service":"big","ReceivedDate":"x","Padding":"{}"}}"#,
                    "x".repeat(kb * 1024)
                )
            }),
        )
        .route(
            "/ansi",
            routing::get(|| async {
                r#"{"Service":"evil\u001b]0;pwned\u0007","ReceivedDate":"x","Message":"\u001b[2J\u001b[Hcleared"}"#
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An HTTP/2 prior-knowledge client, to speak gRPC by hand.
fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// One gRPC message frame (uncompressed) around `payload`.
fn grpc_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Writes raw bytes on a new connection and returns what came back before
/// the server closed it or `wait` passed.
fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

#[tokio::test]
async fn deep_reports_from_downstream_are_refused_not_a_crash() {
    let mesh = mesh(&["a", "b"]).await;
    let a = mesh.at("a");
    let evil = hostile_downstream().await;
    // Over HTTP, and relayed over a gRPC hop (the conversion that crashed).
    for path in [
        format!("/@{evil}/deep/2400"),
        format!("/@grpc:b/@{evil}/deep/2400"),
    ] {
        let (status, r) = report(a, &path).await;
        assert_eq!(status, 502, "{path}");
        let mut hop = hops(&r)[0];
        if let Some(b) = hop.response.as_deref() {
            hop = hops(b)[0];
        }
        assert_eq!(hop.result, "bad-answer", "{path}: {hop:#?}");
        assert!(
            hop.error.as_deref().unwrap().contains("nested deeper than"),
            "{hop:#?}"
        );
    }
    // A deep report within the limit passes through the gRPC hop intact.
    let (status, r) = report(a, &format!("/@grpc:b/@{evil}/deep/100")).await;
    assert_eq!(status, 200, "{r:#?}");
    let chain = first_hop_chain(&r);
    assert_eq!(chain.last().unwrap().service, "bottom");
    assert_eq!(chain.len(), 103);
    let (status, _) = get(a, "/health").await;
    assert_eq!(status, 200, "still alive");
}

#[tokio::test]
async fn output_grows_linearly_with_what_was_received() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let evil = hostile_downstream().await;
    // Twice the levels in, about twice the bytes out: no level copies or
    // indents what is below it without bound.
    let (status, half) = get(a, &format!("/@{evil}/deep/60")).await;
    assert_eq!(status, 200);
    let (status, full) = get(a, &format!("/@{evil}/deep/120")).await;
    assert_eq!(status, 200);
    let ratio = full.len() as f64 / half.len() as f64;
    assert!(
        ratio < 2.3,
        "{} then {} bytes: x{ratio:.2}",
        half.len(),
        full.len()
    );
    let per_level = full.len() / 120;
    assert!(per_level < 3000, "{per_level} bytes per level");
}

#[tokio::test]
async fn header_bytes_that_once_panicked_are_a_400() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let answer = tokio::task::spawn_blocking(move || {
        raw_exchange(
            a,
            b"GET / HTTP/1.1\r\nhost: x\r\ngrpc-timeout: 1\xff\r\nconnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("grpc-timeout"), "{text}");
    // The same bytes over h2c and as gRPC metadata.
    let h2 = h2c_client();
    let value = reqwest::header::HeaderValue::from_bytes(b"1\xff").unwrap();
    let r = h2
        .get(format!("http://{a}/"))
        .header("grpc-timeout", value.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = h2
        .post(format!("http://{a}/servicemock.v1.MockService/Call"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", value)
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    let code = r
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(code.as_deref(), Some("3"), "INVALID_ARGUMENT: {r:?}");
    let (status, _) = get(a, "/health").await;
    assert_eq!(status, 200, "still alive");
}

#[tokio::test]
async fn fan_in_bombs_are_refused_before_anyone_is_called() {
    let mesh = mesh(&["a", "b", "c"]).await;
    let a = mesh.at("a");
    // 16 b's each calling 15 c's padded to 1 MiB: 240 MiB of answers.
    let bs = ["b"; 16].join("|");
    let cs = ["c[x-mock-size=1MiB]"; 15].join("|");
    let (status, body) = get(a, &format!("/@{bs}/@{cs}/end")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--max-report-size"), "{body}");
    // A 100 KB request id repeated in the report of 72 hops.
    let bs = ["b"; 8].join("|");
    let cs = ["c"; 8].join("|");
    let id = "i".repeat(100 * 1024);
    let (status, body) =
        get_with_header(a, &format!("/@{bs}/@{cs}/end"), "x-request-id", &id).await;
    assert_eq!(status, 400, "{}", &body[..body.len().min(300)]);
    assert!(
        body.contains("propagated headers"),
        "{}",
        &body[..300.min(body.len())]
    );
    let (_, metrics) = get(a, "/metrics").await;
    assert!(
        !metrics.contains("servicemock_hops_total{"),
        "nobody was called"
    );
}

async fn get_with_header(addr: SocketAddr, path: &str, name: &str, value: &str) -> (u16, String) {
    let r = client()
        .get(format!("http://{addr}{path}"))
        .header(name, value)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn huge_answers_are_cut_at_the_report_budget() {
    let settings = Settings {
        max_report_size: 1024 * 1024,
        ..Settings::default()
    };
    let mesh = mesh_with(&["a", "b"], settings).await;
    let a = mesh.at("a");
    let evil = hostile_downstream().await;
    // Two answers of 700 KiB: the second passes the 1 MiB budget and is cut.
    let (status, r) = report(a, &format!("/@{evil},{evil}/big/700")).await;
    assert_eq!(status, 502);
    let hops = hops(&r);
    assert_eq!(hops[0].result, "ok");
    assert_eq!(hops[1].result, "bad-answer");
    assert!(
        hops[1]
            .error
            .as_deref()
            .unwrap()
            .contains("--max-report-size): cut"),
        "{:#?}",
        hops[1]
    );
    // The same over a gRPC hop.
    let (status, r) = report(a, "/@grpc:b[x-mock-size=1MiB]/").await;
    assert_eq!(status, 502, "{r:#?}");
    assert!(hops_error(&r).contains("--max-report-size"), "{r:#?}");
}

fn hops_error(r: &servicemock::report::Report) -> String {
    hops(r)[0].error.clone().unwrap_or_default()
}

#[tokio::test]
async fn giant_plans_are_refused_while_they_are_read() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let hops: Vec<pb::Hop> = (0..400_000)
        .map(|_| pb::Hop {
            target: "a".into(),
            ..Default::default()
        })
        .collect();
    let request = pb::CallRequest {
        request: Some(pb::call_request::Request::Plan(pb::Plan {
            parallel: vec![pb::Sequence { hops }],
            uri: "/".into(),
        })),
    };
    assert!(request.encoded_len() > 2_000_000);
    let status = grpc_client(a).await.call(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("refused while reading it"),
        "{status:?}"
    );
}

#[tokio::test]
async fn slow_and_idle_connections_are_let_go_and_capped() {
    let settings = Settings {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(1500),
            max_connections: 20,
        },
        ..Settings::default()
    };
    let mesh = mesh_with(&["a"], settings).await;
    let a = mesh.at("a");
    let outcome = tokio::task::spawn_blocking(move || {
        // Slowloris: half a head, then nothing.
        let started = Instant::now();
        let slow = raw_exchange(a, b"GET / HTTP/1.1\r\nhost: x\r\n", Duration::from_secs(10));
        let slow_closed_after = started.elapsed();
        // A silent connection: nothing at all.
        let started = Instant::now();
        let silent = raw_exchange(a, b"", Duration::from_secs(10));
        assert!(silent.is_empty());
        let silent_closed_after = started.elapsed();
        assert!(
            silent_closed_after < Duration::from_secs(3),
            "a silent connection held {silent_closed_after:?}"
        );
        // Idle keep-alive: one request, then silence.
        let mut idle = TcpStream::connect(a).unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        let mut seen = Vec::new();
        let _ = idle.read_to_end(&mut seen);
        let idle_closed_after = started.elapsed();
        // Past the cap: extra connections are closed at once, and once they
        // are gone the service answers again.
        let held: Vec<TcpStream> = (0..25).map(|_| TcpStream::connect(a).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut refused = 0;
        for mut stream in held.iter().skip(20) {
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut buf = [0u8; 1];
            if matches!(stream.read(&mut buf), Ok(0) | Err(_)) {
                refused += 1;
            }
        }
        drop(held);
        (slow, slow_closed_after, seen, idle_closed_after, refused)
    })
    .await
    .unwrap();
    let (slow, slow_after, seen, idle_after, refused) = outcome;
    assert!(
        slow.is_empty() || String::from_utf8_lossy(&slow).contains("408"),
        "{slow:?}"
    );
    assert!(
        slow_after < Duration::from_secs(3),
        "slowloris held {slow_after:?}"
    );
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    assert!(
        idle_after >= Duration::from_millis(1000) && idle_after < Duration::from_secs(5),
        "idle connection closed after {idle_after:?}"
    );
    assert_eq!(refused, 5, "the 5 connections past the cap were closed");
    wait_healthy(a, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn probes_and_metrics_are_never_shed() {
    let settings = Settings {
        max_concurrent: 2,
        ..Settings::default()
    };
    let mesh = mesh_with(&["a"], settings).await;
    let a = mesh.at("a");
    let busy: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(a, "/").await }))
        .collect();
    // Hold both slots with delayed requests.
    let delayed: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                client()
                    .get(format!("http://{a}/"))
                    .header("x-mock-delay", "1500ms")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for b in busy {
        let _ = b.await;
    }
    wait_in_flight(a, 2, Duration::from_secs(5)).await;
    let (status, _) = get(a, "/").await;
    assert_eq!(status, 503, "plans are shed");
    for path in ["/health", "/ready", "/metrics"] {
        let (status, _) = get(a, path).await;
        assert_eq!(status, 200, "{path} is never shed");
    }
    let serving = health_client(a)
        .await
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(serving, 1, "gRPC health is never shed");
    for d in delayed {
        assert_eq!(d.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn terminal_escapes_are_shown_escaped_and_paths_with_newlines_refused() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let evil = hostile_downstream().await;
    let (_, tree) = get(a, &format!("/@{evil}/ansi?view=tree")).await;
    assert!(!tree.contains('\u{1b}'), "{tree:?}");
    assert!(!tree.contains('\u{7}'), "{tree:?}");
    assert!(tree.contains("evil\\u{1b}]0;pwned\\u{7}"), "{tree}");
    let status = grpc_client(a)
        .await
        .call(path_request("/x\n2026-01-01 INFO forged log line"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn the_grpc_channel_cache_is_bounded_and_forgets_failures() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    // 40 distinct targets where nobody listens: none is kept.
    let mut targets = Vec::new();
    for i in 0..40u8 {
        targets.push(format!(
            "grpc:127.0.0.{}:{}",
            2 + i,
            closed_port().await.port()
        ));
    }
    let (status, _) = get(a, &format!("/@{}/", targets.join("|"))).await;
    assert_eq!(status, 502);
    let (_, metrics) = get(a, "/metrics").await;
    assert!(
        metrics.contains("servicemock_grpc_channels 0"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("channels"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_small_ones() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let h2 = h2c_client();
    let grpc_status = |r: &reqwest::Response| {
        r.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    // Bytes that are not protobuf: INVALID_ARGUMENT, not INTERNAL.
    let garbage = [0u8, 0, 0, 0, 3, 0xff, 0xff, 0xff];
    let r = h2
        .post(format!("http://{a}/servicemock.v1.MockService/Call"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(garbage.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(grpc_status(&r).as_deref(), Some("3"), "{r:?}");
    // Two messages in one unary call.
    let frame = grpc_frame(&path_request("/").encode_to_vec());
    let two = [frame.clone(), frame].concat();
    let r = h2
        .post(format!("http://{a}/servicemock.v1.MockService/Call"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(two)
        .send()
        .await
        .unwrap();
    assert_eq!(
        grpc_status(&r).as_deref(),
        Some("3"),
        "a second message is refused: {r:?}"
    );
    // CONNECT is no proxy request here.
    let answer = tokio::task::spawn_blocking(move || {
        raw_exchange(
            a,
            b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 405"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// Health and reflection decode with tonic's own codec: nested groups up to
/// their size limit do not reach the stack's end, and bigger messages are
/// refused before decoding.
#[tokio::test]
async fn nested_groups_cannot_crash_health_or_reflection() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let h2 = h2c_client();
    for (size, method) in [
        (1024, "/grpc.health.v1.Health/Check"),
        (64 * 1024, "/grpc.health.v1.Health/Check"),
        (
            1024,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ),
    ] {
        // Field 9 as a start group, again and again.
        let frame = grpc_frame(&vec![(9u8 << 3) | 3; size]);
        let r = h2
            .post(format!("http://{a}{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(frame)
            .send()
            .await
            .unwrap();
        let _ = r.bytes().await;
    }
    let (status, _) = get(a, "/health").await;
    assert_eq!(status, 200, "still alive");
}

/// Open inbound connections of the service at `addr`, read from its
/// `/metrics` over a connection of its own (counted too).
async fn open_connections(addr: SocketAddr) -> i64 {
    let (_, text) = get(addr, "/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix("servicemock_open_connections "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no open_connections gauge in {text}"))
}

#[tokio::test]
async fn hop_connections_are_kept_alive_and_let_go_when_the_callee_closes_them() {
    // b closes a keep-alive connection idle for 1 s: the connection a's
    // hops keep must then be found closed, and the next hop go out on a
    // new one, never fail for it.
    let settings = Settings {
        connections: ConnectionLimits {
            idle_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_with(&["a", "b"], settings).await;
    let (a, b) = (mesh.at("a"), mesh.at("b"));
    for _ in 0..5 {
        let (status, report) = report(a, "/@b/").await;
        assert_eq!(status, 200, "{report:#?}");
    }
    // The five hops went over one connection; the other is this scrape.
    assert_eq!(open_connections(b).await, 2);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(open_connections(b).await, 1, "b let the idle one go");
    for _ in 0..3 {
        let (status, report) = report(a, "/@b/").await;
        let hop = report.forwards().next().unwrap();
        assert_eq!((status, hop.result.as_str()), (200, "ok"), "{hop:#?}");
    }
    assert_eq!(open_connections(b).await, 2);
}
