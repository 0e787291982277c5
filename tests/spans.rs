//! Spans, as a receiver nobody here wrote sees them: OpenTelemetry's own
//! generated OTLP service and messages (PyPI's `opentelemetry-proto`),
//! served with grpcio or decoded behind Python's HTTP server, on loopback.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;
use servicemock::config::Settings;
use servicemock::mesh::{Mesh, MeshOptions};
use servicemock::spans::SpanSettings;

/// `tests/python/otlp_receiver.py` on a loopback port, killed when
/// dropped, and the file it writes the spans to.
struct Receiver {
    server: PythonServer,
    out: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.out);
    }
}

fn receiver(protocol: &str) -> Receiver {
    let out = std::env::temp_dir().join(format!(
        "servicemock-spans-{}-{protocol}-{}.jsonl",
        std::process::id(),
        free_port()
    ));
    let server = python_server("otlp_receiver.py", &[protocol.as_ref(), out.as_os_str()]);
    Receiver { server, out }
}

impl Receiver {
    /// The spans of `trace_id` received so far.
    fn spans_of(&self, trace_id: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|span| span["trace_id"] == trace_id)
            .collect()
    }

    /// Waits (at most 10 s) until `count` spans of `trace_id` arrived.
    async fn wait_for(&self, trace_id: &str, count: usize) -> Vec<Value> {
        let what = format!("{count} spans of {trace_id} arrive");
        eventually(&what, Duration::from_secs(10), || async {
            let spans = self.spans_of(trace_id);
            if spans.len() >= count {
                Ok(spans)
            } else {
                Err(format!("{} arrived: {spans:#?}", spans.len()))
            }
        })
        .await
    }
}

/// Span settings as the environment would give them, exporting soon.
fn settings(endpoint: String, protocol: &str) -> SpanSettings {
    let vars: HashMap<&str, &str> = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
    ]
    .into();
    SpanSettings::from_lookup(Some(&endpoint), |name| {
        vars.get(name).map(|v| v.to_string())
    })
    .unwrap()
    .expect("an endpoint turns spans on")
}

async fn traced_mesh(names: &[&str], spans: SpanSettings) -> Mesh {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let options = MeshOptions {
        spans: Some(spans),
        trace_url: Some("http://jaeger.example/trace/{trace_id}".into()),
        ..options(Settings::default())
    };
    Mesh::start(&names, options).await.expect("mesh starts")
}

/// The span whose `parent_span_id` is `parent`, the only one.
fn child_of<'a>(spans: &'a [Value], parent: &str) -> &'a Value {
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == parent)
        .collect();
    assert_eq!(children.len(), 1, "children of {parent}: {children:#?}");
    children[0]
}

/// The spans from `root`'s child down, one per level, as a list.
fn chain<'a>(spans: &'a [Value], root: &str) -> Vec<&'a Value> {
    let mut chain = Vec::new();
    let mut parent = root.to_owned();
    while spans.iter().any(|s| s["parent_span_id"] == parent.as_str()) {
        let span = child_of(spans, &parent);
        parent = span["span_id"].as_str().unwrap().to_owned();
        chain.push(span);
    }
    chain
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

