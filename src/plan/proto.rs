//! Conversions between the [`Plan`] and the gRPC messages of `servicemock.v1`.
//!
//! A `CallRequest` holds either a structured `Plan` or an @-path; both become
//! the same hop tree. Structured plans are checked field by field, and every
//! refusal names the field (`plan.parallel[0].hops[1].target`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::path::{parse_path, parse_target_text};
use super::{
    check_hop_header, check_remainder, Hop, HopOptions, Limits, Plan, PlanError, Protocol, Sequence,
};
use crate::behavior::Directive;
use crate::pb;

/// The `Behavior` field a directive has, and its name for messages; none
/// for `x-mock-reset`, which a hop sends as a header.
fn behavior_field(
    behavior: &mut pb::Behavior,
    directive: Directive,
) -> Option<(&mut String, &'static str)> {
    Some(match directive {
        Directive::Delay => (&mut behavior.delay, "delay"),
        Directive::Status => (&mut behavior.status, "status"),
        Directive::GrpcStatus => (&mut behavior.grpc_status, "grpc_status"),
        Directive::Size => (&mut behavior.size, "size"),
        Directive::Reset => return None,
    })
}

/// Turns a `CallRequest` into a plan, checking every field.
pub fn plan_from_request(request: &pb::CallRequest, limits: &Limits) -> Result<Plan, PlanError> {
    let plan = match &request.request {
        None => Plan::leaf("/"),
        Some(pb::call_request::Request::Path(path)) => {
            if !path.starts_with('/') {
                return Err(PlanError::Field {
                    field: "path".into(),
                    problem: format!("must start with '/', got \"{path}\""),
                });
            }
            parse_path(path, limits)?
        }
        Some(pb::call_request::Request::Plan(plan)) => {
            plan_from_proto(plan, "/", "plan", limits, &mut 0)?
        }
    };
    plan.check_size(limits)?;
    Ok(plan)
}

/// Converts a `Plan` message; `inherited_uri` is used when its `uri` is empty
/// and `field` names it in errors. `converted` counts the hops of the whole
/// tree so far: conversion stops as soon as it passes `--max-hops`.
fn plan_from_proto(
    message: &pb::Plan,
    inherited_uri: &str,
    field: &str,
    limits: &Limits,
    converted: &mut usize,
) -> Result<Plan, PlanError> {
    let uri = if message.uri.is_empty() {
        inherited_uri.to_owned()
    } else {
        check_uri(&message.uri, &format!("{field}.uri"), limits)?
    };
    let mut count = 0;
    let mut parallel = Vec::with_capacity(message.parallel.len());
    for (g, group) in message.parallel.iter().enumerate() {
        if group.hops.is_empty() {
            return Err(PlanError::Field {
                field: format!("{field}.parallel[{g}].hops"),
                problem: "empty group (give at least one hop, or leave the group out)".into(),
            });
        }
        let mut hops = Vec::with_capacity(group.hops.len());
        for (h, hop) in group.hops.iter().enumerate() {
            count += 1;
            let here = format!("{field}.parallel[{g}].hops[{h}]");
            if count > limits.max_targets {
                return Err(PlanError::Field {
                    field: here,
                    problem: format!(
                        "too many hops in one plan (more than {})",
                        limits.max_targets
                    ),
                });
            }
            *converted += 1;
            if *converted > limits.max_hops {
                return Err(PlanError::TooManyHops {
                    limit: limits.max_hops,
                });
            }
            hops.push(hop_from_proto(hop, &uri, &here, limits, converted)?);
        }
        parallel.push(Sequence { hops });
    }
    Ok(Plan::new(parallel, uri))
}

fn check_uri(uri: &str, field: &str, limits: &Limits) -> Result<String, PlanError> {
    let problem = if let Err(problem) = check_remainder(uri) {
        Some(problem)
    } else if uri.len() > limits.max_path_len {
        Some(format!("longer than {} bytes", limits.max_path_len))
    } else {
        match parse_path(uri, limits) {
            Ok(p) if p.parallel.is_empty() => None,
            Ok(_) => Some("starts with an @-command: put further calls in 'next'".into()),
            Err(e) => Some(format!("starts with an @-command that does not parse: {e}")),
        }
    };
    match problem {
        Some(problem) => Err(PlanError::Field {
            field: field.to_owned(),
            problem,
        }),
        None => Ok(uri.to_owned()),
    }
}

