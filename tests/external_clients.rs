//! Clients nobody here wrote, against one port: curl over HTTP/1.1 and over
//! HTTP/2 prior knowledge, and a Python grpcio client that knows the service
//! only through reflection.

mod common;

use common::*;
use servicemock::report::Report;

/// curl (the shared helper) with its answer read as a report.
fn curl_report(args: &[&str]) -> (String, Report) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (headers, body) = curl(&args);
    let report = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (headers, report)
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn curl_http1_and_h2c_share_the_grpc_port() {
    tool("curl");
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let url = format!(
        "http://{}/@service2/@grpc:service3/end",
        mesh.at("service1")
    );
    let (headers, r) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || curl_report(&["--http1.1", &url])
    })
    .await
    .unwrap();
    assert!(headers.starts_with("HTTP/1.1 200"), "{headers}");
    assert_eq!(r.protocol, "http/1.1");
    let (headers, r) =
        tokio::task::spawn_blocking(move || curl_report(&["--http2-prior-knowledge", &url]))
            .await
            .unwrap();
    assert!(headers.starts_with("HTTP/2 200"), "{headers}");
    assert!(
        headers.contains("x-servicemock-service: service1"),
        "{headers}"
    );
    assert_eq!(r.protocol, "h2c");
    let leaf = r.forwards().next().unwrap().response.as_deref().unwrap();
    assert_eq!(leaf.forwards().next().unwrap().protocol, "grpc");
}

#[ignore = "needs the Python virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn python_grpcio_client_by_reflection_only() {
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let closed = closed_port().await;
    let addr = mesh.at("service1").to_string();
    let args = vec![addr, closed.port().to_string()];
    let seen = python_json("reflection_client.py", args).await;
    assert_eq!(seen["health"], "SERVING");
    assert_eq!(seen["failed_hop"], "refused");
}
