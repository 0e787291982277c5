//! gRPC hops: the sub-plan travels as a `CallRequest`; one lazily connected
//! channel per target is kept for the life of the process (HTTP/2
//! multiplexes every call to that target over it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use tonic::transport::{Channel, Endpoint};

use super::resolve::Resolved;
use super::HopResult;
use crate::behavior::grpc_code_name;
use crate::pb;
use crate::pb::mock_service_client::MockServiceClient;
use crate::report::proto::decode_status_details;
use crate::report::{Outcome, Report};
use crate::wire::REFUSED_BY_GUARD;

/// Largest header block accepted from a gRPC hop: well above the 8 KiB a
/// failed call's details are trimmed to by default (`--grpc-details-budget`),
/// so a service configured for more is still read whole.
const MAX_HEADER_LIST: u32 = 256 * 1024;

/// Longest text of a downstream's status message kept in a hop's error; the
/// tree below is in the nested report.
const MAX_STATUS_TEXT: usize = 200;

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
            .http2_max_header_list_size(MAX_HEADER_LIST)
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(to.clone(), channel.clone());
        Ok(channel)
    }

    /// Sends `request` to `to` and reads the downstream report, waiting
    /// `timer` at most (also sent as `grpc-timeout`).
    pub async fn call(
        &self,
        to: &Resolved,
        request: pb::CallRequest,
        headers: HeaderMap,
        timer: Duration,
    ) -> HopResult {
        let channel = match self.channel(to) {
            Ok(c) => c,
            Err(e) => return HopResult::failed(Outcome::Error, e),
        };
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        request.set_timeout(timer);
        let mut client = MockServiceClient::new(channel);
        match tokio::time::timeout(timer, client.call(request)).await {
            Err(elapsed) => HopResult::transport(&elapsed, to, timer),
            Ok(Ok(response)) => {
                let report = Report::from(response.into_inner());
                if report.service.is_empty() {
                    return HopResult {
                        status: Some(0),
                        ..HopResult::failed(
                            Outcome::BadAnswer,
                            "answered OK with a CallResponse that names no service: not a servicemock report".into(),
                        )
                    };
                }
                HopResult::from_ok_report(0, "OK", report)
            }
            Ok(Err(status)) => judge_status(&status, to, timer),
        }
    }
}

/// Turns a failed call into a hop result, telling a transport failure (no
/// answer), a downstream servicemock's failure (its report in the details)
/// and a status made by something else (a proxy) apart.
fn judge_status(status: &tonic::Status, to: &Resolved, timer: Duration) -> HopResult {
    let code = status.code() as i32;
    let name = grpc_code_name(code);
    let text = clip(status.message(), MAX_STATUS_TEXT);
    if status.metadata().contains_key(REFUSED_BY_GUARD) {
        return HopResult {
            status: Some(code),
            ..HopResult::failed(
                Outcome::BadAnswer,
                format!("the answer was refused: {text}"),
            )
        };
    }
    if let Some(response) = decode_status_details(status.details()) {
        let report = Report::from(response);
        if !report.service.is_empty() {
            return HopResult::from_failed_report(code, format!("answered {name}: {text}"), report);
        }
    }
    if let Some(source) = std::error::Error::source(status) {
        // Nothing answered: the channel failed (refused, unresolvable,
        // timed out) before any status came back.
        return HopResult {
            status: None,
            ..HopResult::transport(source, to, timer)
        };
    }
    let mut headers = status.metadata().clone().into_headers();
    headers.remove("grpc-status-details-bin");
    let who = super::http::answered_by(&headers, text.as_bytes());
    HopResult {
        status: Some(code),
        outcome: if status.code() == tonic::Code::DeadlineExceeded {
            Outcome::Timeout
        } else {
            Outcome::Status
        },
        error: Some(format!(
            "answered {name}: {}, made by {who}",
            crate::report::text::sanitize(&text)
        )),
        response: None,
        answered_by: Some(who),
    }
}

/// At most `max` bytes of `text`, cut on a character boundary, with `…`.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