fn hop_from_proto(
    hop: &pb::Hop,
    uri: &str,
    field: &str,
    limits: &Limits,
    converted: &mut usize,
) -> Result<Hop, PlanError> {
    let field_error = |name: &str, problem: String| PlanError::Field {
        field: format!("{field}.{name}"),
        problem,
    };
    if hop.target.is_empty() {
        return Err(field_error(
            "target",
            "empty (write host or host:port)".into(),
        ));
    }
    let target = parse_target_text(&hop.target).map_err(|e| field_error("target", e))?;
    let Some(protocol) = protocol_from_proto(hop.protocol) else {
        let problem = format!("unknown value {}", hop.protocol);
        return Err(field_error("protocol", problem));
    };
    let mut headers = BTreeMap::new();
    for (name, value) in &hop.headers {
        let lower = name.to_ascii_lowercase();
        check_hop_header(&lower, value).map_err(|e| field_error("headers", e))?;
        if value.contains(']') {
            return Err(field_error(
                "headers",
                format!("the value of \"{name}\" holds ']', which no @-path can carry"),
            ));
        }
        headers.insert(lower, value.clone());
    }
    if let Some(behavior) = &hop.behavior {
        let mut behavior = behavior.clone();
        for directive in Directive::ALL {
            let Some((value, field)) = behavior_field(&mut behavior, directive) else {
                continue;
            };
            let (value, header) = (&*value, directive.header());
            if value.is_empty() {
                continue;
            }
            check_hop_header(header, value)
                .map_err(|e| field_error(&format!("behavior.{field}"), e))?;
            if value.contains(']') {
                let problem = "holds ']', which no @-path can carry".to_owned();
                return Err(field_error(&format!("behavior.{field}"), problem));
            }
            headers.insert(header.to_owned(), value.clone());
        }
    }
    let options = match &hop.options {
        Some(message) => options_from_proto(message, field, limits)?,
        None => HopOptions::default(),
    };
    let next = match &hop.next {
        Some(next) => plan_from_proto(next, uri, &format!("{field}.next"), limits, converted)?,
        None => Plan::leaf(uri),
    };
    let hop = Hop {
        target,
        protocol,
        headers,
        options,
        next: Arc::new(next),
    };
    hop.check_options()
        .map_err(|problem| field_error("options", problem))?;
    Ok(hop)
}

/// The message's options, each read as the @-path option of its name.
fn options_from_proto(
    message: &pb::HopOptions,
    field: &str,
    limits: &Limits,
) -> Result<HopOptions, PlanError> {
    let retries = (message.retries > 0).then(|| message.retries.to_string());
    let insecure = message.insecure.then(|| "true".to_owned());
    let reuse = message.reuse.then(|| "true".to_owned());
    let written = [
        ("method", "method", Some(&message.method)),
        ("body", "body", Some(&message.body)),
        ("path", "path", Some(&message.path)),
        ("timeout", "timeout", Some(&message.timeout)),
        ("connect", "connect", Some(&message.connect)),
        ("retries", "retries", retries.as_ref()),
        ("retry-on", "retry_on", Some(&message.retry_on)),
        ("backoff", "backoff", Some(&message.backoff)),
        ("expect", "expect", Some(&message.expect)),
        ("sni", "sni", Some(&message.sni)),
        ("insecure", "insecure", insecure.as_ref()),
        ("reuse", "reuse", reuse.as_ref()),
    ];
    let mut options = HopOptions::default();
    for (name, message_field, value) in written {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        options
            .set(name, value, limits)
            .map_err(|problem| PlanError::Field {
                field: format!("{field}.options.{message_field}"),
                problem,
            })?;
    }
    Ok(options)
}

