//! What people look at: /metrics parsed by Prometheus' reference parser
//! (prometheus_client from PyPI) after real traffic.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn samples(python: &std::path::Path, text: &str) -> Vec<Value> {
    parse_with(python, text, &[])
}

fn parse_with(python: &std::path::Path, text: &str, args: &[&str]) -> Vec<Value> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/parse_metrics.py");
    let mut command = Command::new(python);
    command.arg(script).args(args);
    let out = with_stdin(command, text.as_bytes());
    assert!(
        out.status.success(),
        "the reference parser refused:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

#[ignore = "needs the Python virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn metrics_parse_with_the_reference_parser() {
    let python = venv_python();
    let mesh = mesh(&["a", "b"]).await;
    let a = mesh.at("a");
    for _ in 0..3 {
        assert_eq!(get(a, "/@b/end").await.0, 200);
    }
    assert_eq!(get(a, "/@grpc:b|nobody.invalid/").await.0, 502);
    assert_eq!(get(a, "/@a||b").await.0, 400);
    let injected = client()
        .get(format!("http://{a}/"))
        .header("x-mock-status", "503")
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), 503);
    let plain = client()
        .get(format!("http://{a}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = plain.text().await.unwrap();
    assert!(!text.contains("# EOF"), "no OpenMetrics marker in 0.0.4");
    assert!(
        text.contains("# TYPE servicemock_requests_total counter"),
        "{text}"
    );
    let s = samples(&python, &text);
    // A scraper that asks for OpenMetrics (as Prometheus does) gets it, and
    // the OpenMetrics reference parser reads it.
    let open = client()
        .get(format!("http://{a}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(open.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let open_text = open.text().await.unwrap();
    assert!(open_text.ends_with("# EOF\n"));
    let o = parse_with(&python, &open_text, &["openmetrics"]);
    assert!(o.iter().any(|s| s["name"] == "servicemock_requests_total"));

    assert_eq!(
        value(
            &s,
            "servicemock_requests_total",
            &[
                ("route", "plan"),
                ("status", "200"),
                ("protocol", "http/1.1")
            ]
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_requests_total",
            &[("route", "plan"), ("status", "502")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_requests_total",
            &[("route", "plan"), ("status", "400")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_hops_total",
            &[("protocol", "http"), ("outcome", "ok")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_hops_total",
            &[("protocol", "grpc"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_hops_total",
            &[("protocol", "http"), ("outcome", "dns")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_hop_duration_seconds_count",
            &[("protocol", "http")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_request_duration_seconds_count",
            &[("protocol", "http/1.1")]
        ),
        6.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_injected_faults_total",
            &[("kind", "status")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "servicemock_refused_requests_total",
            &[("reason", "bad_request")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, "servicemock_in_flight_requests", &[]),
        1.0,
        "the scrape itself is in flight"
    );

    let (_, text_b) = get(mesh.at("b"), "/metrics").await;
    let b = samples(&python, &text_b);
    assert_eq!(
        value(
            &b,
            "servicemock_requests_total",
            &[("protocol", "grpc"), ("route", "grpc"), ("status", "0")]
        ),
        1.0
    );
}
