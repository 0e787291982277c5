//! `servicemock load --stream N`: each call of the run is one `Converse`
//! stream of N messages, each message the hop's plan. Every answer is
//! counted as a call would be (who answered at each position), and each
//! stream says how many distinct pods answered its messages: with Envoy
//! balancing gRPC per stream, that is 1 however many pods there are.

use std::time::{Duration, Instant};

use crate::exec::Executor;
use crate::pb;
use crate::plan::Hop;
use crate::report::{Forward, Outcome, Report};

/// The answers of one stream, each as the hop a call would have been and
/// how long it took since the message before (the first: since the stream
/// was opened).
pub(super) async fn converse_once(
    executor: &Executor,
    hop: &Hop,
    messages: u32,
    timeout: Duration,
) -> Vec<(Forward, Duration)> {
    let url = format!(
        "{}://{}/servicemock.v1.MockService/Converse",
        hop.protocol,
        hop.target.authority()
    );
    let failed = |result: Outcome, error: String, took: Duration| {
        let forward = Forward {
            url: url.clone(),
            protocol: hop.protocol,
            result,
            error: Some(error),
            duration_ms: took.as_secs_f64() * 1000.0,
            ..Forward::default()
        };
        vec![(forward, took)]
    };
    let started = Instant::now();
    let channel = match executor.grpc_channel(&hop.target, hop.protocol) {
        Ok(channel) => channel,
        Err(e) => return failed(Outcome::Error, e, started.elapsed()),
    };
    let call = pb::ConverseRequest {
        request: Some(match crate::plan::proto::request_for(&hop.next).request {
            Some(pb::call_request::Request::Plan(plan)) => {
                pb::converse_request::Request::Plan(plan)
            }
            Some(pb::call_request::Request::Path(path)) => {
                pb::converse_request::Request::Path(path)
            }
            None => pb::converse_request::Request::Path("/".into()),
        }),
    };
    let mut request = tonic::Request::new(futures::stream::iter(vec![call; messages as usize]));
    *request.metadata_mut() = crate::exec::metadata_of(&hop.headers);
    request.set_timeout(timeout);
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        let why = crate::exec::failure::error_chain(&e);
        return failed(Outcome::Refused, why, started.elapsed());
    }
    let path = http::uri::PathAndQuery::from_static("/servicemock.v1.MockService/Converse");
    let codec = crate::wire::GuardedCodec::<pb::ConverseRequest, pb::CallResponse>::streaming();
    let ended = |status: tonic::Status, took| {
        let outcome = match status.code() {
            tonic::Code::DeadlineExceeded => Outcome::Timeout,
            tonic::Code::Unavailable => Outcome::Refused,
            _ => Outcome::Error,
        };
        failed(outcome, format!("the stream ended: {status}"), took).remove(0)
    };
    let mut stream = match tokio::time::timeout(timeout, grpc.streaming(request, path, codec)).await
    {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => return vec![ended(status, started.elapsed())],
        Err(_) => {
            let why = format!("no answer within {}", crate::units::human(timeout));
            return failed(Outcome::Timeout, why, started.elapsed());
        }
    };
    let mut answers = Vec::with_capacity(messages as usize);
    let mut since = Instant::now();
    while answers.len() < messages as usize {
        let next = tokio::time::timeout(timeout, stream.message()).await;
        let took = since.elapsed();
        since = Instant::now();
        match next {
            Ok(Ok(Some(response))) => {
                let report = Report::from(response);
                let result = if report.deepest_failure().is_some() {
                    Outcome::Status
                } else {
                    Outcome::Ok
                };
                let forward = Forward {
                    url: url.clone(),
                    protocol: hop.protocol,
                    result,
                    status: Some(0),
                    duration_ms: took.as_secs_f64() * 1000.0,
                    response: Some(report.into()),
                    ..Forward::default()
                };
                answers.push((forward, took));
            }
            Ok(Ok(None)) => {
                let why = format!(
                    "the stream ended after {} of {messages} answers",
                    answers.len()
                );
                answers.push(failed(Outcome::Error, why, took).remove(0));
                break;
            }
            Ok(Err(status)) => {
                answers.push(ended(status, took));
                break;
            }
            Err(_) => {
                let why = format!("no answer within {}", crate::units::human(timeout));
                answers.push(failed(Outcome::Timeout, why, took).remove(0));
                break;
            }
        }
    }
    answers
}
