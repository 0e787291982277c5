//! The gRPC side with a tonic client: path and structured plans, mixed
//! protocol trees from either entry, INVALID_ARGUMENT, failures that carry
//! the report in their details, deadlines, health and identity metadata.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use servicemock::pb;
use servicemock::pb::mock_service_client::MockServiceClient;
use servicemock::report::proto::decode_status_details;
use servicemock::report::Report;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

async fn client_for(addr: SocketAddr) -> MockServiceClient<tonic::transport::Channel> {
    MockServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn path_request(path: &str) -> pb::CallRequest {
    pb::CallRequest {
        request: Some(pb::call_request::Request::Path(path.into())),
    }
}

fn hop(target: &str, protocol: pb::Protocol, next: Option<pb::Plan>) -> pb::Hop {
    pb::Hop {
        target: target.into(),
        protocol: protocol as i32,
        next,
        ..Default::default()
    }
}

fn plan(groups: Vec<Vec<pb::Hop>>, uri: &str) -> pb::Plan {
    pb::Plan {
        parallel: groups
            .into_iter()
            .map(|hops| pb::Sequence { hops })
            .collect(),
        uri: uri.into(),
    }
}

fn plan_request(p: pb::Plan) -> pb::CallRequest {
    pb::CallRequest {
        request: Some(pb::call_request::Request::Plan(p)),
    }
}

/// Walks a one-hop-per-level report, returning (protocol, service) per hop.
fn chain(report: &Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut level = report;
    while let Some(hop) = level.forwards().next() {
        let child = hop.response.as_deref().expect("nested report");
        out.push((hop.protocol.to_string(), child.service.to_string()));
        level = child;
    }
    out
}

#[tokio::test]
async fn empty_request_answers_with_identity() {
    let mesh = mesh(&["service1"]).await;
    let response = client_for(mesh.at("service1"))
        .await
        .call(pb::CallRequest::default())
        .await
        .unwrap();
    assert_eq!(
        response.metadata().get("x-servicemock-service").unwrap(),
        "service1"
    );
    assert_eq!(
        response.metadata().get("x-servicemock-version").unwrap(),
        "v1"
    );
    let r = response.into_inner();
    assert_eq!(
        (r.service.as_str(), r.protocol.as_str()),
        ("service1", "grpc")
    );
    assert!(r.parallel_forwards.is_empty());
}

#[tokio::test]
async fn path_request_with_mixed_hops() {
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let mut client = client_for(mesh.at("service1")).await;
    let r: Report = client
        .call(path_request("/@service2/@grpc:service3/@h2c:service2/end"))
        .await
        .unwrap()
        .into_inner()
        .into();
    assert_eq!(
        chain(&r),
        [
            ("http".into(), "service2".into()),
            ("grpc".into(), "service3".into()),
            ("h2c".into(), "service2".into())
        ]
    );
    assert_eq!(
        r.request_info[0],
        "POST /servicemock.v1.MockService/Call path=/@service2/@grpc:service3/@h2c:service2/end"
    );
}

#[tokio::test]
async fn http_grpc_http_grpc_from_either_entry() {
    let mesh = mesh(&["entry", "a", "b"]).await;
    let entry = mesh.at("entry");
    let expected: Vec<(String, String)> =
        [("http", "a"), ("grpc", "b"), ("http", "a"), ("grpc", "b")]
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect();

    let (status, from_http) = report(entry, "/@a/@grpc:b/@a/@grpc:b/end").await;
    assert_eq!(status, 200, "{from_http:#?}");
    assert_eq!(chain(&from_http), expected);

    let structured = plan(
        vec![vec![hop(
            "a",
            pb::Protocol::Http,
            Some(plan(
                vec![vec![hop(
                    "b",
                    pb::Protocol::Grpc,
                    Some(plan(
                        vec![vec![hop(
                            "a",
                            pb::Protocol::Http,
                            Some(plan(vec![vec![hop("b", pb::Protocol::Grpc, None)]], "")),
                        )]],
                        "",
                    )),
                )]],
                "",
            )),
        )]],
        "/end",
    );
    let from_grpc: Report = client_for(entry)
        .await
        .call(plan_request(structured))
        .await
        .unwrap()
        .into_inner()
        .into();
    assert_eq!(chain(&from_grpc), expected);
    let mut leaf = &from_grpc;
    while let Some(hop) = leaf.forwards().next() {
        leaf = hop.response.as_deref().unwrap();
    }
    assert!(
        leaf.request_info[0].contains("plan=/end"),
        "{:?}",
        leaf.request_info
    );
}

#[tokio::test]
async fn divergent_subtrees_over_grpc() {
    let mesh = mesh(&["entry", "a", "b", "c"]).await;
    let p = plan(
        vec![
            vec![hop(
                "a",
                pb::Protocol::Grpc,
                Some(plan(
                    vec![
                        vec![hop("b", pb::Protocol::Http, None)],
                        vec![hop("c", pb::Protocol::H2c, None)],
                    ],
                    "/x",
                )),
            )],
            vec![hop(
                "b",
                pb::Protocol::Grpc,
                Some(plan(
                    vec![vec![
                        hop("c", pb::Protocol::Grpc, None),
                        hop("a", pb::Protocol::Http, None),
                    ]],
                    "",
                )),
            )],
        ],
        "/end",
    );
    let r: Report = client_for(mesh.at("entry"))
        .await
        .call(plan_request(p))
        .await
        .unwrap()
        .into_inner()
        .into();
    let first = r.parallel_forwards[0].sequential_forwards[0]
        .response
        .as_deref()
        .unwrap();
    let names: Vec<_> = first
        .forwards()
        .map(|f| f.response.as_ref().unwrap().service.clone())
        .collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(first.forwards().next().unwrap().url, "http://b:8080/x");
    let second = r.parallel_forwards[1].sequential_forwards[0]
        .response
        .as_deref()
        .unwrap();
    let names: Vec<_> = second
        .forwards()
        .map(|f| {
            (
                f.protocol.to_string(),
                f.response.as_ref().unwrap().service.to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("grpc".to_string(), "c".to_string()),
            ("http".to_string(), "a".to_string())
        ]
    );
    assert_eq!(second.forwards().nth(1).unwrap().url, "http://a:8080/end");
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_what_and_where() {
    let mesh = mesh(&["entry"]).await;
    let mut client = client_for(mesh.at("entry")).await;
    let status = client.call(path_request("/@a||b")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "empty target at position 4 in \"@a||b\"");
    let status = client.call(path_request("@a")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("path: must start with '/'"));
    let bad = plan(
        vec![vec![hop(
            "a",
            pb::Protocol::Grpc,
            Some(plan(
                vec![vec![hop("b:99999", pb::Protocol::Http, None)]],
                "",
            )),
        )]],
        "",
    );
    let status = client.call(plan_request(bad)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("plan.parallel[0].hops[0].next.parallel[0].hops[0].target: bad port"),
        "{}",
        status.message()
    );
    let mut request = tonic::Request::new(path_request("/"));
    request
        .metadata_mut()
        .insert("x-servicemock-depth", "deep".parse().unwrap());
    let status = client.call(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("x-servicemock-depth"));
}

#[tokio::test]
async fn failed_hops_answer_unavailable_with_the_report_in_details() {
    let closed = closed_port().await;
    let mesh = mesh(&["entry", "ok"]).await;
    let mut client = client_for(mesh.at("entry")).await;
    let path = format!("/@ok|grpc:127.0.0.1:{}/end", closed.port());
    let status = client.call(path_request(&path)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("1 of 2 hop(s) failed"),
        "{}",
        status.message()
    );
    assert_eq!(
        status.metadata().get("x-servicemock-service").unwrap(),
        "entry"
    );
    let r = Report::from(decode_status_details(status.details()).expect("CallResponse in details"));
    let results: Vec<_> = r.forwards().map(|f| f.result).collect();
    assert_eq!(results, ["ok", "refused"]);
    assert_eq!(r.forwards().nth(1).unwrap().status, None);
}

#[tokio::test]
async fn grpc_hop_failure_deep_down_keeps_the_nested_tree() {
    let mesh = mesh(&["entry", "mid"]).await;
    let (status, r) = report(mesh.at("entry"), "/@grpc:mid/@nobody.invalid/").await;
    assert_eq!(status, 502);
    let hop = r.forwards().next().unwrap();
    assert_eq!(
        (hop.result.as_str(), hop.status),
        ("status", Some(Code::Unavailable as i32))
    );
    let mid = hop
        .response
        .as_deref()
        .expect("nested report recovered from the details");
    assert_eq!(mid.service, "mid");
    assert_eq!(mid.forwards().next().unwrap().result, "dns");
}

#[tokio::test]
async fn deadline_is_honoured_and_shrinks_downstream() {
    let slow = stand_in().await;
    let mesh = mesh(&["entry", "next"]).await;
    let mut client = client_for(mesh.at("entry")).await;
    let mut request = tonic::Request::new(path_request("/@next/end"));
    request.set_timeout(Duration::from_millis(800));
    let r: Report = client.call(request).await.unwrap().into_inner().into();
    let next = r.forwards().next().unwrap().response.as_deref().unwrap();
    let budget: u64 = next
        .request_info
        .iter()
        .find_map(|l| l.strip_prefix("x-servicemock-timeout-ms: "))
        .expect("budget passed on")
        .parse()
        .unwrap();
    assert!(
        budget <= 800,
        "downstream got {budget} ms of an 800 ms deadline"
    );

    let mut request = tonic::Request::new(path_request(&format!(
        "/@127.0.0.1:{}/slow/5000",
        slow.port()
    )));
    request.set_timeout(Duration::from_millis(300));
    let status = client.call(request).await.unwrap_err();
    // Either the server reports the timed-out hop (UNAVAILABLE with details)
    // or the client's own deadline fires first; never a 5 s wait.
    match status.code() {
        Code::Unavailable => {
            let r = Report::from(decode_status_details(status.details()).unwrap());
            assert_eq!(r.forwards().next().unwrap().result, "timeout");
        }
        Code::DeadlineExceeded | Code::Cancelled => {}
        other => panic!("unexpected {other:?}: {}", status.message()),
    }
}

/// A grpc.health.v1 client for the service at `addr`.
#[tokio::test]
async fn health_reports_serving() {
    let mesh = mesh(&["a"]).await;
    let mut health = health_client(mesh.at("a")).await;
    for service in ["", "servicemock.v1.MockService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn health_turns_not_serving_when_draining_starts() {
    let mesh = mesh(&["a"]).await;
    let mut watch = health_client(mesh.at("a"))
        .await
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    // Stop the mesh in the background: the open Watch stream keeps the
    // connection in flight, so the drain waits for it (up to the grace).
    let stopping = tokio::spawn(mesh.stop());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("an update before the grace period ends")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(watch);
    stopping.await.unwrap().unwrap();
}
