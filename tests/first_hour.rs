//! The first hour's mistakes get a message that says what to do, through
//! the real binary (issue "The first hour, again": items 4, 5, 6, 7, 8, 9,
//! 10, 11, 12, 13, 14, 15, 16, 17; items 1–3 are in tests/readme.rs and the
//! metrics unit test, 18 in scripts/test).

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::run_to_end as run;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");

#[tokio::test]
async fn an_unknown_view_is_a_400_listing_the_views() {
    let mesh = mesh(&["service1"]).await;
    let entry = mesh.at("service1");
    let (status, body) = get(entry, "/@service1/end?view=tre").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown view \"tre\""), "{body}");
    assert!(body.contains("view=json, view=tree or view=flat"), "{body}");
    let (status, _) = get(entry, "/end?view=flat&x=1").await;
    assert_eq!(status, 200);
}

#[test]
fn mesh_names_that_clash_or_are_no_names_are_refused() {
    let port = free_port().to_string();
    let (code, said) = run(&["mesh", "--base-port", &port, "a", "A"]);
    assert_ne!(code, Some(0));
    assert!(said.contains("\"A\" given twice"), "{said}");
    let (code, said) = run(&["mesh", "--base-port", &port, "bad name"]);
    assert_ne!(code, Some(0));
    assert!(
        said.contains("\"bad name\" is not a service name"),
        "{said}"
    );
}

#[tokio::test]
async fn rates_take_a_percentage_with_or_without_its_sign() {
    for (flag, value) in [
        ("--error-rate", "10%"),
        ("--error-rate", "10"),
        ("--reset-rate", "20"),
        ("--reset-rate", "20%"),
    ] {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["serve", "--listen", &listen, flag, value])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _running = Running(child);
        let addr: SocketAddr = listen.parse().unwrap();
        wait_healthy(addr, Duration::from_secs(10)).await;
    }
    let (code, said) = tokio::task::spawn_blocking(|| run(&["serve", "--error-rate", "ten"]))
        .await
        .unwrap();
    assert_ne!(code, Some(0));
    assert!(said.contains("write e.g. 10 or 10%"), "{said}");
}

#[tokio::test]
async fn listen_takes_a_bare_port_and_says_what_to_write() {
    for written in [":{port}", "{port}"] {
        let port = free_port();
        let listen = written.replace("{port}", &port.to_string());
        let child = Command::new(BIN)
            .args(["serve", "--listen", &listen])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _running = Running(child);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_healthy(addr, Duration::from_secs(10)).await;
    }
    let (code, said) = tokio::task::spawn_blocking(|| run(&["serve", "--listen", "localhost"]))
        .await
        .unwrap();
    assert_ne!(code, Some(0));
    assert!(
        said.contains("write HOST:PORT (e.g. 0.0.0.0:8080), :PORT or PORT"),
        "{said}"
    );
    // A taken port: which, and that another process holds it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let (code, said) = tokio::task::spawn_blocking(move || run(&["serve", "--listen", &listen]))
        .await
        .unwrap();
    assert_ne!(code, Some(0));
    assert!(said.contains("another process holds that port"), "{said}");
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let names: Vec<String> = (0..300).map(|i| format!("service{i}")).collect();
    let mut child = Command::new(BIN)
        .arg("manifests")
        .args(&names)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone (as `| head -1` goes).
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with("# servicemock"), "{first}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(out.status.code(), Some(0), "{said}");
}

/// Item 7: a misspelled directive header is a 400 naming the known ones,
/// over HTTP and gRPC, as the same typo in a path is.
#[tokio::test]
async fn a_misspelled_directive_header_is_refused() {
    let mesh = mesh(&["a"]).await;
    let entry = mesh.at("a");
    let response = client()
        .get(format!("http://{entry}/"))
        .header("x-mock-stauts", "503")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("\"x-mock-stauts\": unknown directive (known: x-mock-delay, x-mock-status,"),
        "{body}"
    );
    let mut grpc = grpc_client(entry).await;
    let mut request = tonic::Request::new(path_request("/"));
    request
        .metadata_mut()
        .insert("x-mock-stauts", "503".parse().unwrap());
    let status = grpc.call(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("unknown directive"),
        "{}",
        status.message()
    );
}

