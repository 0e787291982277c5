//! A plan survives any relay unchanged: for generated plans, a real
//! servicemock receives a plan (as a JSON POST or a gRPC Call) whose one hop
//! goes to a recording sink over HTTP/1.1, h2c or gRPC, and what the sink
//! received decodes back to exactly the sub-plan it was sent. And every
//! value is refused the same way in every form.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use servicemock::pb;
use servicemock::plan::json::{plan_from_json, request_json};
use servicemock::plan::path::parse_path;
use servicemock::plan::proto::{plan_from_request, request_for};
use servicemock::plan::{Hop, Limits, Plan, Protocol, Sequence, Target};

/// What a sink received: the request target and body (HTTP), or the call.
#[derive(Debug, Clone)]
enum Received {
    Http {
        target: String,
        json: bool,
        body: Bytes,
    },
    Grpc(pb::CallRequest),
}

type Log = Arc<Mutex<Vec<Received>>>;

async fn record_http(State(log): State<Log>, request: Request) -> &'static str {
    let target = request.uri().path_and_query().unwrap().to_string();
    let json = request
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    log.lock()
        .unwrap()
        .push(Received::Http { target, json, body });
    "{}"
}

struct GrpcSink(Log);

#[tonic::async_trait]
impl pb::mock_service_server::MockService for GrpcSink {
    async fn call(
        &self,
        request: tonic::Request<pb::CallRequest>,
    ) -> Result<tonic::Response<pb::CallResponse>, tonic::Status> {
        self.0
            .lock()
            .unwrap()
            .push(Received::Grpc(request.into_inner()));
        Ok(tonic::Response::new(Default::default()))
    }

    unary_only!();
}

async fn sinks(log: Log) -> (SocketAddr, SocketAddr) {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(record_http)
        .with_state(log.clone());
    tokio::spawn(async move { axum::serve(http, app).await });
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::mock_service_server::MockServiceServer::new(GrpcSink(
                log,
            )))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
    );
    (http_addr, grpc_addr)
}

fn decode(received: &Received) -> Plan {
    let limits = Limits::default();
    match received {
        Received::Http {
            target,
            json: false,
            ..
        } => parse_path(target, &limits).unwrap(),
        Received::Http { body, .. } => plan_from_json(body, &limits).unwrap(),
        Received::Grpc(request) => plan_from_request(request, &limits).unwrap(),
    }
}

fn arb_target() -> impl Strategy<Value = Target> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,6}",
        Just("h2c".to_string()),
        Just("grpc".to_string()),
        Just("::1".to_string()),
        Just("10.1.2.3".to_string()),
    ];
    (host, proptest::option::of(1u16..)).prop_map(|(h, p)| Target::new(h, p))
}

fn arb_protocol() -> impl Strategy<Value = Protocol> {
    proptest::sample::select(Protocol::ALL.to_vec())
}

/// The protocols the plaintext sinks of the relay test speak (the TLS
/// ones relay the same encodings over TLS: tests/tls.rs runs a mixed tree).
fn arb_plaintext_protocol() -> impl Strategy<Value = Protocol> {
    proptest::sample::select(vec![Protocol::Http, Protocol::H2c, Protocol::Grpc])
}

fn pair_strategy() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[a-z ]{0,6}".prop_map(|v| ("end-user".to_owned(), v)),
        prop_oneof![Just("1ms"), Just("1ms..2ms"), Just("5ms@50%")]
            .prop_map(|v| ("x-mock-delay".to_owned(), v.to_owned())),
        prop_oneof![Just("503"), Just("503:20,404:10")]
            .prop_map(|v| ("x-mock-status".to_owned(), v.to_owned())),
        "[!-\\\\^-~]{0,8}".prop_map(|v| ("x-custom".to_owned(), v)),
    ]
}

fn arb_uri() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        Just("/end".to_string()),
        Just("/a/b?q=1&r=%20".to_string()),
        Just("/calls/@later".to_string()),
    ]
}

/// Plans of up to three levels, where hops may go on to different
/// subtrees, leaves may carry their own remainder, and levels their own uri.
fn arb_plan() -> impl Strategy<Value = Plan> {
    let leaf = arb_uri().prop_map(Plan::leaf);
    leaf.prop_recursive(3, 16, 3, |inner| {
        let hop = (
            arb_target(),
            arb_protocol(),
            pair_list(),
            arb_options(),
            inner,
        )
            .prop_map(|(target, protocol, headers, options, next)| {
                let hop = Hop {
                    target,
                    protocol,
                    headers,
                    options: Default::default(),
                    next: Arc::new(next),
                };
                let mut hop = fitting(hop, &options);
                // A tcp hop carries its sub-plan as a path: one that no
                // path can say goes over HTTP (as JSON) instead.
                if hop.check_options().is_err() {
                    hop.protocol = Protocol::Http;
                    hop.options = Default::default();
                }
                hop
            });
        let groups = proptest::collection::vec(proptest::collection::vec(hop, 1..3), 1..3);
        (groups, arb_uri()).prop_map(|(groups, uri)| {
            Plan::new(
                groups.into_iter().map(|hops| Sequence { hops }).collect(),
                uri,
            )
        })
    })
}

/// Hop options as written in a path: each of them, on any protocol (those
/// that do not fit the hop are dropped by [`fitting`]).
fn arb_options() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    let option = prop_oneof![
        prop_oneof![Just("POST"), Just("HEAD"), Just("PATCH")].prop_map(|v| ("method", v)),
        prop_oneof![Just("10"), Just("1KiB")].prop_map(|v| ("body", v)),
        Just(("path", "/reviews/0")),
        prop_oneof![Just("3s"), Just("250ms"), Just("1500us")].prop_map(|v| ("timeout", v)),
        Just(("connect", "1s")),
        prop_oneof![Just("1"), Just("3")].prop_map(|v| ("retries", v)),
        Just(("retry-on", "5xx,timeout")),
        Just(("backoff", "10ms")),
        Just(("expect", "any")),
        Just(("sni", "other.example")),
        Just(("insecure", "true")),
    ];
    proptest::collection::vec(option, 0..4)
}