#[ignore = "needs the test virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn a_mixed_cascade_is_one_trace_in_an_otlp_grpc_receiver() {
    let receiver = receiver("grpc");
    let mesh = traced_mesh(
        &["a", "b", "c", "d"],
        settings(format!("http://{}", receiver.server.addr), "grpc"),
    )
    .await;
    let a = mesh.at("a");
    let response = client()
        .get(format!(
            "http://{a}/@b/@h2c:c[x-mock-delay=30ms]/@grpc:d/end"
        ))
        .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
        .header("tracestate", "vendor=kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let spans = receiver.wait_for(TRACE, 7).await;
    assert_eq!(spans.len(), 7, "{spans:#?}");

    // server/client/server/client/server/client/server, each the child of
    // the one before, the first the child of the caller's span.
    let levels = chain(&spans, CALLER);
    let shape: Vec<(&str, &str, &str)> = levels
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap(),
                s["kind"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("a", "SPAN_KIND_SERVER", "servicemock GET /{plan}"),
            ("a", "SPAN_KIND_CLIENT", "http b"),
            ("b", "SPAN_KIND_SERVER", "servicemock GET /{plan}"),
            ("b", "SPAN_KIND_CLIENT", "h2c c"),
            ("c", "SPAN_KIND_SERVER", "servicemock GET /{plan}"),
            ("c", "SPAN_KIND_CLIENT", "grpc d"),
            (
                "d",
                "SPAN_KIND_SERVER",
                "servicemock servicemock.v1.MockService/Call"
            ),
        ]
    );
    let [a_server, a_hop, b_server, b_hop, c_server, c_hop, d_server] = levels[..] else {
        unreachable!()
    };

    // Semantic-convention attributes, servicemock's own beside them.
    let attrs = |span: &Value| span["attributes"].clone();
    let a_attrs = attrs(a_server);
    assert_eq!(a_attrs["http.request.method"], "GET");
    assert_eq!(a_attrs["http.response.status_code"], 200);
    assert_eq!(a_attrs["http.route"], "/{plan}");
    assert_eq!(
        a_attrs["url.path"],
        "/@b/@h2c:c[x-mock-delay=30ms]/@grpc:d/end"
    );
    assert_eq!(a_attrs["network.protocol.name"], "http");
    assert_eq!(a_attrs["servicemock.result"], "ok");
    let a_hop_attrs = attrs(a_hop);
    assert_eq!(a_hop_attrs["server.address"], "b");
    assert_eq!(a_hop_attrs["http.request.method"], "GET");
    assert_eq!(a_hop_attrs["http.response.status_code"], 200);
    assert_eq!(a_hop_attrs["servicemock.attempt"], 1);
    assert_eq!(a_hop_attrs["servicemock.result"], "ok");
    // The hop as the plan names it (the mesh resolves b to loopback).
    assert_eq!(a_hop_attrs["server.port"], 8080);
    assert_eq!(
        a_hop_attrs["url.full"],
        "http://b:8080/@h2c:c[x-mock-delay=30ms]/@grpc:d/end"
    );
    assert_eq!(a_hop_attrs["servicemock.answered_by"], "servicemock");
    let b_hop_attrs = attrs(b_hop);
    assert_eq!(b_hop_attrs["network.protocol.version"], "2");
    assert_eq!(b_hop_attrs["servicemock.injected"], "x-mock-delay=30ms");
    assert_eq!(attrs(b_server)["http.response.status_code"], 200);
    // The delay c was asked for is an event of c's span, with its length.
    let c_events = c_server["events"].as_array().unwrap();
    assert_eq!(c_events.len(), 1, "{c_server}");
    assert_eq!(c_events[0]["name"], "servicemock.delay");
    assert_eq!(c_events[0]["attributes"]["servicemock.delay.ms"], 30.0);
    assert!(
        c_server["end"].as_u64().unwrap() - c_server["start"].as_u64().unwrap() >= 30_000_000,
        "{c_server}"
    );
    let c_hop_attrs = attrs(c_hop);
    assert_eq!(c_hop_attrs["rpc.system"], "grpc");
    assert_eq!(c_hop_attrs["rpc.method"], "Call");
    assert_eq!(c_hop_attrs["rpc.grpc.status_code"], 0);
    let d_attrs = attrs(d_server);
    assert_eq!(d_attrs["rpc.system"], "grpc");
    assert_eq!(d_attrs["rpc.service"], "servicemock.v1.MockService");
    assert_eq!(d_attrs["rpc.grpc.status_code"], 0);
    for span in &levels {
        assert_eq!(span["status"]["code"], "STATUS_CODE_UNSET", "{span}");
        assert_eq!(span["scope"], "servicemock");
    }
    // Each member is its own service, with what servicemock knows of it.
    assert_eq!(d_server["resource"]["service.version"], "v1");

    // Every level of the report names its trace and its own SERVER span.
    let mut level = &report;
    for server in [a_server, b_server, c_server, d_server] {
        assert_eq!(level["TraceId"], TRACE, "{level}");
        assert_eq!(level["SpanId"], server["span_id"], "{level}");
        assert_eq!(
            level["TraceUrl"],
            format!("http://jaeger.example/trace/{TRACE}")
        );
        level = &level["ParallelForwards"][0]["SequentialForwards"][0]["Response"];
    }
}

