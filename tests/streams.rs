//! gRPC streams against real servers, with clients nobody here wrote:
//! grpcurl (server streaming with `-d`, bidi from stdin) and grpcio (stubs
//! from reflection); stream directives; bad input; a stream that outlives
//! the head timeout and is counted at its end; the pinning of a stream to
//! one backend through HAProxy while unary calls alternate; and a stream
//! drained by SIGTERM.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use servicemock::config::{ConnectionLimits, Settings};

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");
const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
const CALL_STREAM: &str = "servicemock.v1.MockService/CallStream";
const CONVERSE: &str = "servicemock.v1.MockService/Converse";

/// The JSON messages grpcurl printed, one after another.
fn messages(stdout: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// grpcurl with `args`, `input` on its stdin (for `-d @`), off the async
/// threads (the servers it calls run on them).
async fn grpcurl_with_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut command = Command::new(grpcurl());
    command.args(args);
    let input = input.to_owned();
    tokio::task::spawn_blocking(move || with_stdin(command, input.as_bytes()))
        .await
        .unwrap()
}

/// Who answered the first hop of a message (`service version`).
fn first_hop_answerer(message: &Value) -> String {
    let hop = &message["parallelForwards"][0]["sequentialForwards"][0]["response"];
    format!(
        "{} {}",
        hop["service"].as_str().unwrap(),
        hop["version"].as_str().unwrap()
    )
}

#[ignore = "needs grpcurl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn grpcurl_streams_a_call_and_converses() {
    let mesh = mesh(&["a", "b"]).await;
    let a = mesh.at("a").to_string();
    let out = grpcurl_run(
        [
            "-plaintext",
            "-d",
            r#"{"call": {"path": "/@b/end"}, "count": 3, "interval": "20ms"}"#,
            &a,
            CALL_STREAM,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streamed = messages(&out.stdout);
    assert_eq!(streamed.len(), 3);
    for (i, m) in streamed.iter().enumerate() {
        assert_eq!(m["streamMessage"], i as u64 + 1);
        assert_eq!(m["service"], "a");
        assert_eq!(
            first_hop_answerer(m),
            "b v1",
            "every message says who answered"
        );
        assert!(m["requestInfo"][0]
            .as_str()
            .unwrap()
            .starts_with("POST /servicemock.v1.MockService/CallStream path=/@b/end"));
    }

    // Bidi from stdin: each message in is a call, each out its report.
    let input = r#"{"path": "/@b/one"} {"path": "/@nothere/two"} {"plan": {"uri": "/three"}}"#;
    let out = grpcurl_with_stdin(&["-plaintext", "-d", "@", &a, CONVERSE], input).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conversed = messages(&out.stdout);
    let numbers: Vec<&Value> = conversed.iter().map(|m| &m["streamMessage"]).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(first_hop_answerer(&conversed[0]), "b v1");
    let failed = &conversed[1]["parallelForwards"][0]["sequentialForwards"][0];
    assert_eq!(
        failed["result"], "dns",
        "a failed hop is a message: {failed}"
    );
    assert!(conversed[2]["requestInfo"][0]
        .as_str()
        .unwrap()
        .contains("Converse plan=/three"));
}

#[ignore = "needs the test virtualenv: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn grpcio_streams_through_reflection() {
    let mesh = mesh(&["a", "b"]).await;
    let a = mesh.at("a").to_string();
    let out = python_json(
        "streams.py",
        ["/@b/end", "/@b/x", "/y"].iter().fold(vec![a], |mut v, p| {
            v.push(p.to_string());
            v
        }),
    )
    .await;
    let streamed = out["streamed"].as_array().unwrap();
    assert_eq!(streamed.len(), 3, "{out}");
    for (i, m) in streamed.iter().enumerate() {
        assert_eq!(m["message"], i as u64 + 1);
        assert_eq!(m["called"], serde_json::json!(["b"]));
    }
    let conversed = out["conversed"].as_array().unwrap();
    assert_eq!(conversed.len(), 2, "{out}");
    assert_eq!(conversed[0]["called"], serde_json::json!(["b"]));
    assert_eq!(conversed[1]["called"], serde_json::json!([]));
    assert!(conversed[1]["received"]
        .as_str()
        .unwrap()
        .ends_with("path=/y"));
}

