//! The gRPC streams: `CallStream` runs one call `count` times, `interval`
//! apart, one report per message; `Converse` answers each message of a
//! bidirectional stream with its report. Each message's plan runs through
//! the same pipeline as a `Call`, under a deadline of its own
//! (`--request-timeout`, not a share of the stream's life), and every report
//! says which message of the stream it is (`StreamMessage`), so who answered
//! is visible message by message.
//!
//! A stream ends with OK when its messages are done (or the client closes
//! its side), with the first failure's status when asked
//! (`stop_on_failure`), when a stream directive says so
//! (`x-mock-stream-status`, `x-mock-stream-reset`), or with UNAVAILABLE when
//! the service shuts down and the stream outlives `--shutdown-grace`.
//! Messages are made as the client reads them (nothing queues for a client
//! that does not read).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Code, Status};

use super::grpc::{failed, refusal, run_call, Caller};
use super::pipeline::Verdict;
use super::Service;
use crate::behavior::stream::{StreamDirectives, StreamEnd, MAX_STREAM_MESSAGES};
use crate::pb;

/// The messages of a stream, as tonic sends them.
pub(super) type Messages = Pin<Box<dyn Stream<Item = Result<pb::CallResponse, Status>> + Send>>;

/// Longest `interval` between the runs of a `CallStream`.
pub(super) const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The trailer a stream ends with when a directive resets it: the front
/// turns a stream whose trailers carry it into an HTTP/2 reset, so it never
/// reaches the client.
pub(super) const RESET_MARK: &str = "servicemock-reset-stream";

/// How long a stream reset on purpose waits for its last messages to leave.
const FLUSH_BEFORE_RESET: Duration = Duration::from_millis(50);

/// `CallStream`: checks the request, then runs its call once per message.
pub(super) fn call_stream(
    service: Arc<Service>,
    request: tonic::Request<pb::CallStreamRequest>,
) -> Result<tonic::Response<Messages>, Status> {
    let (metadata, extensions, message) = request.into_parts();
    let (caller, directives) = open(&service, &extensions, metadata.into_headers())?;
    let count = match message.count {
        0 => 1,
        n if n <= MAX_STREAM_MESSAGES => n,
        n => {
            return Err(invalid(
                "count",
                format!("count {n} is past the bound of {MAX_STREAM_MESSAGES} messages"),
            ))
        }
    };
    let interval = match message.interval.trim() {
        "" => Duration::ZERO,
        text => crate::units::parse_duration(text)
            .ok()
            .filter(|d| *d <= MAX_INTERVAL)
            .ok_or_else(|| {
                invalid(
                    "interval",
                    format!(
                        "interval \"{text}\": write a duration such as 100ms or 2s, at most 1h"
                    ),
                )
            })?,
    };
    let call = message.call.unwrap_or_default();
    let stop_on_failure = message.stop_on_failure;
    let flow = Flow::new(service, caller, directives, "CallStream");
    Ok(tonic::Response::new(Box::pin(futures::stream::unfold(
        flow,
        move |mut flow| {
            let call = call.clone();
            async move {
                let next = |sent| async move { (sent < count).then_some((call, sent > 0)) };
                let item = flow.step(next, interval, stop_on_failure).await?;
                Some((item, flow))
            }
        },
    ))))
}

/// `Converse`: answers each message in with its report, until the client
/// closes its side.
pub(super) fn converse(
    service: Arc<Service>,
    request: tonic::Request<tonic::Streaming<pb::ConverseRequest>>,
) -> Result<tonic::Response<Messages>, Status> {
    let (metadata, extensions, input) = request.into_parts();
    let (caller, directives) = open(&service, &extensions, metadata.into_headers())?;
    let flow = Flow::new(service, caller, directives, "Converse");
    Ok(tonic::Response::new(Box::pin(futures::stream::unfold(
        (input, flow),
        |(mut input, mut flow)| async move {
            let item = flow
                .step(
                    |_| {
                        let next = input.message();
                        async move {
                            match next.await {
                                Ok(Some(call)) => Some((call_request(call), false)),
                                // The client closed its side.
                                Ok(None) => None,
                                // The client went away, or sent what is no
                                // CallRequest (the guard's status names it).
                                Err(status) => {
                                    tracing::debug!(%status, "Converse: the stream in ended");
                                    None
                                }
                            }
                        }
                    },
                    Duration::ZERO,
                    false,
                )
                .await?;
            Some((item, (input, flow)))
        },
    ))))
}

/// A Converse message as the CallRequest it is.
fn call_request(message: pb::ConverseRequest) -> pb::CallRequest {
    use pb::call_request::Request as Out;
    use pb::converse_request::Request as In;
    pb::CallRequest {
        request: message.request.map(|r| match r {
            In::Plan(plan) => Out::Plan(plan),
            In::Path(path) => Out::Path(path),
        }),
    }
}