#[ignore = "needs the test virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn b3_headers_carry_the_trace_to_an_otlp_http_receiver() {
    let receiver = receiver("http");
    let mesh = traced_mesh(
        &["a", "b", "c"],
        settings(format!("http://{}", receiver.server.addr), "http/protobuf"),
    )
    .await;
    let a = mesh.at("a");
    // B3 only, as Zipkin-instrumented callers send it: the hops carry B3
    // on, rewritten, so each server's span is its caller hop's child.
    let trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let response = client()
        .get(format!(
            "http://{a}/@b/@grpc:c[x-mock-grpc-status=UNAVAILABLE]/end"
        ))
        .header("b3", format!("{trace}-e457b5a2e4d86bd1-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let report: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let spans = receiver.wait_for(trace, 5).await;
    let levels = chain(&spans, "e457b5a2e4d86bd1");
    let shape: Vec<(&str, &str)> = levels
        .iter()
        .map(|s| (s["service"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shape,
        [
            ("a", "SPAN_KIND_SERVER"),
            ("a", "SPAN_KIND_CLIENT"),
            ("b", "SPAN_KIND_SERVER"),
            ("b", "SPAN_KIND_CLIENT"),
            ("c", "SPAN_KIND_SERVER"),
        ],
        "{spans:#?}"
    );
    // The injected failure is an error on c's span and on b's hop, with
    // the hop's Error as the description.
    let (c_server, b_hop) = (levels[4], levels[3]);
    assert_eq!(c_server["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(c_server["attributes"]["rpc.grpc.status_code"], 14);
    assert_eq!(
        c_server["attributes"]["servicemock.injected"],
        "grpc-status UNAVAILABLE"
    );
    assert_eq!(
        b_hop["attributes"]["servicemock.injected"],
        "x-mock-grpc-status=UNAVAILABLE"
    );
    assert_eq!(b_hop["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(b_hop["attributes"]["error.type"], "status");
    let b_report = &report["ParallelForwards"][0]["SequentialForwards"][0]["Response"];
    let hop_error = b_report["ParallelForwards"][0]["SequentialForwards"][0]["Error"]
        .as_str()
        .unwrap();
    assert_eq!(b_hop["status"]["message"], hop_error);
    assert_eq!(levels[0]["attributes"]["http.response.status_code"], 502);
    assert_eq!(levels[0]["attributes"]["error.type"], "hops-failed");
}

#[tokio::test]
async fn a_collector_that_is_down_costs_requests_nothing_and_is_counted() {
    let nobody = closed_port().await;
    let mesh = traced_mesh(&["a", "b"], settings(format!("http://{nobody}"), "grpc")).await;
    let a = mesh.at("a");
    for _ in 0..50 {
        let (status, _) = get(a, "/@b/end").await;
        assert_eq!(status, 200);
    }
    let metrics = eventually(
        "100 spans counted as dropped",
        Duration::from_secs(10),
        || async {
            let (_, metrics) = get(a, "/metrics").await;
            let failed = metrics
                .lines()
                .find_map(|l| {
                    l.strip_prefix("servicemock_spans_dropped_total{reason=\"export_failed\"} ")
                })
                .map(|n| n.parse::<u64>().unwrap())
                .unwrap_or_else(|| panic!("no dropped spans counter in\n{metrics}"));
            if failed >= 100 {
                Ok(metrics)
            } else {
                Err(format!("{failed} dropped:\n{metrics}"))
            }
        },
    )
    .await;
    assert!(
        metrics.contains("servicemock_spans_exported_total 0\n"),
        "{metrics}"
    );
}

#[ignore = "needs the test virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn serve_reads_the_standard_otel_variables() {
    let receiver = receiver("http");
    let (_running, addr) = serve_process(
        &["--name", "front"],
        &[
            // The base endpoint: the http/protobuf default appends /v1/traces.
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", receiver.server.addr),
            ),
            ("OTEL_SERVICE_NAME", "orders".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=ci,team=mesh".into(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
            ("POD_NAMESPACE", "mock-1".into()),
            ("POD_NAME", "front-7d9f-x2".into()),
        ],
    )
    .await;
    // No trace arrived: the request starts one, and the report names it.
    let (status, body) = get(addr, "/end").await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&body).unwrap();
    let trace = report["TraceId"].as_str().unwrap();
    assert_eq!(trace.len(), 32, "{report}");
    let spans = receiver.wait_for(trace, 1).await;
    let span = &spans[0];
    assert_eq!(span["parent_span_id"], "", "{span}");
    assert_eq!(span["span_id"], report["SpanId"]);
    assert_eq!(span["kind"], "SPAN_KIND_SERVER");
    let resource = &span["resource"];
    assert_eq!(resource["service.name"], "orders", "{resource}");
    assert_eq!(resource["deployment.environment.name"], "ci");
    assert_eq!(resource["team"], "mesh");
    assert_eq!(resource["k8s.namespace.name"], "mock-1");
    assert_eq!(resource["k8s.pod.name"], "front-7d9f-x2");
    assert_eq!(resource["service.version"], "v1");
}

#[test]
fn a_variable_that_cannot_be_used_stops_serve_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_servicemock"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\""),
        "{said}"
    );
}