#[ignore = "needs grpcurl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn stream_directives_end_or_reset_a_stream() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a").to_string();
    let five = r#"{"call": {"path": "/"}, "count": 5}"#;
    let run = |header: &str| {
        grpcurl_run(
            ["-plaintext", "-H", header, "-d", five, &a, CALL_STREAM]
                .map(String::from)
                .to_vec(),
        )
    };
    let out = run("x-mock-stream-status: UNAVAILABLE@after=2").await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(messages(&out.stdout).len(), 2, "{err}");
    assert!(err.contains("Code: Unavailable"), "{err}");
    assert!(
        err.contains("x-mock-stream-status ended the stream with UNAVAILABLE after 2 message(s)"),
        "{err}"
    );

    let out = run("x-mock-stream-reset: true@after=3").await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(messages(&out.stdout).len(), 3, "{err}");
    assert!(err.contains("RST_STREAM"), "a reset, not a status: {err}");

    // Conditions of their own kind: only where the version matches.
    let out = run("x-mock-stream-status: 14@after=1@version=v9").await;
    assert!(out.status.success());
    assert_eq!(messages(&out.stdout).len(), 5);

    // Counted with the status the stream ended with (in its trailers).
    let (_, metrics) = get(mesh.at("a"), "/metrics").await;
    assert!(
        metrics
            .contains(r#"servicemock_requests_total{protocol="grpc",route="grpc",status="14"} 1"#),
        "{metrics}"
    );
}

#[ignore = "needs grpcurl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn bad_stream_requests_name_what_and_the_bound() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a").to_string();
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["-d", r#"{"count": 50000}"#, CALL_STREAM],
            "count 50000 is past the bound of 10000 messages",
            "count",
        ),
        (
            &["-d", r#"{"count": 2, "interval": "soon"}"#, CALL_STREAM],
            "interval \\\"soon\\\": write a duration",
            "interval",
        ),
        (
            &[
                "-H",
                "x-mock-stream-status: NOPE@after=1",
                "-d",
                "{}",
                CALL_STREAM,
            ],
            "not a gRPC code",
            "metadata",
        ),
        (
            &["-H", "x-mock-stream-status: 14", "-d", "{}", CALL_STREAM],
            "e.g. UNAVAILABLE@after=3",
            "metadata",
        ),
        (
            &[
                "-H",
                "x-mock-stream-reset: true@after=1",
                "-d",
                "{}",
                "servicemock.v1.MockService/Call",
            ],
            "applies to streams (CallStream, Converse): this request is no stream",
            "metadata",
        ),
    ];
    for (args, said, field) in cases {
        let mut all = vec!["-plaintext".to_owned(), "-format-error".to_owned()];
        let (method, rest) = args.split_last().unwrap();
        all.extend(rest.iter().map(|s| s.to_string()));
        all.push(a.clone());
        all.push(method.to_string());
        let out = grpcurl_run(all).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("\"code\": 3"),
            "INVALID_ARGUMENT for {args:?}: {text}"
        );
        assert!(text.contains(said), "{args:?}: {text}");
        assert!(
            text.contains(&format!("\"field\":\"{field}\"")),
            "{args:?}: {text}"
        );
    }
}

