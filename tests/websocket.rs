//! WebSocket on any path, with a client nobody here wrote (Python
//! `websockets`): reports and echoes as text messages, a socket open longer
//! than `--header-read-timeout`, pings, the close codes RFC 6455 gives
//! (1003 binary, 1007 text that is not UTF-8, 1009 too big, 1001 on
//! shutdown), 426 for another version, the opening counted as an attempt
//! and reset by `x-mock-reset`,
//! and through HAProxy speaking h2 to the server (RFC 8441 extended
//! CONNECT).

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use servicemock::config::{ConnectionLimits, Settings};

/// What the client's tour of a socket saw (see `websocket_client.py`).
fn check_tour(out: &Value, entry: &str) {
    let report = &out["report"];
    assert_eq!(report["Service"], entry, "{out}");
    assert_eq!(report["Protocol"], "websocket");
    assert_eq!(report["StreamMessage"], 1);
    assert_eq!(report["RequestInfo"][0], "WEBSOCKET /chat message 1: /@b/x");
    let hop = &report["ParallelForwards"][0]["SequentialForwards"][0];
    assert_eq!(hop["Result"], "ok", "{report}");
    assert_eq!(hop["Response"]["Service"], "b");
    let tree = out["tree"].as_str().unwrap();
    assert!(
        tree.contains("websocket") && tree.contains("1.1 http  b v1  200 ok"),
        "{tree}"
    );
    let echo = out["echo"].as_str().unwrap();
    assert!(
        echo.starts_with(&format!("{entry} v1 ")) && echo.ends_with(": hello"),
        "{echo}"
    );
    assert!(out["error"]
        .as_str()
        .unwrap()
        .starts_with("error: invalid character '@'"));
    assert_eq!(out["pong"], true);
    assert_eq!(
        out["binary"],
        serde_json::json!([
            1003,
            "servicemock takes text messages: a request target (/...) or a line to echo"
        ])
    );
    assert_eq!(
        out["big"],
        serde_json::json!([1009, "a message past 64 KiB"])
    );
}

#[ignore = "needs the test virtualenv: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn a_websocket_answers_reports_and_echoes() {
    let settings = Settings {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_with(&["a", "b"], settings).await;
    let a = mesh.at("a");
    // A pause of 0.6 s between messages: past the head timeout, not cut.
    let out = python_json("websocket_client.py", vec![a.to_string(), "0.6".into()]).await;
    check_tour(&out, "a");

    // A text frame that is not UTF-8 is closed with 1007, as RFC 6455 says.
    let out = python_json(
        "websocket_client.py",
        vec![a.to_string(), "--bad-utf8".into()],
    )
    .await;
    assert_eq!(
        out["closed"],
        serde_json::json!([1007, "a text message that is not UTF-8"]),
        "{out}"
    );

    // Another version is answered 426 with the one served.
    let curl = tool("curl");
    let url = format!("http://{a}/chat");
    let head = tokio::task::spawn_blocking(move || {
        Command::new(curl)
            .args([
                "-s",
                "-i",
                &url,
                "-H",
                "Connection: Upgrade",
                "-H",
                "Upgrade: websocket",
            ])
            .args([
                "-H",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "-H",
                "Sec-WebSocket-Version: 8",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert!(head.contains("sec-websocket-version: 13"), "{head}");
}

/// A socket opened again with the same request id is the next attempt,
/// and `x-mock-reset` drops the connection before the handshake is
/// answered, as for any request that runs a plan.
#[ignore = "needs the test virtualenv: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn a_websocket_opening_is_an_attempt_and_may_be_reset() {
    let mesh = mesh_with(&["a"], Settings::default()).await;
    let a = mesh.at("a");
    let out = python_json(
        "websocket_client.py",
        vec![a.to_string(), "--attempts".into()],
    )
    .await;
    assert_eq!(out["attempts"], serde_json::json!([1, 2]), "{out}");
    assert_ne!(out["reset"], "opened", "{out}");
    let (_, metrics) = get(a, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "servicemock_injected_faults_total{kind=\"reset\"} 1"),
        "the reset counted: {metrics}"
    );
}

/// HAProxy speaks h2 to the server, so a client's HTTP/1.1 WebSocket
/// reaches it as an extended CONNECT (RFC 8441), as through a sidecar that
/// upgrades to HTTP/2.
#[ignore = "needs haproxy and the test virtualenv: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_websocket_passes_haproxy_over_http2() {
    let mesh = mesh(&["a", "b"]).await;
    let servers = [(mesh.at("a"), 1)];
    let proxy = haproxy::Proxy {
        servers: &servers,
        ..Default::default()
    }
    .start()
    .await;
    let out = python_json(
        "websocket_client.py",
        vec![proxy.addr.to_string(), "0".into()],
    )
    .await;
    check_tour(&out, "a");
}

/// SIGTERM with a socket open: it keeps answering through the drain delay
/// and most of the grace, then is closed with 1001 (going away).
#[ignore = "needs the test virtualenv: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn sigterm_closes_an_open_websocket_with_going_away() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_servicemock"))
        .args(["serve", "--listen", &addr, "--name", "a"])
        .args(["--drain-delay", "200ms", "--shutdown-grace", "1s"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(addr.parse().unwrap(), Duration::from_secs(10)).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/websocket_client.py"
    );
    let mut client = Command::new(venv_python())
        .args([script, &addr, "--until-closed"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
        let open = lines.next().unwrap().unwrap();
        (open, lines, client)
    })
    .await
    .unwrap();
    let (open, mut lines, mut client) = out;
    assert!(open.contains("open"), "{open}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    let last = tokio::task::spawn_blocking(move || lines.next().unwrap().unwrap())
        .await
        .unwrap();
    let seen: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(
        seen["closed"],
        serde_json::json!([1001, "servicemock is shutting down"]),
        "{seen}"
    );
    assert!(
        seen["answered"].as_u64().unwrap() >= 5,
        "it kept answering: {seen}"
    );
    assert!(client.wait().unwrap().success());
    let exit = tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
