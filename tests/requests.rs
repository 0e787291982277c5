//! What a service received (`--record N`, `GET /requests`, `servicemock
//! requests`), with clients nobody here wrote: curl with several methods
//! and bodies, Python's urllib, grpcurl; a mirrored copy (`-shadow`
//! authority) marked, also when HAProxy rewrote it on the way; the bound
//! kept; `--follow` printing new arrivals.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use servicemock::config::Settings;

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");

/// One service `name` that keeps the last `n` requests it received.
async fn recording(name: &str, n: usize) -> servicemock::mesh::Mesh {
    let settings = Settings {
        record: n,
        ..Settings::default()
    };
    mesh_with(&[name], settings).await
}

async fn run(program: String, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || Command::new(program).args(args).output().unwrap())
        .await
        .unwrap()
}

#[ignore = "needs curl, grpcurl and the test virtualenv: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_service_shows_what_it_received_newest_first() {
    let mesh = recording("a", 5).await;
    let a = mesh.at("a");
    let curl = tool("curl");
    let url = |path: &str| format!("http://{a}{path}");
    let curl_args = |extra: &[&str], path: &str| {
        let mut args: Vec<String> = ["-s", "-o", "/dev/null"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(url(path));
        args
    };
    run(
        curl.clone(),
        curl_args(&["-X", "PUT", "-d", "a=1"], "/cart/7"),
    )
    .await;
    run(
        curl.clone(),
        curl_args(&["-F", "file=@Cargo.toml"], "/upload"),
    )
    .await;
    run(
        curl.clone(),
        curl_args(
            &[
                "-H",
                "Host: reviews-shadow:9080",
                "-H",
                "x-request-id: mirror-1",
            ],
            "/reviews/0",
        ),
    )
    .await;
    let python = venv_python().to_string_lossy().into_owned();
    let script = format!(
        "import urllib.request; urllib.request.urlopen('{}').read()",
        url("/from-python")
    );
    run(python, vec!["-c".into(), script]).await;
    let out = grpcurl_run(
        [
            "-plaintext",
            "-d",
            r#"{"path": "/"}"#,
            &a.to_string(),
            "servicemock.v1.MockService/Call",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(out.status.success());
    // Probes and scrapes are not what the service was sent to do.
    get(a, "/health").await;
    get(a, "/metrics").await;

    let (status, body) = get(a, "/requests").await;
    assert_eq!(status, 200, "{body}");
    let entries: Vec<Value> = serde_json::from_str(&body).unwrap();
    let seen: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["Method"].as_str().unwrap().into(),
                e["Path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("POST", "/servicemock.v1.MockService/Call"),
        ("GET", "/from-python"),
        ("GET", "/reviews/0"),
        ("POST", "/upload"),
        ("PUT", "/cart/7"),
    ];
    assert_eq!(
        seen,
        expected.map(|(m, p)| (m.to_owned(), p.to_owned())),
        "newest first: {body}"
    );
    assert_eq!(entries[0]["Protocol"], "grpc");
    assert_eq!(entries[0]["Status"], 0);
    let mirrored = &entries[2];
    assert_eq!(mirrored["Authority"], "reviews-shadow:9080");
    assert_eq!(mirrored["Mirrored"], true);
    assert_eq!(mirrored["RequestId"], "mirror-1");
    assert_eq!(entries[1]["Mirrored"], false);
    assert!(entries[1]["Headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h.as_str().unwrap().starts_with("user-agent: Python-urllib")));
    assert_eq!(entries[4]["Status"], 200);
    assert_eq!(entries[0]["Seq"], 5);

    // Past N, the oldest go.
    get(a, "/one-more").await;
    let (_, body) = get(a, "/requests").await;
    let entries: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["Path"], "/one-more");
    assert_eq!(entries[4]["Path"], "/upload");

    // The command prints the same, one line each with --tree.
    let out = run(
        BIN.into(),
        vec!["requests".into(), a.to_string(), "--tree".into()],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines()
            .nth(3)
            .unwrap()
            .contains("GET reviews-shadow:9080 /reviews/0 -> 200  (mirrored)"),
        "{text}"
    );
    let (status, body) = get(a, "/requests?after=x").await;
    assert_eq!(status, 400, "{body}");
}

/// Without --record, /requests is a path like any other, and the command
/// says what the service needs.
#[tokio::test]
async fn without_record_requests_is_a_path_like_any_other() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let (status, report) = report(a, "/requests").await;
    assert_eq!(status, 200);
    assert_eq!(report.service, "a");
    let out = run(BIN.into(), vec!["requests".into(), a.to_string()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("start it with --record N"));
}

/// `servicemock requests --follow` prints what arrives, as it arrives.
#[tokio::test]
async fn follow_prints_new_requests_as_they_arrive() {
    let mesh = recording("a", 10).await;
    let a = mesh.at("a");
    get(a, "/before").await;
    let mut follow = Command::new(BIN)
        .args(["requests", &a.to_string(), "--follow", "--tree"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = tokio::task::spawn_blocking(move || {
        let line = lines.next().unwrap().unwrap();
        (line, lines)
    });
    let (first, mut lines) = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.contains("GET") && first.contains("/before"),
        "{first}"
    );
    get(a, "/after").await;
    let next = tokio::task::spawn_blocking(move || lines.next().unwrap().unwrap());
    let next = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .unwrap()
        .unwrap();
    assert!(
        next.starts_with("2 ") && next.contains("/after -> 200"),
        "{next}"
    );
    let _ = follow.kill();
    let _ = follow.wait();
}

/// A gRPC stream is kept once it ended: with the status its trailers
/// carried and how many messages it sent.
#[tokio::test]
async fn a_stream_is_kept_with_its_messages_and_status() {
    let mesh = recording("a", 10).await;
    let a = mesh.at("a").to_string();
    let call = |extra: &[&str]| {
        let mut args: Vec<String> = ["call", &a, "/", "--stream", "4"]
            .map(String::from)
            .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        run(BIN.into(), args)
    };
    assert!(call(&[]).await.status.success());
    let ended = call(&["-H", "x-mock-stream-status: UNAVAILABLE@after=2"]).await;
    assert_eq!(ended.status.code(), Some(1));
    let (_, body) = get(mesh.at("a"), "/requests").await;
    let entries: Vec<Value> = serde_json::from_str(&body).unwrap();
    let seen: Vec<(&Value, &Value, &Value)> = entries
        .iter()
        .map(|e| (&e["Path"], &e["Messages"], &e["Status"]))
        .collect();
    let path = Value::from("/servicemock.v1.MockService/CallStream");
    assert_eq!(
        seen,
        [
            (&path, &Value::from(2), &Value::from(14)),
            (&path, &Value::from(4), &Value::from(0)),
        ],
        "{body}"
    );
}

#[ignore = "needs haproxy and curl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_copy_through_a_shadow_frontend_is_marked_mirrored() {
    // Two HAProxy frontends to one recording service; the second appends
    // -shadow to the host, as Envoy does to a mirror route's copy. The same
    // request through both: /requests holds the original and the copy.
    let reviews = recording("reviews", 10).await;
    let upstream = reviews.at("reviews");
    let proxy = common::haproxy::Proxy {
        servers: &[(upstream, 1)],
        shadow: true,
        ..Default::default()
    }
    .start()
    .await;
    let shadow = proxy.shadow.unwrap();
    for front in [proxy.addr, shadow] {
        let (head, _) = curl_off_runtime(vec![
            "-H".into(),
            "Host: reviews:8080".into(),
            format!("http://{front}/reviews/0"),
        ])
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let (status, body) = get(upstream, "/requests").await;
    assert_eq!(status, 200);
    let entries: Value = serde_json::from_str(&body).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{body}");
    // Newest first: the copy, then the original.
    assert_eq!(entries[0]["Authority"], "reviews-shadow:8080", "{body}");
    assert_eq!(entries[0]["Mirrored"], true);
    assert_eq!(entries[1]["Authority"], "reviews:8080");
    assert_eq!(entries[1]["Mirrored"], false);
    for entry in entries {
        assert_eq!(entry["Path"], "/reviews/0");
    }
    let (_, tree) = get(upstream, "/requests?view=tree").await;
    assert!(tree.contains("(mirrored)"), "{tree}");
}
