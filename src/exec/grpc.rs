//! gRPC hops: the sub-plan travels as a `CallRequest`; one lazily connected
//! channel per target is kept for the life of the process (HTTP/2
//! multiplexes every call to that target over it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use tonic::transport::{Channel, Endpoint};

use super::resolve::Resolved;
use super::{error_chain, root_cause, HopResult};
use crate::behavior::grpc_code_name;
use crate::pb;
use crate::pb::mock_service_client::MockServiceClient;
use crate::report::proto::decode_status_details;
use crate::report::{Outcome, Report};

/// The pool of gRPC channels, one per (address, authority).
#[derive(Debug, Clone, Default)]
pub struct GrpcClients {
    channels: Arc<Mutex<HashMap<Resolved, Channel>>>,
}

impl GrpcClients {
    /// The pooled channel to `to`, made on first use.
    fn channel(&self, to: &Resolved) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(to) {
            return Ok(channel.clone());
        }
        let origin = format!("http://{}", to.authority)
            .parse()
            .map_err(|e| format!("bad authority \"{}\": {e}", to.authority))?;
        let channel = Endpoint::from_shared(format!("http://{}", to.connect))
            .map_err(|e| format!("bad address \"{}\": {e}", to.connect))?
            .origin(origin)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(to.clone(), channel.clone());
        Ok(channel)
    }

    /// Sends `request` to `to` and reads the downstream report.
    pub async fn call(
        &self,
        to: &Resolved,
        request: pb::CallRequest,
        headers: HeaderMap,
        timeout: Duration,
    ) -> HopResult {
        let channel = match self.channel(to) {
            Ok(c) => c,
            Err(e) => return HopResult::failed(Outcome::Error, e),
        };
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        request.set_timeout(timeout);
        let mut client = MockServiceClient::new(channel);
        match tokio::time::timeout(timeout, client.call(request)).await {
            Err(_) => HopResult::failed(Outcome::Timeout, format!("no answer within {timeout:?}")),
            Ok(Ok(response)) => HopResult {
                status: Some(tonic::Code::Ok as i32),
                outcome: Outcome::Ok,
                error: None,
                response: Some(Report::from(response.into_inner())),
            },
            Ok(Err(status)) => judge_status(&status, to),
        }
    }
}

/// Turns a failed call into a hop result, telling a transport failure (no
/// answer) from a status the downstream service sent.
fn judge_status(status: &tonic::Status, to: &Resolved) -> HopResult {
    let text = match std::error::Error::source(status) {
        Some(source) => format!("{}: {}", status.message(), error_chain(source)),
        None => status.message().to_owned(),
    };
    let lower = text.to_ascii_lowercase();
    let response = decode_status_details(status.details()).map(Report::from);
    if response.is_none() {
        let source = std::error::Error::source(status);
        let root = || source.map_or_else(|| text.clone(), root_cause);
        if let Some(failure) = HopResult::connect_failure(&text, root, to) {
            return failure;
        }
        if status.code() == tonic::Code::DeadlineExceeded || lower.contains("timeout expired") {
            return HopResult {
                status: Some(status.code() as i32),
                ..HopResult::failed(
                    Outcome::Timeout,
                    format!("timed out: {} {text}", grpc_code_name(status.code() as i32)),
                )
            };
        }
    }
    HopResult {
        status: Some(status.code() as i32),
        outcome: Outcome::Status,
        error: Some(format!(
            "answered {}: {text}",
            grpc_code_name(status.code() as i32)
        )),
        response,
    }
}
