//! The `servicemock` binary as a user runs it: `mesh` with the original
//! README's URLs, `plan`, `call` over HTTP and gRPC, `health`, and graceful
//! shutdown on SIGTERM with a request in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use servicemock::report::Report;

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");

/// `count` consecutive free loopback ports.
fn free_ports(count: u16) -> u16 {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base > 65000 {
            continue;
        }
        let all_free =
            (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports");
}

/// Sends `signal` (TERM, INT) to the child.
fn signal(child: &Running, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits for the child to exit, `limit` at most since `since`, and says it
/// exited with status 0.
async fn exits_ok(child: &mut Running, since: Instant, limit: Duration, what: &str) {
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(since.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
}

/// Ctrl-C (SIGINT) is a person at a terminal: the process exits 0 at once.
async fn interrupt_stops_at_once(child: &mut Running) {
    signal(child, "INT");
    let limit = Duration::from_secs(2);
    exits_ok(child, Instant::now(), limit, "Ctrl-C waited").await;
}

/// Starts `servicemock serve` on a free loopback port with `args` (after
/// the listen flag) and `envs`, and waits until it is healthy.
async fn serve(
    listen_flag: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    stderr: Stdio,
) -> (Running, SocketAddr) {
    let port = free_ports(1);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(BIN)
        .args(["serve", listen_flag, &addr.to_string()])
        .args(args)
        .envs(envs.iter().copied())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_healthy(addr, Duration::from_secs(10)).await;
    (running, addr)
}

/// Runs the binary from a blocking thread, so the servers of the test keep
/// being served while it waits.
async fn run_off_runtime(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("binary runs")
}

#[tokio::test]
async fn mesh_command_serves_the_original_urls() {
    let base = free_ports(3);
    let mut child = Command::new(BIN)
        .args([
            "mesh",
            "service1",
            "service2",
            "service3",
            "--base-port",
            &base.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let child = Running(child);
    let mut table = String::new();
    while !table.contains("curl") {
        assert!(
            stdout.read_line(&mut table).unwrap() > 0,
            "mesh exited: {table}"
        );
    }
    let service3 = table
        .lines()
        .find(|l| l.trim_start().starts_with("service3 "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    assert_eq!(
        service3.as_ref().map(|w| (w[1], w[2].to_owned())),
        Some(("v1", format!("127.0.0.1:{}", base + 2))),
        "{table}"
    );
    let entry: SocketAddr = format!("127.0.0.1:{base}").parse().unwrap();
    wait_healthy(entry, Duration::from_secs(10)).await;
    let (status, r) = report(entry, "/@service2|service3/@service1/end").await;
    assert_eq!(status, 200, "{r:#?}");
    let order: Vec<_> = r
        .forwards()
        .map(|f| f.response.as_ref().unwrap().service.clone())
        .collect();
    assert_eq!(order, ["service2", "service3"]);
    let (status, r) = report(entry, "/@service2:8080/@service3/").await;
    assert_eq!(status, 200, "name:8080 resolves in the mesh too: {r:#?}");
    drop(child);
}

#[test]
fn plan_prints_a_call_request_or_the_error() {
    let ok = run(&["plan", "/@a|grpc:b[end-user=j]/@c/end"]);
    assert!(ok.status.success());
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    let hop = &json["plan"]["parallel"][1]["hops"][0];
    assert_eq!(hop["target"], "b");
    assert_eq!(hop["protocol"], "PROTOCOL_GRPC");
    assert_eq!(hop["headers"]["end-user"], "j");
    assert_eq!(hop["next"]["parallel"][0]["hops"][0]["target"], "c");
    assert_eq!(json["plan"]["uri"], "/end");

    let bad = run(&["plan", "/@a||b"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "empty target at position 4 in \"@a||b\""
    );
}

#[tokio::test]
async fn call_over_http_and_grpc() {
    let mesh = mesh(&["entry", "service2"]).await;
    let entry = mesh.at("entry").to_string();
    for grpc in [false, true] {
        let call = |tree: bool| {
            let mut args = vec!["call"];
            args.extend(grpc.then_some("--grpc"));
            args.extend(tree.then_some("--tree"));
            args.extend([entry.as_str(), "/@grpc:service2/end"]);
            run_off_runtime(args.into_iter().map(String::from).collect())
        };
        let out = call(false).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Report = serde_json::from_slice(&out.stdout).unwrap();
        let hop = r.forwards().next().unwrap();
        assert_eq!((hop.protocol.as_str(), hop.result.as_str()), ("grpc", "ok"));
        assert_eq!(hop.response.as_ref().unwrap().service, "service2");

        let out = call(true).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("└─ 1.1 grpc  service2 v1  0 ok"), "{text}");
    }
    let closed = closed_port().await;
    let path = format!("/@127.0.0.1:{}/", closed.port());
    let args = ["call", "--grpc", &entry, &path].map(String::from).to_vec();
    let out = run_off_runtime(args).await;
    assert_eq!(out.status.code(), Some(1));
    let r: Report =
        serde_json::from_slice(&out.stdout).expect("the report is printed on failure too");
    assert_eq!(r.forwards().next().unwrap().result, "refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("answered UNAVAILABLE"));
}

/// Addresses and paths the way people type them: URLs, a missing '/', a
/// pasted URL; a path never becomes a host; the flat view for jq.
#[tokio::test]
async fn call_and_health_read_addresses_as_people_write_them() {
    let mesh = mesh(&["entry", "service2"]).await;
    let entry = mesh.at("entry").to_string();
    let url = format!("http://{entry}/");
    for grpc in [false, true] {
        let mut args = vec!["call".to_owned()];
        if grpc {
            args.push("--grpc".into());
        }
        args.extend(["--flat".into(), url.clone(), "@service2/end".into()]);
        let out = run_off_runtime(args).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[1]["Position"], "1.1");
        assert_eq!(rows[1]["Service"], "service2");
    }
    // A path glued to the address is refused, never read as userinfo.
    let glued = format!("{entry}@service2/end");
    let out = run_off_runtime(vec!["call".into(), glued, "/".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an address"));
    let out = run_off_runtime(vec!["health".into(), url]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // plan takes a path without its '/', or a pasted URL.
    for typed in ["@a|b/end", "localhost:8080/@a|b/end"] {
        let out = run(&["plan", typed]);
        assert!(out.status.success());
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            plan["plan"]["parallel"].as_array().unwrap().len(),
            2,
            "{typed}"
        );
    }
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("servicemock "));
}

#[tokio::test]
async fn health_command() {
    let mesh = mesh(&["a"]).await;
    let addr = mesh.at("a").to_string();
    for protocol in ["http", "h2c", "grpc"] {
        let out = run_off_runtime(vec![
            "health".into(),
            "--protocol".into(),
            protocol.into(),
            addr.clone(),
        ])
        .await;
        assert!(
            out.status.success(),
            "{protocol}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let closed = closed_port().await.to_string();
    let out = run_off_runtime(vec!["health".into(), closed.clone()]).await;
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("connection refused by {closed}")),
        "{said}"
    );
}

/// What a client that keeps calling saw at one moment after SIGTERM.
#[derive(Debug)]
struct Seen {
    at: Duration,
    ready: Option<u16>,
    plan: Option<u16>,
}

/// On SIGTERM: not-ready at once while new requests are still served for
/// the drain delay, then the listener closes, the request in flight
/// finishes, and the process exits 0. Watched by a client calling all along.
#[tokio::test]
async fn sigterm_drains_in_the_order_kubernetes_needs() {
    let slow = stand_in().await;
    let args = [
        "--name",
        "draining",
        "--drain-delay",
        "1s",
        "--shutdown-grace",
        "5s",
    ];
    let (mut child, addr) = serve("--listen", &args, &[], Stdio::null()).await;
    let path = format!("/@127.0.0.1:{}/slow/1500", slow.port());
    let in_flight = tokio::spawn(async move { report(addr, &path).await });
    let mut health = health_client(addr).await;
    wait_in_flight(addr, 1, Duration::from_secs(5)).await;
    signal(&child, "TERM");
    let sent = Instant::now();
    // A fresh connection per call, as a kubelet probe or a new client makes.
    let fresh = || {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let mut seen = Vec::new();
    while sent.elapsed() < Duration::from_millis(2500) {
        let status = |r: reqwest::Result<reqwest::Response>| r.ok().map(|r| r.status().as_u16());
        let ready = status(fresh().get(format!("http://{addr}/ready")).send().await);
        let plan = status(fresh().get(format!("http://{addr}/x")).send().await);
        seen.push(Seen {
            at: sent.elapsed(),
            ready,
            plan,
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.at > Duration::from_millis(100) && s.at < Duration::from_millis(800))
        .collect();
    assert!(during.len() >= 5, "{seen:#?}");
    for s in &during {
        assert_eq!(s.ready, Some(503), "not ready at once: {seen:#?}");
        assert_eq!(s.plan, Some(200), "new requests still served: {seen:#?}");
    }
    let after: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.at > Duration::from_millis(1400))
        .collect();
    assert!(!after.is_empty());
    for s in &after {
        assert_eq!(
            (s.ready, s.plan),
            (None, None),
            "stopped accepting: {seen:#?}"
        );
    }
    let status = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status);
    assert_ne!(
        status.ok(),
        Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32),
        "gRPC health is not SERVING while draining"
    );
    let (status, r) = in_flight.await.unwrap();
    assert_eq!(status, 200, "the request in flight finished: {r:#?}");
    assert_eq!(r.service, "draining");
    let what = "did not exit within the drain delay and the grace period";
    exits_ok(&mut child, sent, Duration::from_secs(7), what).await;
}

/// Ctrl-C is a person at a terminal: no drain delay.
#[tokio::test]
async fn ctrl_c_stops_at_once() {
    let (mut child, _addr) = serve("--listen", &["--drain-delay", "30s"], &[], Stdio::null()).await;
    interrupt_stops_at_once(&mut child).await;
}

#[tokio::test]
async fn identity_from_flags_and_downward_api() {
    let envs = [
        ("SERVICEMOCK_NAME", "reviews"),
        ("SERVICEMOCK_VERSION", "v2"),
        ("POD_NAME", "reviews-v2-7d9f"),
        ("POD_NAMESPACE", "mock-1"),
        ("POD_IP", "10.1.2.3"),
        ("SERVICEMOCK_DELAY", "5ms"),
    ];
    let (_child, addr) = serve("-listenAddress", &["--threads", "1"], &envs, Stdio::null()).await;
    let response = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-servicemock-service"], "reviews");
    assert_eq!(response.headers()["x-servicemock-version"], "v2");
    let r: Report = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (
            r.service.as_str(),
            r.version.as_str(),
            r.host.as_str(),
            r.namespace.as_str(),
            r.pod_ip.as_str()
        ),
        ("reviews", "v2", "reviews-v2-7d9f", "mock-1", "10.1.2.3")
    );
    assert_eq!(
        r.injected,
        ["delay 5ms"],
        "process default from the environment"
    );
}

#[test]
fn bad_process_directives_stop_the_start() {
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--status", "503@200%"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--status: x-mock-status: \"503@200%\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn one_json_log_line_per_request_with_ids() {
    let args = ["--name", "logged", "--log-format", "json", "--access-log"];
    let (mut child, addr) = serve("--listen", &args, &[("RUST_LOG", "info")], Stdio::piped()).await;
    let response = client()
        .get(format!("http://{addr}/some/path"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-request-id", "req-log-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    signal(&child, "TERM");
    let stderr = child.0.stderr.take().unwrap();
    let lines: Vec<serde_json::Value> = BufReader::new(stderr)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("every line is JSON"))
        .collect();
    let requests: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 1, "{lines:#?}");
    let fields = &requests[0]["fields"];
    assert_eq!(fields["request_id"], "req-log-1");
    assert_eq!(fields["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(fields["path"], "/some/path");
    assert_eq!(fields["status"], 200);
    assert!(fields["duration_ms"].is_number());
}

/// What a newcomer typing at the demo mesh is told: names whatever their
/// case, "did you mean", which port a mesh name listens on, unknown schemes
/// named, delays that need a unit, a JSON body without its content type;
/// the service named on every log line; Ctrl-C stops at once and says so.
#[tokio::test]
async fn the_demo_mesh_explains_what_went_wrong() {
    let base = free_ports(2);
    let mut child = Command::new(BIN)
        .args([
            "mesh",
            "service1",
            "service2",
            "--base-port",
            &base.to_string(),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut child = Running(child);
    let entry: SocketAddr = format!("127.0.0.1:{base}").parse().unwrap();
    wait_healthy(entry, Duration::from_secs(10)).await;

    let (status, r) = report(entry, "/@Service2/end").await;
    assert_eq!(status, 200, "mesh names match whatever their case: {r:#?}");
    let (_, r) = report(entry, "/@servce2/end").await;
    let error = r.forwards().next().unwrap().error.clone().unwrap();
    assert!(error.contains("did you mean service2?"), "{error}");
    let (_, r) = report(entry, "/@service2:8081/end").await;
    let error = r.forwards().next().unwrap().error.clone().unwrap();
    assert!(error.contains("listens on port 8080"), "{error}");
    for (path, says) in [
        ("/@ftp:a/", "unknown scheme 'ftp' (known: http, h2c, grpc"),
        (
            "/@service2[x-mock-delay=5]/",
            "has no unit: write 5s or 5ms",
        ),
    ] {
        let (status, body) = get(entry, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let (status, _) = report(entry, "/@GRPC:service2/").await;
    assert_eq!(status, 200, "schemes ignore case");
    // curl -d sends a form content type: the JSON plan is read anyway.
    let posted = client()
        .post(format!("http://{entry}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"path":"/@service2/end"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let r: Report = serde_json::from_str(&posted.text().await.unwrap()).unwrap();
    assert_eq!(r.forwards().count(), 1, "not 'calling nobody'");
    // Any other body is someone's payload: answered, counted, let go.
    let form = client()
        .post(format!("http://{entry}/"))
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let r: Report = serde_json::from_str(&form.text().await.unwrap()).unwrap();
    assert_eq!((&*r.method, r.body_bytes), ("POST", 3));

    interrupt_stops_at_once(&mut child).await;
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut printed).unwrap();
    assert!(printed.contains("mesh stopped"), "{printed}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut logs).unwrap();
    assert!(logs.contains("stopping now"), "{logs}");
    let request_lines: Vec<&str> = logs.lines().filter(|l| l.contains(" request")).collect();
    assert!(!request_lines.is_empty(), "{logs}");
    for line in &request_lines {
        assert!(
            line.contains("service=service1") || line.contains("service=service2"),
            "{line}"
        );
    }
}

/// A port already taken is said once, not twice.
#[test]
fn a_taken_port_is_reported_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["serve", "--listen", &addr]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("Address already in use").count(), 1, "{said}");
    let out = run(&[
        "mesh",
        "a",
        "--bind",
        "127.0.0.1",
        "--base-port",
        addr.rsplit(':').next().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("Address already in use").count(), 1, "{said}");
}