/// The hop with those of `options` that fit it, each checked as a path
/// would check it.
fn fitting(mut hop: Hop, options: &[(&str, &str)]) -> Hop {
    for (name, value) in options {
        let mut more = hop.options.clone();
        if more.set(name, value, &Limits::default()).is_err() {
            continue;
        }
        if *name == "retry-on" || *name == "backoff" {
            more.retries = more.retries.max(1);
        }
        let before = std::mem::replace(&mut hop.options, more);
        if hop.check_options().is_err() {
            hop.options = before;
        }
    }
    hop
}

fn pair_list() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::vec(pair_strategy(), 0..3).prop_map(|p| p.into_iter().collect())
}

#[test]
fn plans_survive_a_real_relay_of_each_protocol() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log: Log = Arc::default();
    let (mesh, http_sink, grpc_sink) = runtime.block_on(async {
        let (h, g) = sinks(log.clone()).await;
        (mesh(&["relay"]).await, h, g)
    });
    let relay = mesh.at("relay");
    let http = client();
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let entries = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(
            &(arb_plan(), arb_plaintext_protocol()),
            |(sub_plan, protocol)| {
                let sink = if protocol == Protocol::Grpc {
                    grpc_sink
                } else {
                    http_sink
                };
                let outer = Plan::new(
                    vec![Sequence {
                        hops: vec![Hop {
                            target: Target::new(sink.ip().to_string(), Some(sink.port())),
                            protocol,
                            headers: BTreeMap::new(),
                            options: Default::default(),
                            next: Arc::new(sub_plan.clone()),
                        }],
                    }],
                    sub_plan.uri.clone(),
                );
                log.lock().unwrap().clear();
                // Alternate the way in: a JSON POST, then a gRPC Call.
                let entry_by_grpc =
                    entries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 == 1;
                runtime.block_on(async {
                    if entry_by_grpc {
                        let mut client = grpc_client(relay).await;
                        let _ = client.call(request_for(&outer)).await;
                    } else {
                        http.post(format!("http://{relay}/"))
                            .header("content-type", "application/json")
                            .body(request_json(&outer).unwrap())
                            .send()
                            .await
                            .unwrap();
                    }
                });
                let received = log.lock().unwrap().clone();
                prop_assert_eq!(received.len(), 1, "the sink was called once");
                let back = decode(&received[0]);
                prop_assert_eq!(
                    &back,
                    &sub_plan,
                    "{:?} relayed over {}",
                    received[0],
                    protocol
                );
                Ok(())
            },
        )
        .unwrap();
    runtime.block_on(mesh.stop()).unwrap();
}

/// The same bad value is refused in the path, a JSON plan and a proto plan,
/// naming it; none reaches a downstream.
#[tokio::test]
async fn every_value_is_checked_the_same_way_in_every_form() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let cases: [(&str, &str, &str); 5] = [
        ("x-mock-delay", "1ms][x-mock-status=503", "x-mock-delay"),
        ("x-mock-status", "503\n", "visible ASCII"),
        ("content-length", "5", "framed"),
        ("host", "evil", "authority"),
        ("x-mock-dealy", "5ms", "unknown directive"),
    ];
    for (name, value, says) in cases {
        // JSON plan.
        let body = serde_json::json!({"plan": {"parallel": [{"hops": [
            {"target": "b", "headers": {name: value}}]}]}});
        let response = client()
            .post(format!("http://{a}/"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}={value:?}");
        let text = response.text().await.unwrap();
        assert!(text.contains(says), "JSON {name}={value:?}: {text}");
        // Proto plan.
        let request = pb::CallRequest {
            request: Some(pb::call_request::Request::Plan(pb::Plan {
                parallel: vec![pb::Sequence {
                    hops: vec![pb::Hop {
                        target: "b".into(),
                        headers: [(name.to_string(), value.to_string())].into(),
                        ..Default::default()
                    }],
                }],
                uri: "/".into(),
            })),
        };
        let status = grpc_client(a).await.call(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains(says),
            "proto {name}={value:?}: {status:?}"
        );
        assert!(
            status
                .message()
                .starts_with("plan.parallel[0].hops[0].headers"),
            "{status:?}"
        );
        // Path (where the value can be written at all).
        if !value.contains(']') {
            let escaped = value.replace('\n', "%0A");
            let (status, body) = get(a, &format!("/@b[{name}={escaped}]/")).await;
            assert_eq!(status, 400, "path {name}={value:?}: {body}");
            assert!(
                body.contains(says) || body.contains("invalid character"),
                "{body}"
            );
        }
    }
    // The same through the Behavior message.
    let request = pb::CallRequest {
        request: Some(pb::call_request::Request::Plan(pb::Plan {
            parallel: vec![pb::Sequence {
                hops: vec![pb::Hop {
                    target: "b".into(),
                    behavior: Some(pb::Behavior {
                        status: "503\n".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
            }],
            uri: "/".into(),
        })),
    };
    let status = grpc_client(a).await.call(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("plan.parallel[0].hops[0].behavior.status"),
        "{status:?}"
    );
    // A host that is only digits would read back as a scheme and a port.
    let (status, body) = get(a, "/@h2c:1:8080/").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("only digits"), "{body}");
    // The remainder follows the structured uri's rule.
    let status = grpc_client(a)
        .await
        .call(path_request("/@b/x y#z"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}
