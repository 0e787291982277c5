//! What mesh experiments need, against real servers: behaviour directives per
//! request, per hop and per process over HTTP and gRPC, the observed failure
//! rate, header propagation across protocols, deadlines and load shedding.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures::stream::{self, StreamExt};
use servicemock::behavior::{self, Directives};
use servicemock::config::Settings;
use servicemock::mesh::Mesh;
use servicemock::pb;
use servicemock::pb::mock_service_client::MockServiceClient;
use servicemock::report::proto::decode_status_details;
use servicemock::report::Report;
use tonic::Code;

async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().get(format!("http://{addr}{path}"));
    for (n, v) in headers {
        request = request.header(*n, *v);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn parse(body: &str) -> Report {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn grpc_call(
    addr: SocketAddr,
    path: &str,
    metadata: &[(&'static str, &str)],
) -> Result<Report, tonic::Status> {
    let mut client = MockServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::CallRequest {
        request: Some(pb::call_request::Request::Path(path.into())),
    });
    for (n, v) in metadata {
        request.metadata_mut().insert(*n, v.parse().unwrap());
    }
    client.call(request).await.map(|r| r.into_inner().into())
}

async fn mesh_with_defaults(names: &[&str], defaults: Directives) -> Mesh {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut options = options(Settings::default());
    options.defaults = defaults;
    Mesh::start(&names, options).await.unwrap()
}

#[tokio::test]
async fn status_per_request_over_http_and_grpc() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let (status, body) = get_with(a, "/", &[("x-mock-status", "503")]).await;
    assert_eq!(status, 503);
    let r = parse(&body);
    assert_eq!(r.injected, ["status 503"]);
    assert!(r.message.contains("failed on purpose"), "{r:#?}");

    let (status, _) = get_with(a, "/", &[("x-mock-grpc-status", "RESOURCE_EXHAUSTED")]).await;
    assert_eq!(
        status, 429,
        "an injected gRPC code maps to its HTTP status over HTTP"
    );

    let status = grpc_call(a, "/", &[("x-mock-grpc-status", "UNAVAILABLE")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let r = Report::from(decode_status_details(status.details()).unwrap());
    assert_eq!(r.injected, ["grpc-status UNAVAILABLE"]);
    let status = grpc_call(a, "/", &[("x-mock-status", "503")])
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unavailable,
        "503 maps to UNAVAILABLE over gRPC"
    );
    let ok = grpc_call(a, "/", &[("x-mock-status", "201")])
        .await
        .unwrap();
    assert_eq!(ok.injected, ["status 201"]);
}

#[tokio::test]
async fn status_per_hop_in_paths_and_plans() {
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let s1 = mesh.at("service1");
    let (status, body) = get_with(s1, "/@service2[x-mock-status=503]|service3/", &[]).await;
    assert_eq!(status, 502);
    let r = parse(&body);
    let hops: Vec<_> = r.forwards().collect();
    assert_eq!(
        (hops[0].result.as_str(), hops[0].status),
        ("status", Some(503))
    );
    assert_eq!(hops[0].response.as_ref().unwrap().injected, ["status 503"]);
    assert_eq!(hops[1].result, "ok");

    let plan = pb::Plan {
        uri: "/".into(),
        parallel: vec![pb::Sequence {
            hops: vec![pb::Hop {
                target: "service2".into(),
                protocol: pb::Protocol::Grpc as i32,
                behavior: Some(pb::Behavior {
                    grpc_status: "PERMISSION_DENIED".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        }],
    };
    let mut client = MockServiceClient::connect(format!("http://{s1}"))
        .await
        .unwrap();
    let status = client
        .call(pb::CallRequest {
            request: Some(pb::call_request::Request::Plan(plan)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let r = Report::from(decode_status_details(status.details()).unwrap());
    let hop = r.forwards().next().unwrap();
    assert_eq!(hop.status, Some(Code::PermissionDenied as i32));
    assert_eq!(hop.response.as_ref().unwrap().service, "service2");
}

#[tokio::test]
async fn delay_size_and_reset() {
    let settings = Settings {
        hop_timeout: Duration::from_millis(400),
        ..Settings::default()
    };
    let mesh = mesh_with(&["a", "b"], settings).await;
    let a = mesh.at("a");
    let (status, body) = get_with(a, "/@b[x-mock-delay=120ms]/", &[]).await;
    assert_eq!(status, 200);
    let r = parse(&body);
    let hop = r.forwards().next().unwrap();
    assert!(hop.duration_ms >= 120.0, "{hop:#?}");
    assert!(hop.response.as_ref().unwrap().injected[0].starts_with("delay 120ms"));

    let (status, body) = get_with(a, "/@b[x-mock-delay=2s]/", &[]).await;
    assert_eq!(status, 502);
    assert_eq!(parse(&body).forwards().next().unwrap().result, "timeout");

    let (_, body) = get_with(a, "/", &[("x-mock-size", "2KiB")]).await;
    assert_eq!(parse(&body).padding.len(), 2048);

    let (status, body) = get_with(a, "/@b[x-mock-reset=true]|b/", &[]).await;
    assert_eq!(status, 502);
    let r = parse(&body);
    let hops: Vec<_> = r.forwards().collect();
    assert_eq!(
        (
            hops[0].result.as_str(),
            hops[0].status,
            hops[0].response.is_none()
        ),
        ("error", None, true),
        "{hops:#?}"
    );
    assert_eq!(hops[1].result, "ok", "only the asked request is reset");
    let dropped = match client()
        .get(format!("http://{a}/"))
        .header("x-mock-reset", "true")
        .send()
        .await
    {
        Err(e) => e.is_request(),
        Ok(response) => response.text().await.is_err(),
    };
    assert!(
        dropped,
        "the connection is dropped without a complete answer"
    );
    let reset = grpc_call(a, "/", &[("x-mock-reset", "100%")])
        .await
        .unwrap_err();
    assert_ne!(reset.code(), Code::Ok);
}

#[tokio::test]
async fn process_defaults_and_header_override() {
    let mut defaults = Directives::default();
    defaults
        .set(behavior::STATUS, "503", Duration::from_secs(1))
        .unwrap();
    defaults
        .set(behavior::DELAY, "30ms", Duration::from_secs(1))
        .unwrap();
    let mesh = mesh_with_defaults(&["flaky"], defaults).await;
    let flaky = mesh.at("flaky");
    let (status, body) = get_with(flaky, "/", &[]).await;
    assert_eq!(status, 503);
    assert!(parse(&body).duration_ms >= 30.0);
    let (status, _) = get_with(flaky, "/", &[("x-mock-status", "200")]).await;
    assert_eq!(status, 200, "a header wins over the process default");
    assert_eq!(
        grpc_call(flaky, "/", &[]).await.unwrap_err().code(),
        Code::Unavailable
    );
}

#[tokio::test]
async fn bad_directives_name_header_and_value() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    for (name, value, expected) in [
        (
            "x-mock-status",
            "503@120%",
            "x-mock-status: \"503@120%\": \"120\" is not a percentage",
        ),
        ("x-mock-status", "503:60,500:60", "add up to 120"),
        ("x-mock-delay", "1 hour", "x-mock-delay: \"1 hour\""),
        ("x-mock-delay", "1h", "over the cap"),
        ("x-mock-grpc-status", "NOPE", "x-mock-grpc-status: \"NOPE\""),
        ("x-mock-size", "lots", "x-mock-size: \"lots\""),
    ] {
        let (status, body) = get_with(a, "/", &[(name, value)]).await;
        assert_eq!(status, 400, "{name}: {value}");
        assert!(body.contains(expected), "{body}");
        let grpc = grpc_call(a, "/", &[(name, value)]).await.unwrap_err();
        assert_eq!(grpc.code(), Code::InvalidArgument);
        assert!(grpc.message().contains(expected), "{}", grpc.message());
    }
    // A bad directive written on a hop is refused where it is written,
    // before anyone is called, naming it and its position.
    let (status, body) = get_with(a, "/@a[x-mock-status=999]/", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("x-mock-status: \"999\""), "{body}");
    assert!(body.contains("at position 3"), "{body}");
    // Only the callee knows its own --max-delay: over it, that hop's 400.
    let (status, body) = get_with(a, "/@a[x-mock-delay=1h]/", &[]).await;
    assert_eq!(status, 502, "{body}");
    let hop_status = parse(&body).forwards().next().unwrap().status;
    assert_eq!(hop_status, Some(400));
}

#[tokio::test]
async fn directives_are_consumed_not_forwarded() {
    let mesh = mesh(&["a", "b", "c"]).await;
    let (_, body) = get_with(
        mesh.at("a"),
        "/@b[x-mock-delay=1ms]/@c/",
        &[("x-mock-size", "10")],
    )
    .await;
    let r = parse(&body);
    assert_eq!(r.padding.len(), 10);
    let b = r.forwards().next().unwrap().response.as_deref().unwrap();
    assert!(b.request_info.iter().any(|l| l == "x-mock-delay: 1ms"));
    assert!(!b.request_info.iter().any(|l| l.starts_with("x-mock-size")));
    let c = b.forwards().next().unwrap().response.as_deref().unwrap();
    assert!(
        !c.request_info.iter().any(|l| l.starts_with("x-mock")),
        "{c:#?}"
    );
    assert!(c.injected.is_empty());
}

#[tokio::test]
async fn failure_rate_is_within_two_points_over_10000_requests() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a");
    let http = client();
    let failures = stream::iter(0..10_000)
        .map(|_| {
            let http = http.clone();
            async move {
                let response = http
                    .get(format!("http://{a}/"))
                    .header("x-mock-status", "503@30%")
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
        })
        .buffer_unordered(16)
        .filter(|s| std::future::ready(*s == 503))
        .count()
        .await;
    let rate = failures as f64 / 100.0;
    assert!(
        (rate - 30.0).abs() <= 2.0,
        "observed {rate}% 503s, asked 30%"
    );
}

#[tokio::test]
async fn trace_headers_cross_http_grpc_http() {
    let names: Vec<String> = ["entry", "mid", "leaf"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut options = options(Settings::default());
    options
        .propagate
        .push(http::HeaderName::from_static("end-user"));
    let mesh = Mesh::start(&names, options).await.unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, body) = get_with(
        mesh.at("entry"),
        "/@mid/@grpc:leaf/@mid/",
        &[
            ("traceparent", traceparent),
            ("x-request-id", "req-42"),
            ("end-user", "jason"),
            ("cookie", "secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut level = parse(&body);
    let mut seen = 0;
    loop {
        let Some(child) = level.forwards().next().and_then(|f| f.response.clone()) else {
            break;
        };
        assert!(
            child
                .request_info
                .contains(&format!("traceparent: {traceparent}")),
            "{:?}",
            child.request_info
        );
        assert!(child
            .request_info
            .contains(&"x-request-id: req-42".to_string()));
        assert!(child.request_info.contains(&"end-user: jason".to_string()));
        assert!(!child.request_info.iter().any(|l| l.starts_with("cookie")));
        assert_eq!(child.request_id, "req-42");
        seen += 1;
        level = child.into_report();
    }
    assert_eq!(seen, 3);

    let (_, body) = get_with(mesh.at("entry"), "/@grpc:mid/@leaf/", &[]).await;
    let r = parse(&body);
    assert_eq!(r.request_id.len(), 36, "the entry makes one up");
    let mid = r.forwards().next().unwrap().response.as_deref().unwrap();
    let leaf = mid.forwards().next().unwrap().response.as_deref().unwrap();
    assert_eq!(
        (&mid.request_id, &leaf.request_id),
        (&r.request_id, &r.request_id)
    );
}

#[tokio::test]
async fn fan_out_cap_holds_over_grpc_too() {
    let mesh = mesh(&["a"]).await;
    let path = format!("{}end", "/@a|a|a|a".repeat(6) + "/");
    let status = grpc_call(mesh.at("a"), &path, &[]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("plan too large"));
}

#[tokio::test]
async fn deadline_shrinks_as_hops_consume_it() {
    let settings = Settings {
        request_timeout: Duration::from_millis(1500),
        ..Settings::default()
    };
    let mesh = mesh_with(&["a", "b", "c"], settings).await;
    let (status, body) = get_with(mesh.at("a"), "/@b[x-mock-delay=300ms]/@c/", &[]).await;
    assert_eq!(status, 200, "{body}");
    let r = parse(&body);
    let b = r.forwards().next().unwrap().response.as_deref().unwrap();
    let c = b.forwards().next().unwrap().response.as_deref().unwrap();
    let budget = |rep: &Report| -> u64 {
        rep.request_info
            .iter()
            .find_map(|l| l.strip_prefix("x-servicemock-timeout-ms: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(budget(b) <= 1500, "{}", budget(b));
    assert!(
        budget(c) <= budget(b) - 300,
        "b's delay is taken from c's budget: {} vs {}",
        budget(c),
        budget(b)
    );

    let (status, body) = get_with(
        mesh.at("a"),
        "/@b/",
        &[
            ("x-servicemock-timeout-ms", "100"),
            ("x-mock-delay", "300ms"),
        ],
    )
    .await;
    // a's own delay ran into its deadline: it answers 504 at the deadline,
    // says the delay was cut, and lists b as not called.
    assert_eq!(status, 504, "{body}");
    let r = parse(&body);
    assert!(r.timed_out, "{r:#?}");
    assert_eq!(r.injected, ["delay 300ms cut at the deadline after 100ms"]);
    let hop = r.forwards().next().cloned().unwrap();
    assert_eq!(hop.result, "skipped", "no time left to call b: {hop:#?}");
}

#[tokio::test]
async fn bursts_over_the_limit_are_shed_not_queued() {
    let settings = Settings {
        max_concurrent: 2,
        ..Settings::default()
    };
    let mesh = mesh_with(&["a"], settings).await;
    let a = mesh.at("a");
    let http = client();
    let statuses: Vec<u16> = stream::iter(0..12)
        .map(|_| {
            let http = http.clone();
            async move {
                let r = http
                    .get(format!("http://{a}/"))
                    .header("x-mock-delay", "300ms")
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }
        })
        .buffer_unordered(12)
        .collect()
        .await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let shed = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(ok + shed, 12, "{statuses:?}");
    assert!((1..=4).contains(&ok), "{statuses:?}");
    assert!(shed >= 8, "{statuses:?}");

    let calls = (0..6).map(|_| grpc_call(a, "/", &[("x-mock-delay", "300ms")]));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().any(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted && s.message().contains("--max-concurrent"))));
}
