//! The gRPC side: `servicemock.v1.MockService/Call`, `grpc.health.v1.Health`
//! and server reflection (v1 and v1alpha), so grpcurl needs no .proto file.
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

use super::{identity_headers, Service};
use crate::behavior::grpc_code_name;
use crate::exec::context::trace_id;
use crate::exec::Inbound;
use crate::metrics::Refusal;
use crate::pb;
use crate::pb::mock_service_server::{MockService, MockServiceServer};
use crate::plan::path::render_path;
use crate::plan::proto::plan_from_request;
use crate::plan::Plan;
use crate::report::proto::encode_status_details;
use crate::report::Report;

/// The gRPC health state of one service.
#[derive(Clone)]
pub struct Health(HealthReporter);

impl Health {
    /// Reports NOT_SERVING for the server and for MockService.
    pub async fn set_not_serving(&self) {
        self.0
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.0
            .set_not_serving::<MockServiceServer<GrpcMockService>>()
            .await;
    }
}

/// The gRPC routes of one service, and its health handle.
pub async fn router(service: Arc<Service>) -> (Router, Health) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<MockServiceServer<GrpcMockService>>()
        .await;
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(MockServiceServer::new(GrpcMockService { service }))
        .add_service(health_service);
    // Each reflection version lists every service, the other version included.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    // The descriptor sets are compiled in; they fail to load only if the build is broken.
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => {
            routes.add_service(v1).add_service(v1alpha);
        }
        (Err(e), _) | (_, Err(e)) => tracing::error!("server reflection is off: {e}"),
    }
    (
        routes.routes().prepare().into_axum_router(),
        Health(reporter),
    )
}

/// `servicemock.v1.MockService` on top of the shared executor.
pub struct GrpcMockService {
    service: Arc<Service>,
}

#[tonic::async_trait]
impl MockService for GrpcMockService {
    async fn call(
        &self,
        request: tonic::Request<pb::CallRequest>,
    ) -> Result<tonic::Response<pb::CallResponse>, Status> {
        let service = &self.service;
        let limits = service.executor.settings().limits;
        let (metadata, _, message) = request.into_parts();
        let headers = metadata.into_headers();
        let admitted = service
            .executor
            .admit(&headers, &service.defaults)
            .map_err(|e| e.to_string())
            .and_then(|admission| {
                let plan = plan_from_request(&message, &limits).map_err(|e| e.to_string())?;
                Ok((admission, plan))
            });
        let (admission, plan) = admitted.map_err(|e| {
            service.metrics.refused(Refusal::BadRequest);
            Status::invalid_argument(e)
        })?;
        let inbound = Inbound::new("grpc", request_line(&message, &plan), headers);
        if let Some(report) = service
            .executor
            .refuse_loop(&service.identity, &inbound, &admission)
        {
            service.metrics.refused(Refusal::Loop);
            let message = report.message.clone();
            return Err(failure(Code::FailedPrecondition, message, &report));
        }
        let report = service
            .executor
            .answer(&service.identity, &plan, &inbound, &admission)
            .await;
        service.metrics.report(&report);
        tracing::info!(
            request_id = %report.request_id,
            trace_id = trace_id(&inbound.headers).unwrap_or("-"),
            call = %inbound.request_line,
            ok = report.all_ok(),
            duration_ms = report.duration_ms,
            "request"
        );
        if let Some(code) = admission.decision.grpc_code().filter(|c| *c != 0) {
            return Err(failure(Code::from(code), report.message.clone(), &report));
        }
        match report.first_failure() {
            None => {
                let mut response = tonic::Response::new(pb::CallResponse::from(&report));
                *response.metadata_mut() = identity_metadata(&report);
                Ok(response)
            }
            Some(failed) => {
                let total = report.forwards().count();
                let count = report.forwards().filter(|f| f.error.is_some()).count();
                let message = format!(
                    "{count} of {total} hop(s) failed, first {}: {}; the full CallResponse is in the details",
                    failed.url,
                    failed.error.as_deref().unwrap_or_default()
                );
                Err(failure(Code::Unavailable, message, &report))
            }
        }
    }
}

/// The first line of `RequestInfo` for a call: the method and what it asked.
fn request_line(message: &pb::CallRequest, plan: &Plan) -> String {
    let asked = match &message.request {
        Some(pb::call_request::Request::Path(path)) => format!("path={path}"),
        _ => match render_path(plan) {
            Ok(path) => format!("plan={path}"),
            Err(_) => format!("plan=({} hops at the first level)", plan.hops().count()),
        },
    };
    format!("POST /servicemock.v1.MockService/Call {asked}")
}

/// A failed call that still carries the whole report in its details.
fn failure(code: Code, message: String, report: &Report) -> Status {
    let response = pb::CallResponse::from(report);
    let details = encode_status_details(code as i32, &message, &response);
    let metadata = identity_metadata(report);
    tracing::debug!(code = grpc_code_name(code as i32), "call failed");
    Status::with_details_and_metadata(code, message, details.into(), metadata)
}

/// The identity headers of a report as gRPC metadata.
fn identity_metadata(report: &Report) -> MetadataMap {
    let mut headers = http::HeaderMap::new();
    identity_headers(&mut headers, report);
    MetadataMap::from_headers(headers)
}
