//! The `CallRequest` in proto3 JSON — what `grpcurl -d` and
//! `servicemock plan` use — for the HTTP side: a `POST` with a JSON body asks
//! for the same tree a gRPC `Call` would. HTTP hops whose sub-plan no single
//! @-path can express (hops that go on to different subtrees) travel this way.
//!
//! The JSON is read into these mirror types, turned into the messages and
//! checked by [`super::proto::plan_from_request`], so both edges refuse the
//! same mistakes with the same field names.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::proto::plan_from_request;
use crate::report::json_nesting;

/// JSON levels one plan level adds: the plan object, its `parallel` array,
/// a group object, its `hops` array and the hop object whose `next` is the
/// next plan.
const JSON_LEVELS_PER_PLAN: usize = 5;
use super::{Limits, Plan, PlanError};
use crate::pb;

/// A `CallRequest`: a structured plan or an @-path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequestJson {
    #[serde(default)]
    plan: Option<PlanJson>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanJson {
    #[serde(default)]
    parallel: Vec<SequenceJson>,
    #[serde(default)]
    uri: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceJson {
    #[serde(default)]
    hops: Vec<HopJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HopJson {
    #[serde(default)]
    target: String,
    #[serde(default)]
    protocol: Option<ProtocolJson>,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    behavior: Option<BehaviorJson>,
    #[serde(default)]
    next: Option<PlanJson>,
}

/// proto3 JSON takes an enum by name or by number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProtocolJson {
    Name(String),
    Number(i32),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaviorJson {
    #[serde(default)]
    delay: String,
    #[serde(default)]
    status: String,
    #[serde(default, rename = "grpcStatus", alias = "grpc_status")]
    grpc_status: String,
    #[serde(default)]
    size: String,
}

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
    let parsed = CallRequestJson::deserialize(serde_stacker::Deserializer::new(&mut de))
        .and_then(|request| de.end().map(|()| request));
    let request = parsed.map_err(|e| PlanError::Field {
        field: "body".into(),
        problem: format!("not a CallRequest in JSON: {e}"),
    })?;
    let message = match (request.plan, request.path) {
        (Some(_), Some(_)) => {
            return Err(PlanError::Field {
                field: "body".into(),
                problem: "give \"plan\" or \"path\", not both".into(),
            })
        }
        (Some(plan), None) => pb::call_request::Request::Plan(plan_to_message(plan)?),
        (None, Some(path)) => pb::call_request::Request::Path(path),
        (None, None) => pb::call_request::Request::Plan(pb::Plan::default()),
    };
    plan_from_request(
        &pb::CallRequest {
            request: Some(message),
        },
        limits,
    )
}

fn plan_to_message(plan: PlanJson) -> Result<pb::Plan, PlanError> {
    let mut parallel = Vec::with_capacity(plan.parallel.len());
    for group in plan.parallel {
        let mut hops = Vec::with_capacity(group.hops.len());
        for hop in group.hops {
            let protocol = match hop.protocol {
                None => pb::Protocol::Unspecified as i32,
                Some(ProtocolJson::Number(n)) => n,
                Some(ProtocolJson::Name(name)) => pb::Protocol::from_str_name(&name)
                    .map(|p| p as i32)
                    .ok_or_else(|| PlanError::Field {
                        field: format!("hop to {}: protocol", hop.target),
                        problem: format!("unknown value \"{name}\" (PROTOCOL_HTTP, PROTOCOL_H2C or PROTOCOL_GRPC)"),
                    })?,
            };
            hops.push(pb::Hop {
                target: hop.target,
                protocol,
                headers: hop.headers,
                behavior: hop.behavior.map(|b| pb::Behavior {
                    delay: b.delay,
                    status: b.status,
                    grpc_status: b.grpc_status,
                    size: b.size,
                }),
                next: hop.next.map(plan_to_message).transpose()?,
            });
        }
        parallel.push(pb::Sequence { hops });
    }
    Ok(pb::Plan {
        parallel,
        uri: plan.uri,
    })
}

/// The JSON body that asks a service to run `plan` (its `CallRequest`).
pub fn request_json(plan: &Plan) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Body<'a> {
        plan: &'a Plan,
    }
    serde_json::to_vec(&Body { plan })
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
    fn mistakes_are_named() {
        let limits = Limits::default();
        let err = |body: &str| {
            plan_from_json(body.as_bytes(), &limits)
                .unwrap_err()
                .to_string()
        };
        assert!(err("{").starts_with("body: not a CallRequest in JSON"));
        assert!(err(r#"{"plan": {}, "path": "/"}"#).contains("not both"));
        assert!(
            err(r#"{"plan": {"parallel": [{"hops": [{"target": "a", "colour": 1}]}]}}"#)
                .contains("unknown field `colour`")
        );
        assert!(
            err(r#"{"plan": {"parallel": [{"hops": [{"target": "a", "protocol": "UDP"}]}]}}"#)
                .contains("unknown value \"UDP\"")
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
