//! The `CallRequest` in proto3 JSON — what `grpcurl -d` and
//! `servicemock plan` use — for the HTTP side: a `POST` with a JSON body asks
//! for the same tree a gRPC `Call` would. HTTP hops whose sub-plan no single
//! @-path can express (hops that go on to different subtrees) travel this way.
//!
//! The JSON is read into the generated messages themselves (their proto3
//! JSON form comes from pbjson, built from the same descriptor as the gRPC
//! code) and checked by [`super::proto::plan_from_request`], so both edges
//! refuse the same mistakes with the same field names.

use serde::Deserialize;

use super::proto::{plan_from_request, request_for};
use super::{Limits, Plan, PlanError};
use crate::guard::json::json_nesting;
use crate::pb;

/// JSON levels one plan level adds: the plan object, its `parallel` array,
/// a group object, its `hops` array and the hop object whose `next` is the
/// next plan.
const JSON_LEVELS_PER_PLAN: usize = 5;

/// Parses and checks a JSON `CallRequest`.
pub fn plan_from_json(body: &[u8], limits: &Limits) -> Result<Plan, PlanError> {
    // Measured before parsing, so no body can make the parser recurse
    // deeper than a plan of --max-depth levels needs.
    let nesting = json_nesting(body);
    let allowed = JSON_LEVELS_PER_PLAN * (limits.max_depth as usize + 1) + 2;
    if nesting > allowed {
        return Err(PlanError::TooDeep {
            depth: nesting.saturating_sub(2) / JSON_LEVELS_PER_PLAN,
            left: limits.max_depth,
            max: limits.max_depth,
            passed: 0,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    de.disable_recursion_limit();
    let parsed = pb::CallRequest::deserialize(serde_stacker::Deserializer::new(&mut de))
        .and_then(|request| de.end().map(|()| request));
    let request = parsed.map_err(|e| {
        let text = e.to_string();
        // `path` and `plan` are one oneof: serde calls the second a duplicate.
        let problem =
            if text.contains("duplicate field `plan`") || text.contains("duplicate field `path`") {
                "give one of `path` (an @-path) and `plan` (a structured plan), not both".to_owned()
            } else {
                format!("not a CallRequest in JSON: {text}")
            };
        PlanError::Field {
            field: "body".into(),
            problem,
        }
    })?;
    plan_from_request(&request, limits)
}

/// The JSON body that asks a service to run `plan` (its `CallRequest`).
pub fn request_json(plan: &Plan) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&request_for(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::path::parse_path;
    use crate::plan::Protocol;

    #[test]
    fn json_round_trips_every_path_plan() {
        let limits = Limits::default();
        for path in [
            "/",
            "/@a/end",
            "/@a|grpc:b[x-mock-delay=1ms][end-user=j],h2c:c:9/@d/end?q=1",
        ] {
            let plan = parse_path(path, &limits).unwrap();
            let body = request_json(&plan).unwrap();
            assert_eq!(plan_from_json(&body, &limits).unwrap(), plan, "{path}");
        }
    }

    #[test]
    fn grpcurl_style_json_is_accepted() {
        let body = br#"{"plan": {"uri": "/end", "parallel": [{"hops": [
            {"target": "b", "protocol": "PROTOCOL_GRPC", "behavior": {"grpcStatus": "UNAVAILABLE"},
             "next": {"parallel": [{"hops": [{"target": "c", "protocol": 2}]}]}}]}]}}"#;
        let plan = plan_from_json(body, &Limits::default()).unwrap();
        let hop = &plan.parallel[0].hops[0];
        assert_eq!(hop.protocol, Protocol::Grpc);
        assert_eq!(hop.headers["x-mock-grpc-status"], "UNAVAILABLE");
        assert_eq!(hop.next.parallel[0].hops[0].protocol, Protocol::H2c);
        assert_eq!(hop.next.parallel[0].hops[0].next.uri, "/end");
    }

    #[test]
    fn hop_options_read_as_grpcurl_writes_them() {
        let body = br#"{"plan": {"parallel": [{"hops": [{"target": "service2",
            "options": {"timeout": "3s", "retries": 2, "retryOn": "5xx,timeout", "method": "POST"}}]}]}}"#;
        let plan = plan_from_json(body, &Limits::default()).unwrap();
        let options = &plan.parallel[0].hops[0].options;
        assert_eq!(options.timeout, Some(std::time::Duration::from_secs(3)));
        assert_eq!(options.retries, 2);
        assert_eq!(options.method.as_deref(), Some("POST"));
        let back = plan_from_json(&request_json(&plan).unwrap(), &Limits::default()).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn mistakes_are_named() {
        let limits = Limits::default();
        let err = |body: &str| {
            plan_from_json(body.as_bytes(), &limits)
                .unwrap_err()
                .to_string()
        };
        assert!(err("{").starts_with("body: not a CallRequest in JSON"));
        let both = err(r#"{"plan": {}, "path": "/"}"#);
        assert_eq!(
            both,
            "body: give one of `path` (an @-path) and `plan` (a structured plan), not both"
        );
        assert!(
            err(r#"{"plan": {"parallel": [{"hops": [{"target": "a", "colour": 1}]}]}}"#)
                .contains("unknown field `colour`")
        );
        assert!(
            err(r#"{"plan": {"parallel": [{"hops": [{"target": "a", "protocol": "UDP"}]}]}}"#)
                .contains("unknown variant `UDP`")
        );
        assert_eq!(
            err(r#"{"path": "/@a||b"}"#),
            "empty target at position 4 in \"@a||b\""
        );
        assert_eq!(
            err(r#"{"plan": {"parallel": [{"hops": [{"target": ""}]}]}}"#),
            "plan.parallel[0].hops[0].target: empty (write host or host:port)"
        );
    }
}
