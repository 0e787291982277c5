//! The report as the gRPC `CallResponse`, and the `google.rpc.Status` that
//! carries it in a failed call's details, so a failure never loses the tree.

use prost::Message;

use super::{word, AnsweredBy, Forward, InboundProtocol, Outcome, ParallelForward, Report, Try};
use crate::caller::{Peer, Tls, XfccElement};
use crate::guard::proto::{decode_guarded, Guarded, Kind};
use crate::pb;
use crate::plan::proto::{protocol_from_proto, protocol_to_proto};

/// The type URL of a `CallResponse` packed in a `google.protobuf.Any`.
pub const CALL_RESPONSE_TYPE_URL: &str = "type.googleapis.com/servicemock.v1.CallResponse";

/// `google.rpc.Status`, the standard payload of `grpc-status-details-bin`.
pub use tonic_types::pb::Status as RpcStatus;

/// Encodes the details of a failed `Call`: a `google.rpc.Status` holding the
/// whole `CallResponse` as its one detail.
pub fn encode_status_details(code: i32, message: &str, response: &pb::CallResponse) -> Vec<u8> {
    RpcStatus {
        code,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: CALL_RESPONSE_TYPE_URL.to_owned(),
            value: response.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

/// Finds the `CallResponse` in the details of a failed `Call`, if any.
/// Decoding is guarded ([`crate::wire`]): a hostile downstream's details
/// cannot nest deeper than any report may.
pub fn decode_status_details(details: &[u8]) -> Option<pb::CallResponse> {
    let status: RpcStatus = decode_guarded(details).ok()?;
    status
        .details
        .iter()
        .find(|any| any.type_url == CALL_RESPONSE_TYPE_URL)
        .and_then(|any| decode_guarded::<pb::CallResponse>(&any.value).ok())
}

impl From<&Report> for pb::CallResponse {
    fn from(r: &Report) -> Self {
        pb::CallResponse {
            service: r.service.to_string(),
            version: r.version.to_string(),
            host: r.host.to_string(),
            namespace: r.namespace.clone(),
            pod_ip: r.pod_ip.clone(),
            protocol: r.protocol.as_str().to_owned(),
            received_date: r.received_date.clone(),
            message: r.message.clone(),
            duration_ms: r.duration_ms,
            request_info: r.request_info.to_vec(),
            request_id: r.request_id.clone(),
            parallel_forwards: r
                .parallel_forwards
                .iter()
                .map(|g| pb::ParallelForward {
                    sequential_forwards: g
                        .sequential_forwards
                        .iter()
                        .map(forward_to_proto)
                        .collect(),
                })
                .collect(),
            injected: r.injected.clone(),
            padding: r.padding.clone(),
            timed_out: r.timed_out,
            attempt: r.attempt,
            r#try: r.try_number,
            stream_message: r.stream_message,
            plan: r.plan.clone(),
            method: r.method.to_string(),
            body_bytes: r.body_bytes,
            body_sha256: r.body_sha256.clone(),
            tls: r.tls.as_deref().map(tls_to_proto),
            peer: r.peer.as_deref().map(peer_to_proto),
            trace_id: r.trace_id.clone(),
            span_id: r.span_id.clone(),
            trace_url: r.trace_url.clone(),
        }
    }
}

fn forward_to_proto(f: &Forward) -> pb::Forward {
    pb::Forward {
        url: f.url.clone(),
        result: f.result.as_str().to_owned(),
        protocol: protocol_to_proto(f.protocol),
        status: f.status,
        start_ms: f.start_ms,
        duration_ms: f.duration_ms,
        error: f.error.clone().unwrap_or_default(),
        answered_by: f
            .answered_by
            .as_ref()
            .map(AnsweredBy::to_string)
            .unwrap_or_default(),
        received_as: f
            .received_as
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        response: f.response.as_deref().map(pb::CallResponse::from),
        options: f.options.clone().unwrap_or_default(),
        tries: f
            .tries
            .iter()
            .map(|t| pb::Try {
                r#try: t.number,
                result: t.result.as_str().to_owned(),
                status: t.status,
                start_ms: t.start_ms,
                duration_ms: t.duration_ms,
                error: t.error.clone().unwrap_or_default(),
                answered_by: t
                    .answered_by
                    .as_ref()
                    .map(AnsweredBy::to_string)
                    .unwrap_or_default(),
                response: t.response.as_deref().map(pb::CallResponse::from),
            })
            .collect(),
    }
}

/// A word another servicemock sent that this one does not know is shown,
/// not guessed at: the report's message or the hop's error names it.
fn unknown_word(what: &str, word: &str) -> String {
    format!("(the answer named its {what} {word:?}, a word this servicemock does not know)")
}

impl From<pb::CallResponse> for Report {
    fn from(r: pb::CallResponse) -> Self {
        let mut message = r.message;
        let protocol = word::Word::from_word(&r.protocol).unwrap_or_else(|| {
            message = format!("{message} {}", unknown_word("protocol", &r.protocol));
            InboundProtocol::default()
        });
        Report {
            received_date: r.received_date,
            message,
            request_info: r.request_info.into(),
            service: r.service.into(),
            version: r.version.into(),
            host: r.host.into(),
            namespace: r.namespace,
            pod_ip: r.pod_ip,
            protocol,
            request_id: r.request_id,
            duration_ms: r.duration_ms,
            parallel_forwards: r
                .parallel_forwards
                .into_iter()
                .map(|g| ParallelForward {
                    sequential_forwards: g
                        .sequential_forwards
                        .into_iter()
                        .map(forward_from_proto)
                        .collect(),
                })
                .collect(),
            injected: r.injected,
            padding: r.padding,
            timed_out: r.timed_out,
            attempt: r.attempt,
            try_number: r.r#try,
            stream_message: r.stream_message,
            plan: r.plan,
            method: r.method.into(),
            body_bytes: r.body_bytes,
            body_sha256: r.body_sha256,
            tls: r.tls.map(|t| {
                Box::new(Tls {
                    version: t.version,
                    cipher: t.cipher,
                    alpn: t.alpn,
                    sni: t.sni,
                })
            }),
            peer: r.peer.map(|p| Box::new(peer_from_proto(p))),
            trace_id: r.trace_id,
            span_id: r.span_id,
            trace_url: r.trace_url,
        }
    }
}

fn tls_to_proto(t: &Tls) -> pb::TlsInfo {
    pb::TlsInfo {
        version: t.version.clone(),
        cipher: t.cipher.clone(),
        alpn: t.alpn.clone(),
        sni: t.sni.clone(),
    }
}

fn peer_to_proto(p: &Peer) -> pb::Peer {
    pb::Peer {
        source: p.source.clone(),
        principal: p.principal.clone(),
        subject: p.subject.clone(),
        uri: p.uri.clone(),
        dns: p.dns.clone(),
        serial: p.serial.clone(),
        not_after: p.not_after.clone(),
        elements: p
            .elements
            .iter()
            .map(|e| pb::XfccElement {
                by: e.by.clone(),
                hash: e.hash.clone(),
                subject: e.subject.clone(),
                uri: e.uri.clone(),
                dns: e.dns.clone(),
            })
            .collect(),
        omitted: p.omitted,
        unparsed: p.unparsed.clone(),
        error: p.error.clone(),
    }
}

fn peer_from_proto(p: pb::Peer) -> Peer {
    Peer {
        source: p.source,
        principal: p.principal,
        subject: p.subject,
        uri: p.uri,
        dns: p.dns,
        serial: p.serial,
        not_after: p.not_after,
        elements: p
            .elements
            .into_iter()
            .map(|e| XfccElement {
                by: e.by,
                hash: e.hash,
                subject: e.subject,
                uri: e.uri,
                dns: e.dns,
            })
            .collect(),
        omitted: p.omitted,
        unparsed: p.unparsed,
        error: p.error,
    }
}

fn forward_from_proto(f: pb::Forward) -> Forward {
    let mut error = (!f.error.is_empty()).then_some(f.error);
    // A hop this servicemock cannot read whole is a bad answer that says
    // what it could not read, never a guess.
    let mut unreadable = |note: String| {
        error = Some(match error.take() {
            Some(e) => format!("{e} {note}"),
            None => note,
        });
    };
    let mut result = word::Word::from_word(&f.result).unwrap_or_else(|| {
        unreadable(unknown_word("hop result", &f.result));
        Outcome::BadAnswer
    });
    let protocol = protocol_from_proto(f.protocol).unwrap_or_else(|| {
        unreadable(format!(
            "(the answer named its hop protocol by the number {}, which this servicemock does not know)",
            f.protocol
        ));
        result = Outcome::BadAnswer;
        crate::plan::Protocol::default()
    });
    Forward {
        url: f.url,
        result,
        protocol,
        status: f.status,
        start_ms: f.start_ms,
        duration_ms: f.duration_ms,
        error,
        answered_by: (!f.answered_by.is_empty()).then(|| AnsweredBy::parse(&f.answered_by)),
        received_as: <InboundProtocol as super::word::Word>::from_word(&f.received_as),
        response: f.response.map(|r| Report::from(r).into()),
        options: (!f.options.is_empty()).then_some(f.options),
        tries: f.tries.into_iter().map(try_from_proto).collect(),
    }
}

fn try_from_proto(t: pb::Try) -> Try {
    let mut error = (!t.error.is_empty()).then_some(t.error);
    let result = word::Word::from_word(&t.result).unwrap_or_else(|| {
        let note = unknown_word("try result", &t.result);
        error = Some(error.take().map_or(note.clone(), |e| format!("{e} {note}")));
        Outcome::BadAnswer
    });
    Try {
        number: t.r#try,
        result,
        status: t.status,
        start_ms: t.start_ms,
        duration_ms: t.duration_ms,
        error,
        answered_by: (!t.answered_by.is_empty()).then(|| AnsweredBy::parse(&t.answered_by)),
        response: t.response.map(|r| Report::from(r).into()),
    }
}

impl Guarded for RpcStatus {
    const KIND: Kind = Kind::RpcStatus;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let leaf = Report {
            service: "b".into(),
            protocol: InboundProtocol::Grpc,
            duration_ms: 1.5,
            ..Default::default()
        };
        Report {
            service: "a".into(),
            version: "v2".into(),
            request_info: vec!["GET / HTTP/1.1".to_string()].into(),
            parallel_forwards: vec![ParallelForward {
                sequential_forwards: vec![
                    Forward {
                        url: "grpc://b:8080".into(),
                        result: Outcome::Ok,
                        protocol: crate::plan::Protocol::Grpc,
                        status: Some(0),
                        response: Some(leaf.into()),
                        ..Default::default()
                    },
                    Forward {
                        url: "http://c:8080/".into(),
                        result: Outcome::Refused,
                        protocol: crate::plan::Protocol::Http,
                        error: Some("connection refused".into()),
                        ..Default::default()
                    },
                ],
            }]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn report_round_trips_through_call_response() {
        let report = sample();
        assert_eq!(Report::from(pb::CallResponse::from(&report)), report);
    }

    #[test]
    fn hops_this_servicemock_cannot_read_are_bad_answers_that_say_why() {
        let mut response = pb::CallResponse::from(&sample());
        let ok_hop = response.parallel_forwards[0].sequential_forwards[0].clone();
        let unknown_protocol = pb::Forward {
            protocol: 9,
            ..ok_hop.clone()
        };
        let unknown_result = pb::Forward {
            result: "teleported".into(),
            error: "it went".into(),
            ..ok_hop
        };
        response.parallel_forwards[0].sequential_forwards = vec![unknown_protocol, unknown_result];
        let report = Report::from(response);
        let hops: Vec<&Forward> = report.forwards().collect();
        assert_eq!(hops[0].result, Outcome::BadAnswer);
        assert!(hops[0]
            .error
            .as_deref()
            .unwrap()
            .contains("hop protocol by the number 9"));
        assert_eq!(hops[1].result, Outcome::BadAnswer);
        assert!(hops[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("it went (the answer named its hop result \"teleported\""));
        assert_eq!(report.failed_hops(), 2);
    }

    #[test]
    fn details_carry_the_whole_response() {
        let response = pb::CallResponse::from(&sample());
        let bytes = encode_status_details(14, "hop failed", &response);
        assert_eq!(decode_status_details(&bytes), Some(response));
        assert_eq!(decode_status_details(b"junk"), None);
    }
}