/// The options as their message: each value as the @-path writes it.
fn options_to_proto(options: &HopOptions) -> pb::HopOptions {
    let mut message = pb::HopOptions {
        retries: options.retries,
        insecure: options.insecure,
        reuse: options.reuse,
        ..Default::default()
    };
    for (name, value) in options.pairs() {
        let slot = match name {
            "method" => &mut message.method,
            "body" => &mut message.body,
            "path" => &mut message.path,
            "timeout" => &mut message.timeout,
            "connect" => &mut message.connect,
            "retry-on" => &mut message.retry_on,
            "backoff" => &mut message.backoff,
            "expect" => &mut message.expect,
            "sni" => &mut message.sni,
            _ => continue,
        };
        *slot = value;
    }
    message
}

/// The message value of a protocol.
pub fn protocol_to_proto(protocol: Protocol) -> i32 {
    (match protocol {
        Protocol::Http => pb::Protocol::Http,
        Protocol::H2c => pb::Protocol::H2c,
        Protocol::Grpc => pb::Protocol::Grpc,
        Protocol::Https => pb::Protocol::Https,
        Protocol::Grpcs => pb::Protocol::Grpcs,
        Protocol::Tcp => pb::Protocol::Tcp,
    }) as i32
}

/// The protocol a message value names (unspecified is HTTP), if any.
pub fn protocol_from_proto(value: i32) -> Option<Protocol> {
    match pb::Protocol::try_from(value).ok()? {
        pb::Protocol::Unspecified | pb::Protocol::Http => Some(Protocol::Http),
        pb::Protocol::H2c => Some(Protocol::H2c),
        pb::Protocol::Grpc => Some(Protocol::Grpc),
        pb::Protocol::Https => Some(Protocol::Https),
        pb::Protocol::Grpcs => Some(Protocol::Grpcs),
        pb::Protocol::Tcp => Some(Protocol::Tcp),
    }
}

/// Converts a plan into its message. `x-mock-*` headers with a `Behavior`
/// field go there, so the message reads as a grpcurl user would write it.
pub fn plan_to_proto(plan: &Plan) -> pb::Plan {
    pb::Plan {
        parallel: plan
            .parallel
            .iter()
            .map(|group| pb::Sequence {
                hops: group
                    .hops
                    .iter()
                    .map(|hop| hop_to_proto(hop, &plan.uri))
                    .collect(),
            })
            .collect(),
        uri: plan.uri.clone(),
    }
}