/// A stream lives past `--header-read-timeout` (only the head is timed),
/// holds its `--max-concurrent` permit and stays in flight until it ends,
/// and is counted then, by the real `call --stream` client.
#[tokio::test]
async fn a_stream_outlives_the_head_timeout_and_is_counted_at_its_end() {
    let settings = Settings {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        },
        max_concurrent: 1,
        ..Settings::default()
    };
    let mesh = mesh_with(&["a"], settings).await;
    let a = mesh.at("a");
    let started = Instant::now();
    let stream = tokio::process::Command::new(BIN)
        .args([
            "call",
            &a.to_string(),
            "/",
            "--stream",
            "8",
            "--interval",
            "150ms",
        ])
        .output();
    let watch = async {
        // In flight: the stream, and the scrape that asks.
        wait_in_flight(a, 1, Duration::from_secs(5)).await;
        // The stream holds the one permit: a call beside it is shed.
        let answer = grpc_call(a, "/").await;
        let (_, metrics) = get(a, "/metrics").await;
        (answer, metrics)
    };
    let (out, (beside, during)) = tokio::join!(stream, watch);
    let out = out.unwrap();
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the stream ran its course"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        8,
        "one report per line, none cut by the head timeout"
    );
    assert_eq!(lines[7]["StreamMessage"], 8);
    assert_eq!(
        beside.code,
        tonic::Code::ResourceExhausted,
        "{}",
        beside.message
    );
    assert!(
        during.contains("servicemock_in_flight_requests 2"),
        "in flight while it streams: {during}"
    );
    assert!(
        !during.contains(r#"route="grpc",status="0"} "#),
        "not counted yet: {during}"
    );
    let (_, after) = get(a, "/metrics").await;
    assert!(
        after.contains(r#"servicemock_requests_total{protocol="grpc",route="grpc",status="0"} 1"#),
        "counted once it ended: {after}"
    );
}

/// A client that opens a stream and never reads it: the server makes the
/// next message only when the client has room for it, so the runs stop at
/// a flow-control window's worth instead of running all 10000 (and the
/// answers they would make never pile up in memory).
#[tokio::test]
async fn a_client_that_never_reads_holds_a_stream_back() {
    let mesh = mesh(&["a", "b"]).await;
    let (a, b) = (mesh.at("a"), mesh.at("b"));
    let mut client = grpc_client(a).await;
    let mut request = tonic::Request::new(servicemock::pb::CallStreamRequest {
        call: Some(path_request("/@b/end")),
        count: 10_000,
        ..Default::default()
    });
    // 8 KiB of padding per report, so the window fills soon.
    request
        .metadata_mut()
        .insert("x-mock-size", "8192".parse().unwrap());
    let stream = client.call_stream(request).await.unwrap();
    let calls_of_b = || async {
        let (_, metrics) = get(b, "/metrics").await;
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("servicemock_requests_total{") && l.contains(r#"route="plan""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = calls_of_b().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = calls_of_b().await;
    // hyper's client grants a stream a 2 MiB window: about 230 reports.
    assert!((1..1000).contains(&held), "b was called {held} times");
    assert_eq!(later, held, "the runs stopped at the window");
    drop(stream);
}

/// Two replicas behind HAProxy (h2 to each, round robin), as two pods
/// behind a sidecar: unary calls alternate between them, while every
/// message of one Converse stream is answered by the one it started on —
/// Envoy and HAProxy balance gRPC per stream. grpcurl reads the .proto
/// (`-proto`): reflection is a stream of its own and would be balanced too.
#[ignore = "needs haproxy and grpcurl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_stream_stays_on_its_backend_while_calls_alternate() {
    let (v1, v2) = (
        haproxy::replica("a", "v1").await,
        haproxy::replica("a", "v2").await,
    );
    let servers = [(v1.at("a"), 1), (v2.at("a"), 1)];
    let proxy = haproxy::Proxy {
        servers: &servers,
        ..Default::default()
    }
    .start()
    .await;
    let via = proxy.addr.to_string();
    let base = [
        "-plaintext",
        "-import-path",
        PROTO_DIR,
        "-proto",
        "servicemock/v1/servicemock.proto",
    ];
    let mut versions = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let mut args: Vec<String> = base.map(String::from).to_vec();
        args.extend(
            [
                "-d",
                r#"{"path": "/"}"#,
                &via,
                "servicemock.v1.MockService/Call",
            ]
            .map(String::from),
        );
        let out = grpcurl_run(args).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        *versions
            .entry(answer["version"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    eprintln!("20 unary calls: {versions:?}");
    assert_eq!(versions.get("v1"), Some(&10), "{versions:?}");
    assert_eq!(versions.get("v2"), Some(&10), "{versions:?}");

    let input = r#"{"path": "/"} "#.repeat(20);
    let mut args = base.to_vec();
    args.extend(["-d", "@", &via, CONVERSE]);
    let out = grpcurl_with_stdin(&args, &input).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answered: std::collections::BTreeSet<String> = messages(&out.stdout)
        .iter()
        .map(|m| m["version"].as_str().unwrap().to_owned())
        .collect();
    eprintln!("20 messages of one Converse stream: {answered:?}");
    assert_eq!(messages(&out.stdout).len(), 20);
    assert_eq!(answered.len(), 1, "one stream, one backend: {answered:?}");

    // servicemock load says the same in one number.
    let (code, stdout, stderr) = run_load(&[
        "--protocol",
        "grpc",
        &via,
        "/",
        "--stream",
        "20",
        "-n",
        "4",
        "-c",
        "1",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let run: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(run["requests"], 80, "messages counted as calls: {run}");
    assert_eq!(run["pods_per_stream"], serde_json::json!({"1": 4}), "{run}");
    let versions = &run["positions"][0]["versions"];
    assert_eq!(
        versions,
        &serde_json::json!({"v1": 40, "v2": 40}),
        "streams alternate: {run}"
    );
}

/// SIGTERM with a stream open: a new stream is still served during the
/// drain delay and refused after it; the open one goes on through the drain
/// delay and most of the grace, then ends with UNAVAILABLE saying why, and
/// the process exits 0 within the grace.
#[ignore = "needs grpcurl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn sigterm_ends_an_open_stream_with_unavailable() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &addr.to_string(), "--name", "a"])
        .args(["--drain-delay", "700ms", "--shutdown-grace", "1500ms"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(addr, Duration::from_secs(10)).await;
    let stream = tokio::task::spawn_blocking(move || {
        Command::new(grpcurl())
            .args(["-plaintext", "-d", r#"{"count": 100, "interval": "100ms"}"#])
            .args([&addr.to_string(), CALL_STREAM])
            .output()
            .unwrap()
    });
    wait_in_flight(addr, 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let term = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    // During the drain delay a new stream is served; after it, refused.
    let one = |addr: SocketAddr| {
        grpcurl_run(
            [
                "-plaintext",
                "-d",
                r#"{"count": 1}"#,
                &addr.to_string(),
                CALL_STREAM,
            ]
            .map(String::from)
            .to_vec(),
        )
    };
    let during = one(addr).await;
    assert!(
        during.status.success() && term.elapsed() < Duration::from_millis(700),
        "a new stream in the drain delay: {}",
        String::from_utf8_lossy(&during.stderr)
    );
    tokio::time::sleep_until((term + Duration::from_millis(1000)).into()).await;
    let after = one(addr).await;
    assert!(
        !after.status.success(),
        "a new stream after the drain delay is refused"
    );
    let out = stream.await.unwrap();
    let ended = term.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    let sent = messages(&out.stdout).len();
    assert!((5..100).contains(&sent), "{sent} messages");
    assert!(err.contains("Code: Unavailable"), "{err}");
    assert!(err.contains("servicemock is shutting down"), "{err}");
    assert!(
        ended > Duration::from_millis(1000),
        "it kept streaming: {ended:?}"
    );
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(
            term.elapsed() < Duration::from_secs(5),
            "the server did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

/// Each message's plan runs under a deadline of its own: five runs 300 ms
/// apart, each taking 200 ms, all succeed under a 1 s --request-timeout
/// though the stream lives 2.5 s; a message past the path bound ends a
/// Converse with INVALID_ARGUMENT naming the bound.
#[tokio::test]
async fn each_message_has_a_deadline_of_its_own_and_a_bound() {
    let settings = Settings {
        request_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let mesh = mesh_with(&["a", "b"], settings).await;
    let a = mesh.at("a");
    let started = Instant::now();
    let out = tokio::process::Command::new(BIN)
        .args(["call", &a.to_string(), "/@b[x-mock-delay=200ms]/end"])
        .args(["--stream", "5", "--interval", "300ms", "--flat"])
        .output()
        .await
        .unwrap();
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()[1]["Result"].to_string())
        .collect();
    assert_eq!(results, vec!["\"ok\"".to_owned(); 5]);

    let mut client = grpc_client(a).await;
    let long = servicemock::pb::ConverseRequest {
        request: Some(servicemock::pb::converse_request::Request::Path(
            "/".to_owned() + &"x".repeat(100 * 1024),
        )),
    };
    let answer = async {
        let mut stream = client
            .converse(futures::stream::iter([long]))
            .await?
            .into_inner();
        stream.message().await
    }
    .await;
    let status = answer.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("the limit is 8192"),
        "{}",
        status.message()
    );
}
