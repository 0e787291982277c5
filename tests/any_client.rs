//! Called by any client: every method and any body is answered with the
//! report, which says the method, how many bytes of body came and their
//! SHA-256; only a JSON object with a top-level `path` or `plan` is a plan.
//! With curl (every method, -d, --data-binary @file, -F) and Python urllib.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn every_method_and_body_is_answered_with_the_report() {
    let mesh = mesh(&["service1", "service2"]).await;
    let entry = mesh.at("service1");
    let url = format!("http://{entry}/@service2/orders/7");
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let (head, body) = curl_off_runtime(vec!["-X".into(), method.into(), url.clone()]).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{method}: {head}");
        let report: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["Method"], method);
        assert_eq!(
            report["RequestInfo"][0],
            format!("{method} /@service2/orders/7 HTTP/1.1")
        );
        let hop = &report["ParallelForwards"][0]["SequentialForwards"][0];
        assert_eq!(hop["Result"], "ok", "{method}: the cascade ran");
    }
    // HEAD: the headers only.
    let (head, body) = curl_off_runtime(vec!["-I".into(), url.clone()]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("x-servicemock-service: service1"), "{head}");
    // curl -I prints the headers on stdout too: no report follows them.
    assert!(!body.contains("ReceivedDate"), "{body}");
    // A form (curl -d), its bytes counted and digested.
    let (_, body) = curl_off_runtime(vec!["-d".into(), "a=1".into(), url.clone()]).await;
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["Method"], "POST");
    assert_eq!(report["BodyBytes"], 3);
    assert_eq!(report["BodySha256"], sha256_hex(b"a=1"));
    // A file of bytes that is not UTF-8, and a multipart form.
    let file = std::env::temp_dir().join(format!("servicemock-body-{}", std::process::id()));
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(&file, &payload).unwrap();
    let (_, body) = curl_off_runtime(vec![
        "--data-binary".into(),
        format!("@{}", file.display()),
        "-X".into(),
        "PUT".into(),
        url.clone(),
    ])
    .await;
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["BodyBytes"], 70_000);
    assert_eq!(report["BodySha256"], sha256_hex(&payload));
    let (_, body) = curl_off_runtime(vec![
        "-F".into(),
        format!("upload=@{}", file.display()),
        url.clone(),
    ])
    .await;
    let report: Value = serde_json::from_str(&body).unwrap();
    assert!(report["BodyBytes"].as_u64().unwrap() > 70_000, "{report}");
    std::fs::remove_file(&file).unwrap();
    // Someone's JSON is a body; a JSON object with `path` is a plan.
    let (_, body) = curl_off_runtime(vec![
        "-H".into(),
        "content-type: application/json".into(),
        "-d".into(),
        r#"{"order": 7}"#.into(),
        format!("http://{entry}/"),
    ])
    .await;
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["BodyBytes"], 12);
    assert_eq!(report["ParallelForwards"].as_array().unwrap().len(), 0);
    let (_, body) = curl_off_runtime(vec![
        "-d".into(),
        r#"{"path": "/@service2/end"}"#.into(),
        format!("http://{entry}/"),
    ])
    .await;
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        report["ParallelForwards"].as_array().unwrap().len(),
        1,
        "{report}"
    );
}

/// SHA-256 in hex, computed by a tool nobody here wrote (sha256sum).
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn a_body_past_max_body_is_413_naming_the_limit() {
    let mut settings = servicemock::config::Settings::default();
    settings.limits.max_body = 1000;
    let mesh = mesh_with(&["service1"], settings).await;
    let entry = mesh.at("service1");
    let (head, body) = curl_off_runtime(vec![
        "-d".into(),
        "x".repeat(1001),
        format!("http://{entry}/"),
    ])
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(body.contains("1000 bytes (--max-body)"), "{body}");
    let (head, _) = curl_off_runtime(vec![
        "-d".into(),
        "x".repeat(1000),
        format!("http://{entry}/"),
    ])
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[ignore = "needs the Python virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn python_urllib_posts_a_payload() {
    let mesh = mesh(&["service1"]).await;
    let entry = mesh.at("service1");
    let script = r#"
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1], data=b'{"name": "servicemock"}', method="PATCH",
                                 headers={"content-type": "application/json"})
print(urllib.request.urlopen(request, timeout=10).read().decode())
"#;
    let python = venv_python();
    let url = format!("http://{entry}/items/1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", script, &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["Method"], "PATCH");
    assert_eq!(report["BodyBytes"], 23);
    assert_eq!(report["RequestInfo"][0], "PATCH /items/1 HTTP/1.1");
}

/// `curl --http2` on a plaintext URL asks for `Upgrade: h2c`, which no
/// protocol here takes: the request is served as the HTTP/1.1 request it
/// also is, with its report, never a `101` or a hung connection.
#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn an_upgrade_no_protocol_asks_for_is_served_as_a_plain_request() {
    let mesh = mesh(&["service1", "service2"]).await;
    let url = format!("http://{}/@service2/end", mesh.at("service1"));
    let (head, body) = curl_off_runtime(vec!["--http2".into(), url]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("101"), "{head}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["Service"], "service1");
    assert_eq!(report["Protocol"], "http/1.1");
    let info = report["RequestInfo"].to_string().to_ascii_lowercase();
    assert!(
        info.contains("upgrade: h2c"),
        "curl asked to upgrade: {info}"
    );
    assert_eq!(
        report["ParallelForwards"][0]["SequentialForwards"][0]["Result"],
        "ok"
    );
}