/// A hop as its message; `uri` is its level's, which a `next` without one
/// inherits, so a leaf `next` is written only when its remainder differs.
fn hop_to_proto(hop: &Hop, uri: &str) -> pb::Hop {
    let mut behavior = pb::Behavior::default();
    let mut headers = std::collections::HashMap::new();
    for (name, value) in &hop.headers {
        let field = Directive::from_header(name).and_then(|d| behavior_field(&mut behavior, d));
        match field {
            Some((slot, _)) => *slot = value.clone(),
            None => {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
    let has_behavior = behavior != pb::Behavior::default();
    pb::Hop {
        target: hop.target.to_string(),
        protocol: protocol_to_proto(hop.protocol),
        headers,
        behavior: has_behavior.then_some(behavior),
        options: (!hop.options.is_empty()).then(|| options_to_proto(&hop.options)),
        next: (!hop.next.parallel.is_empty() || hop.next.uri != uri)
            .then(|| plan_to_proto(&hop.next)),
    }
}

/// The `CallRequest` that asks a service to run `plan`.
pub fn request_for(plan: &Plan) -> pb::CallRequest {
    pb::CallRequest {
        request: Some(pb::call_request::Request::Plan(plan_to_proto(plan))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Target;

    fn limits() -> Limits {
        Limits::default()
    }

    fn from_path(path: &str) -> Plan {
        parse_path(path, &limits()).unwrap()
    }

    #[test]
    fn path_plans_round_trip_through_messages() {
        for path in [
            "/",
            "/@a/end",
            "/@a|b,c:9/@grpc:d[x-mock-status=503][end-user=j]|h2c:e/end?q=1",
            "/@grpc:a/@http:b/@grpc:c/@h2c:d/x",
            "/@a[:method=POST][:body=1KiB][:timeout=3s][:retries=2][:retry-on=5xx]|grpcs:b[:sni=x.example][:insecure=true][:connect=250ms]/end",
            "/@ext[:expect=any][:path=%2Fstatus%2F418]/",
        ] {
            let plan = from_path(path);
            let message = request_for(&plan);
            let back = plan_from_request(&message, &limits()).unwrap();
            assert_eq!(back, plan, "{path}");
        }
    }

    #[test]
    fn behavior_fields_become_directive_headers() {
        let message = pb::CallRequest {
            request: Some(pb::call_request::Request::Plan(pb::Plan {
                uri: "/end".into(),
                parallel: vec![pb::Sequence {
                    hops: vec![pb::Hop {
                        target: "svc:9000".into(),
                        protocol: pb::Protocol::Grpc as i32,
                        behavior: Some(pb::Behavior {
                            delay: "10ms".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                }],
            })),
        };
        let plan = plan_from_request(&message, &limits()).unwrap();
        let hop = &plan.parallel[0].hops[0];
        assert_eq!(hop.target, Target::new("svc", Some(9000)));
        assert_eq!(hop.headers["x-mock-delay"], "10ms");
        assert_eq!(hop.next.uri, "/end");
        assert_eq!(
            plan_to_proto(&plan),
            match message.request.unwrap() {
                pb::call_request::Request::Plan(p) => p,
                _ => unreachable!(),
            }
        );
    }

    fn refused(plan: pb::Plan) -> String {
        let request = pb::CallRequest {
            request: Some(pb::call_request::Request::Plan(plan)),
        };
        plan_from_request(&request, &limits())
            .unwrap_err()
            .to_string()
    }

    fn hop(target: &str) -> pb::Hop {
        pb::Hop {
            target: target.into(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let one = |h: pb::Hop| pb::Plan {
            parallel: vec![pb::Sequence { hops: vec![h] }],
            uri: String::new(),
        };
        assert_eq!(
            refused(one(hop(""))),
            "plan.parallel[0].hops[0].target: empty (write host or host:port)"
        );
        assert!(refused(one(hop("a:0"))).starts_with("plan.parallel[0].hops[0].target: bad port"));
        let mut bad_protocol = hop("a");
        bad_protocol.protocol = 9;
        assert_eq!(
            refused(one(bad_protocol)),
            "plan.parallel[0].hops[0].protocol: unknown value 9"
        );
        let mut nested = hop("a");
        nested.next = Some(one(hop("b c")));
        assert!(refused(one(nested))
            .starts_with("plan.parallel[0].hops[0].next.parallel[0].hops[0].target:"));
        assert_eq!(
            refused(pb::Plan {
                parallel: vec![pb::Sequence::default()],
                uri: String::new()
            }),
            "plan.parallel[0].hops: empty group (give at least one hop, or leave the group out)"
        );
        assert_eq!(
            refused(pb::Plan {
                parallel: vec![],
                uri: "end".into()
            }),
            "plan.uri: must start with '/', got \"end\""
        );
        let path = pb::CallRequest {
            request: Some(pb::call_request::Request::Path("/@a||b".into())),
        };
        assert_eq!(
            plan_from_request(&path, &limits()).unwrap_err().to_string(),
            "empty target at position 4 in \"@a||b\""
        );
    }

    #[test]
    fn http_hops_may_go_on_to_different_subtrees() {
        let mut a = hop("a");
        a.next = Some(pb::Plan {
            parallel: vec![
                pb::Sequence {
                    hops: vec![pb::Hop {
                        next: Some(pb::Plan {
                            parallel: vec![pb::Sequence {
                                hops: vec![hop("x")],
                            }],
                            uri: String::new(),
                        }),
                        ..hop("b")
                    }],
                },
                pb::Sequence {
                    hops: vec![hop("c")],
                },
            ],
            uri: String::new(),
        });
        let request = pb::CallRequest {
            request: Some(pb::call_request::Request::Plan(pb::Plan {
                parallel: vec![pb::Sequence { hops: vec![a] }],
                uri: String::new(),
            })),
        };
        let plan = plan_from_request(&request, &limits()).unwrap();
        assert!(
            crate::plan::path::render_path(&plan.parallel[0].hops[0].next).is_err(),
            "no path says this: it travels as JSON"
        );
    }
}
