//! The gRPC side: `servicemock.v1.MockService/Call` (and its streams, in
//! `streams.rs`), `grpc.health.v1.Health` and server reflection (v1 and
//! v1alpha), so grpcurl needs no .proto file.
//!
//! A call whose hops all succeeded answers OK with the `CallResponse`. When a
//! hop failed, the call answers UNAVAILABLE and the whole `CallResponse`
//! travels in the status details (a `google.rpc.Status`), so retries and
//! outlier detection see a failure and the tree is still there to read.

use std::sync::Arc;

use axum::Router;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tonic_types::StatusExt as _;

use super::pipeline::{self, Refused, Verdict};
use super::Service;
use crate::codes::grpc_code_name;
use crate::exec::context::Told;
use crate::exec::Inbound;
use crate::pb;
use crate::pb::mock_service_server::{MockService, MockServiceServer};
use crate::plan::path::render_path;
use crate::plan::proto::plan_from_request;
use crate::plan::Plan;
use crate::report::proto::encode_status_details;
use crate::report::InboundProtocol;
use crate::report::{trim, Report};

/// The gRPC health state of one service.
#[derive(Clone)]
pub(super) struct Health(HealthReporter);

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Health")
    }
}

impl Health {
    /// Reports SERVING or NOT_SERVING for the server and for MockService.
    pub(super) async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.0.set_service_status("", status).await;
        self.0
            .set_service_status(
                <MockServiceServer<GrpcMockService> as tonic::server::NamedService>::NAME,
                status,
            )
            .await;
    }
}

/// Largest message health and reflection accept. Their codecs are tonic's
/// own, not [`crate::wire`]'s guard, and prost decodes without a recursion
/// limit here: at 1 KiB no nesting of groups goes deeper than a 2 MiB stack
/// holds, even unoptimised (tests/hostile.rs; 4 KiB did not), and a health
/// check or a reflection request is a few dozen bytes.
const SMALL_MESSAGE: usize = 1024;

/// The gRPC routes of one service, and its health handle.
pub(super) async fn router(service: Arc<Service>) -> (Router, Health) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<MockServiceServer<GrpcMockService>>()
        .await;
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(MockServiceServer::new(GrpcMockService { service }))
        .add_service(health_service.max_decoding_message_size(SMALL_MESSAGE));
    // Each reflection version lists every service, the other version included.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error details (BadRequest), so grpcurl shows them.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    // The descriptor sets are compiled in; they fail to load only if the build is broken.
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => {
            routes
                .add_service(v1.max_decoding_message_size(SMALL_MESSAGE))
                .add_service(v1alpha.max_decoding_message_size(SMALL_MESSAGE));
        }
        (Err(e), _) | (_, Err(e)) => tracing::error!("server reflection is off: {e}"),
    }
    (
        routes.routes().prepare().into_axum_router(),
        Health(reporter),
    )
}

/// `servicemock.v1.MockService` on top of the shared executor.
pub(super) struct GrpcMockService {
    service: Arc<Service>,
}

#[tonic::async_trait]
impl MockService for GrpcMockService {
    async fn call(
        &self,
        request: tonic::Request<pb::CallRequest>,
    ) -> Result<tonic::Response<pb::CallResponse>, Status> {
        let service = &*self.service;
        let (metadata, extensions, message) = request.into_parts();
        let caller = Caller::of(&extensions, metadata.into_headers());
        let (report, verdict) = run_call(service, &caller, &message, "Call")
            .await
            .map_err(|r| refusal(service, r))?;
        answer(service, &report, &verdict)
    }

    type CallStreamStream = super::streams::Messages;

    async fn call_stream(
        &self,
        request: tonic::Request<pb::CallStreamRequest>,
    ) -> Result<tonic::Response<Self::CallStreamStream>, Status> {
        super::streams::call_stream(self.service.clone(), request)
    }

    type ConverseStream = super::streams::Messages;

    async fn converse(
        &self,
        request: tonic::Request<tonic::Streaming<pb::ConverseRequest>>,
    ) -> Result<tonic::Response<Self::ConverseStream>, Status> {
        super::streams::converse(self.service.clone(), request)
    }
}

/// Who sent a gRPC request and with what: its headers, which attempt it
/// is, and the TLS session and peer it came with — read once per request
/// (per stream, for a stream's messages).
pub(super) struct Caller {
    pub(super) headers: http::HeaderMap,
    attempt: Option<crate::attempts::Attempt>,
    tls: Option<crate::caller::Tls>,
    peer: Option<crate::caller::Peer>,
}

impl Caller {
    pub(super) fn of(extensions: &http::Extensions, headers: http::HeaderMap) -> Caller {
        let connection = extensions.get::<super::connection::Connection>();
        let forwarded = crate::exec::context::first_value(&headers, &crate::caller::XFCC);
        let (tls, peer) = crate::caller::of_request(connection.map(|c| &*c.tls), forwarded);
        Caller {
            attempt: extensions.get().copied(),
            headers,
            tls,
            peer,
        }
    }

    /// The principal of whoever called, when known.
    pub(super) fn principal(&self) -> Option<&str> {
        self.peer.as_ref().map(|p| p.principal.as_str())
    }

    /// Which attempt of its request this is (1 unless a retry).
    pub(super) fn attempt_number(&self) -> u32 {
        self.attempt.unwrap_or_default().number
    }
}