/// Item 8: a load run that nobody answered says so and exits non-zero;
/// gRPC codes may be written as numbers in `--expect status=`.
#[tokio::test]
async fn load_says_when_nothing_answered_and_takes_grpc_codes_by_number() {
    let closed = closed_port().await.to_string();
    let out = tokio::process::Command::new(BIN)
        .args(["load", &closed, "/", "-n", "20"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no call was answered: 20 refused (of 20 calls)"),
        "{said}"
    );
    let mesh = mesh(&["a"]).await;
    let entry = mesh.at("a").to_string();
    let out = tokio::process::Command::new(BIN)
        .args(["load", "--protocol", "grpc", &entry, "/", "-n", "20"])
        .args(["--expect", "status=0:100"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Item 13: a service that answers 503 is "not healthy", not "cannot reach".
#[tokio::test]
async fn health_tells_unhealthy_from_unreachable() {
    let mesh = common::haproxy::replica("a", "v1").await;
    let entry = mesh.at("a");
    let changed = client()
        .put(format!("http://{entry}/control"))
        .header("content-type", "application/json")
        .body(r#"{"live": false}"#)
        .send()
        .await
        .unwrap();
    assert!(
        changed.status().is_success(),
        "{}",
        changed.text().await.unwrap()
    );
    let out = tokio::process::Command::new(BIN)
        .args(["health", &entry.to_string()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("{entry} is not healthy: 503")),
        "{said}"
    );
}

/// Item 17: `manifests --control` says in its output that /control is open.
#[test]
fn manifests_with_control_warn_in_a_comment() {
    let out = Command::new(BIN)
        .args(["manifests", "a", "--control"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# --control: anyone who reaches a pod's port can change its behaviour"),
        "{text}"
    );
}

/// Item 12: an unknown scheme before an address is named as one, a
/// mistake in a later @-command says which, a plan with both forms says
/// to give one.
#[tokio::test]
async fn path_mistakes_name_the_scheme_the_command_and_the_form() {
    let mesh = mesh(&["a"]).await;
    let entry = mesh.at("a");
    let (status, body) = get(entry, "/@ftp:127.0.0.1:80/").await;
    assert_eq!(status, 400);
    assert!(body.starts_with("unknown scheme 'ftp'"), "{body}");
    let (_, body) = get(entry, "/@a/@").await;
    assert!(body.contains("(@-command 2 of 2 in the path)"), "{body}");
    let both = client()
        .post(format!("http://{entry}/"))
        .header("content-type", "application/json")
        .body(r#"{"path": "/", "plan": {}}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(both.contains("give one of `path`"), "{both}");
}

/// Item 14: `control` takes a directive by any of its spellings, and a bad
/// value's error names the directive once.
#[tokio::test]
async fn control_takes_every_spelling_and_says_a_mistake_once() {
    let mesh = common::haproxy::replica("a", "v1").await;
    let entry = mesh.at("a").to_string();
    for spelling in ["grpcStatus", "grpc-status", "x-mock-grpc-status"] {
        let out = tokio::process::Command::new(BIN)
            .args(["control", &entry, &format!("{spelling}=UNAVAILABLE")])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{spelling}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tokio::process::Command::new(BIN)
        .args(["control", &entry, "status=700"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("x-mock-status").count(), 1, "{said}");
    assert!(!said.contains("status: x-mock-status"), "{said}");
}

/// Item 5 (help): every command's --help fits 100 columns.
#[test]
fn help_fits_a_hundred_columns() {
    for command in [
        "serve",
        "mesh",
        "plan",
        "call",
        "load",
        "manifests",
        "control",
        "certs",
        "health",
    ] {
        let out = Command::new(BIN)
            .args([command, "--help"])
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}");
        let text = String::from_utf8_lossy(&out.stdout);
        let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(
            widest <= 100,
            "{command} --help is {widest} columns wide:\n{text}"
        );
    }
}

/// Item 13 (call): `call -H` sends a header, directives too, over HTTP and
/// gRPC; a bad header is refused before anything is sent.
#[tokio::test]
async fn call_takes_headers() {
    let mesh = mesh(&["a"]).await;
    let entry = mesh.at("a").to_string();
    for protocol in ["http", "grpc"] {
        let out = tokio::process::Command::new(BIN)
            .args(["call", "--protocol", protocol, &entry, "/"])
            .args(["-H", "end-user: jason", "-H", "x-mock-status: 503"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{protocol}: the 503 is a failure"
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let info = report["RequestInfo"].to_string();
        assert!(info.contains("end-user: jason"), "{protocol}: {info}");
        assert_eq!(report["Injected"][0], "status 503", "{protocol}");
    }
    let out = tokio::process::Command::new(BIN)
        .args(["call", &entry, "/", "-H", "content-length: 1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be set on a hop"));
}

/// Item 13 (call): `call --plan FILE` sends a CallRequest as `load --plan`
/// does, over HTTP and gRPC; a bad plan file exits 2 naming the file and the
/// field; `--help` says what the exit statuses mean.
#[tokio::test]
async fn call_takes_a_plan_and_says_its_exit_statuses() {
    let mesh = mesh(&["a", "b"]).await;
    let entry = mesh.at("a").to_string();
    let dir = std::env::temp_dir().join(format!("servicemock-call-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("plan.json");
    let printed = Command::new(BIN)
        .args(["plan", "/@b,b[x-mock-status=503]/end"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    std::fs::write(&plan, &printed.stdout).unwrap();
    let plan = plan.to_str().unwrap();
    for protocol in ["http", "grpc", "h2c"] {
        let out = tokio::process::Command::new(BIN)
            .args([
                "call",
                "--protocol",
                protocol,
                &entry,
                "--plan",
                plan,
                "--flat",
            ])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{protocol}: a hop answered 503");
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let results: Vec<&str> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Result"].as_str().unwrap())
            .collect();
        assert_eq!(results, ["entry", "ok", "status"], "{protocol}: {rows:#}");
    }
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"plan": {"parallel": [{"sequentail": []}]}}"#).unwrap();
    let (code, err) = run(&["call", &entry, "--plan", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bad.json") && err.contains("sequentail"),
        "{err}"
    );
    let (code, err) = run(&["call", &entry, "/x", "--plan", plan]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    let help = Command::new(BIN).args(["call", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).replace('\n', " ");
    assert!(
        help.contains("Exit status: 0 the call and every hop below it succeeded; 1"),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 16: `--version` prints the program's version in every command; the
/// version a service reports is `--service-version`.
#[test]
fn version_is_the_programs_everywhere() {
    for command in ["serve", "mesh", "manifests", "load"] {
        let out = Command::new(BIN)
            .args([command, "--version"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("servicemock"), "{command}: {text}");
        assert!(
            text.contains(env!("CARGO_PKG_VERSION")),
            "{command}: {text}"
        );
    }
    let out = Command::new(BIN)
        .args(["manifests", "a", "--service-version", "v2"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("version: v2"));
}