/// Reads who calls and the stream directives, and takes the headers only
/// the stream as a whole has (its directives, its deadline) off what each
/// message is admitted with.
fn open(
    service: &Service,
    extensions: &http::Extensions,
    mut headers: http::HeaderMap,
) -> Result<(Caller, StreamDirectives), Status> {
    let directives = StreamDirectives::from_headers(&headers).map_err(|e| {
        service.metrics.refused(crate::metrics::Refusal::BadRequest);
        invalid("metadata", e.to_string())
    })?;
    for name in crate::behavior::stream::STREAM_DIRECTIVES {
        headers.remove(name);
    }
    headers.remove("grpc-timeout");
    Ok((Caller::of(extensions, headers), directives))
}

/// One stream's progress: how many messages went out, and whether it ended.
struct Flow {
    service: Arc<Service>,
    caller: Caller,
    directives: StreamDirectives,
    rpc: &'static str,
    sent: u32,
    /// The status to end with after the message just sent.
    ending: Option<Status>,
    done: bool,
}

impl Flow {
    fn new(
        service: Arc<Service>,
        caller: Caller,
        directives: StreamDirectives,
        rpc: &'static str,
    ) -> Flow {
        Flow {
            service,
            caller,
            directives,
            rpc,
            sent: 0,
            ending: None,
            done: false,
        }
    }

    /// The stream's next item: the report of the next call `next` gives
    /// (with whether to wait `interval` first), or how the stream ends;
    /// None once it has ended.
    async fn step<F, Fut>(
        &mut self,
        next: F,
        interval: Duration,
        stop_on_failure: bool,
    ) -> Option<Result<pb::CallResponse, Status>>
    where
        F: FnOnce(u32) -> Fut,
        Fut: std::future::Future<Output = Option<(pb::CallRequest, bool)>>,
    {
        if self.done {
            return None;
        }
        if let Some(status) = self.ending.take() {
            return self.end(status);
        }
        let here = self
            .service
            .here(self.caller.attempt_number(), self.caller.principal());
        if let Some(end) = self.directives.end_after(self.sent, &here) {
            let said = StreamDirectives::describe(end, self.sent);
            return self.end(match end {
                StreamEnd::Status(code) => Status::new(Code::from(code), said),
                StreamEnd::Reset => {
                    // The messages sent so far reach the client first: a
                    // reset drops what the connection has not written yet.
                    tokio::time::sleep(FLUSH_BEFORE_RESET).await;
                    let mut status = Status::aborted(said);
                    status
                        .metadata_mut()
                        .insert(RESET_MARK, tonic::metadata::MetadataValue::from_static("1"));
                    status
                }
            });
        }
        let service = self.service.clone();
        let over = service.streams_over();
        let run = async {
            let (call, wait) = next(self.sent).await?;
            if wait && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            Some(run_call(&service, &self.caller, &call, self.rpc).await)
        };
        let ran = tokio::select! {
            ran = run => ran,
            () = over => {
                let said = format!(
                    "servicemock is shutting down: {} ended after {} message(s) (--shutdown-grace)",
                    self.rpc, self.sent
                );
                return self.end(Status::unavailable(said));
            }
        };
        match ran {
            None => {
                self.done = true;
                self.log("OK");
                None
            }
            Some(Err(refused)) => self.end(refusal(&service, refused)),
            Some(Ok((mut report, verdict))) => {
                self.sent += 1;
                report.stream_message = self.sent;
                if stop_on_failure && verdict != Verdict::Ok {
                    self.ending = failed(&service, &report, &verdict);
                }
                Some(Ok(pb::CallResponse::from(&*report)))
            }
        }
    }

    fn end(&mut self, status: Status) -> Option<Result<pb::CallResponse, Status>> {
        self.done = true;
        self.log(crate::codes::grpc_code_name(status.code() as i32));
        Some(Err(status))
    }

    /// One line when the stream ends: how many messages it carried, and
    /// how it ended (the access log's level, as for requests).
    fn log(&self, ended: &str) {
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    service = %self.service.identity.service,
                    rpc = self.rpc,
                    messages = self.sent,
                    ended,
                    "stream"
                )
            };
        }
        if self.service.executor.settings().access_log {
            line!(info);
        } else {
            line!(debug);
        }
    }
}

/// INVALID_ARGUMENT naming the field, with a `google.rpc.BadRequest`.
fn invalid(field: &str, message: String) -> Status {
    use tonic_types::StatusExt as _;
    let mut details = tonic_types::ErrorDetails::new();
    details.add_bad_request_violation(field, message.clone());
    Status::with_error_details(Code::InvalidArgument, message, details)
}