/// Runs one `CallRequest` (of `Call`, or one message of a stream, `rpc`
/// naming which) through the shared pipeline.
pub(super) async fn run_call(
    service: &Service,
    caller: &Caller,
    message: &pb::CallRequest,
    rpc: &str,
) -> Result<(Box<Report>, Verdict), Refused> {
    let limits = service.executor.settings().limits;
    let headers = &caller.headers;
    let admission = pipeline::admit(
        service,
        &Told::of(headers),
        headers,
        caller.attempt.as_ref(),
        caller.principal(),
    )?;
    let plan = plan_from_request(message, &limits);
    // The line says what was asked, before a default cascade stands in.
    let line = plan
        .as_ref()
        .ok()
        .map(|plan| request_line(message, plan, rpc));
    let chosen = pipeline::check_plan(service, &admission, headers, plan.map(Arc::new))?;
    let line = line.unwrap_or_else(|| request_line(message, &chosen.plan, rpc));
    let mut inbound = Inbound::new(InboundProtocol::Grpc, line, headers.clone());
    inbound.set_caller(caller.tls.clone(), caller.peer.clone());
    let what = inbound.request_line.clone();
    pipeline::run(service, &chosen, &inbound, &admission, &what).await
}

/// The answer to a finished call: OK with the report, or the verdict's
/// status carrying the report in its details.
fn answer(
    service: &Service,
    report: &Report,
    verdict: &Verdict,
) -> Result<tonic::Response<pb::CallResponse>, Status> {
    match failed(service, report, verdict) {
        None => {
            let mut response = tonic::Response::new(pb::CallResponse::from(report));
            *response.metadata_mut() = identity_metadata(service, report);
            Ok(response)
        }
        Some(status) => Err(status),
    }
}

/// The status a failed verdict answers with (the report in its details),
/// or None when every hop succeeded.
pub(super) fn failed(service: &Service, report: &Report, verdict: &Verdict) -> Option<Status> {
    let message = match verdict {
        Verdict::Ok => return None,
        Verdict::Injected { .. } | Verdict::TimedOut => report.message.clone(),
        Verdict::HopsFailed {
            failed,
            total,
            root_url,
            root_error,
        } => format!(
            "{failed} of {total} hop(s) failed; root cause {root_url}: {root_error}; the CallResponse is in the details"
        ),
    };
    let code = Code::from(verdict.grpc_code());
    Some(failure(service, code, message, report))
}

/// The gRPC answer to a refused request: INVALID_ARGUMENT naming the
/// field (a `google.rpc.BadRequest` detail, as grpcurl shows), or
/// FAILED_PRECONDITION with the report of a request past the depth limit.
pub(super) fn refusal(service: &Service, refused: Refused) -> Status {
    let code = refused.grpc_code();
    match refused {
        Refused::BadRequest { message, field } => {
            let mut details = tonic_types::ErrorDetails::new();
            details.add_bad_request_violation(field, message.clone());
            Status::with_error_details(code, message, details)
        }
        Refused::TooDeep(report) => {
            let message = report.message.clone();
            failure(service, code, message, &report)
        }
    }
}

/// The first line of `RequestInfo` for a call: the method and what it asked.
fn request_line(message: &pb::CallRequest, plan: &Plan, rpc: &str) -> String {
    let asked = match &message.request {
        Some(pb::call_request::Request::Path(path)) => format!("path={path}"),
        _ => match render_path(plan) {
            Ok(path) => format!("plan={path}"),
            Err(_) => format!("plan=({} hops at the first level)", plan.hops().count()),
        },
    };
    format!("POST /servicemock.v1.MockService/{rpc} {asked}")
}

/// Longest `grpc-message` of a failed call; the whole story is in the details.
const MAX_STATUS_MESSAGE: usize = 512;

/// A failed call that still carries the report in its details, trimmed
/// ([`trim::fit`]) so that the trailers stay within `--grpc-details-budget`.
fn failure(service: &Service, code: Code, message: String, report: &Report) -> Status {
    let message = trim::clip(&message, MAX_STATUS_MESSAGE);
    let metadata = identity_metadata(service, report);
    let budget = service.executor.settings().grpc_details_budget;
    // What the other trailers take: each entry costs its name, its value
    // and 32 bytes (HTTP/2's accounting, which clients limit).
    let others: usize = metadata
        .clone()
        .into_headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 32)
        .sum::<usize>()
        + "grpc-status".len()
        + 2
        + 32
        + "grpc-message".len()
        + message.len() * 3
        + 32
        + "grpc-status-details-bin".len()
        + 32
        + 64;
    // base64 makes 4 bytes of 3; the Status envelope and the Any take ~80.
    let room = budget.saturating_sub(others) / 4 * 3;
    let response = trim::fit(pb::CallResponse::from(report), room.saturating_sub(96));
    let details = encode_status_details(code as i32, &message, &response);
    tracing::debug!(
        code = grpc_code_name(code as i32),
        bytes = details.len(),
        "call failed"
    );
    Status::with_details_and_metadata(code, message, details.into(), metadata)
}
/// The identity headers of a report as gRPC metadata.
fn identity_metadata(service: &Service, report: &Report) -> MetadataMap {
    MetadataMap::from_headers(service.identity_headers.of(None, report, None))
}
