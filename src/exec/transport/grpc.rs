//! gRPC hops: the sub-plan travels as a `CallRequest`; one lazily connected
//! channel per target (HTTP/2 multiplexes every call to that target over
//! it), kept in a bounded cache: least recently used dropped first, idle
//! ones dropped, and a target that failed to connect not kept at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use super::super::resolve::Resolved;
use hyper_util::client::legacy::connect::HttpConnector;

use super::super::judge::{judge, Answer, Carrier};
use super::super::{HopResult, Outgoing};
use super::lookup::Lookup;
use crate::codes::grpc_code_name;
use crate::pb;
use crate::pb::mock_service_client::MockServiceClient;
use crate::report::proto::decode_status_details;
use crate::report::{Outcome, Received, Report};
use crate::wire::REFUSED_BY_GUARD;

/// Largest header block accepted from a gRPC hop: well above the 8 KiB a
/// failed call's details are trimmed to by default (`--grpc-details-budget`),
/// so a service configured for more is still read whole.
const MAX_HEADER_LIST: u32 = 256 * 1024;

/// Longest text of a downstream's status message kept in a hop's error; the
/// tree below is in the nested report.
const MAX_STATUS_TEXT: usize = 200;

/// Most channels kept; a new target past it replaces the least recently used.
pub(super) const MAX_CHANNELS: usize = 512;
/// A channel unused this long is dropped when the cache next grows.
pub(super) const CHANNEL_IDLE: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct Cached {
    channel: Channel,
    /// Milliseconds since the cache was made, at the last use.
    last_used: AtomicU64,
}

/// The connector of every channel: names resolved by [`Lookup`] (typed
/// failures), no Nagle delay.
fn connector() -> HttpConnector<Lookup> {
    let mut connector = HttpConnector::new_with_resolver(Lookup);
    connector.set_nodelay(true);
    connector.enforce_http(false);
    connector
}

/// What a channel is for: its address, and everything that changes how it
/// connects (`[:sni=…]`, `[:insecure=true]`, `[:connect=…]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChannelKey {
    to: Resolved,
    sni: Option<String>,
    insecure: bool,
    connect: Duration,
}

impl ChannelKey {
    fn of(to: &Resolved, options: &crate::plan::HopOptions) -> ChannelKey {
        ChannelKey {
            to: to.clone(),
            sni: options.sni.clone(),
            insecure: options.insecure,
            connect: options.connect.unwrap_or(super::http::CONNECT_TIMEOUT),
        }
    }
}

/// The pool of gRPC channels, one per (address, authority); over TLS
/// (`grpcs:`) when made with a TLS configuration, the server name being
/// the authority's host (a pool of its own, so a channel is never shared
/// between plaintext and TLS).
#[derive(Debug, Clone)]
pub(super) struct GrpcClients {
    channels: Arc<RwLock<HashMap<ChannelKey, Cached>>>,
    epoch: Instant,
    capacity: usize,
    tls: Option<super::tls::HopTls>,
}

impl Default for GrpcClients {
    fn default() -> Self {
        GrpcClients::with_capacity(MAX_CHANNELS)
    }
}

impl GrpcClients {
    /// A pool that keeps at most `capacity` channels.
    pub(super) fn with_capacity(capacity: usize) -> GrpcClients {
        GrpcClients {
            channels: Arc::default(),
            epoch: Instant::now(),
            capacity: capacity.max(1),
            tls: None,
        }
    }

    /// A pool of channels over TLS.
    pub(super) fn over_tls(tls: super::tls::HopTls) -> GrpcClients {
        GrpcClients {
            tls: Some(tls),
            ..GrpcClients::default()
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How many channels are cached now.
    pub(super) fn len(&self) -> usize {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The pooled channel to `to` as a hop with `options` makes it.
    pub(super) fn shared_channel(
        &self,
        to: &Resolved,
        options: &crate::plan::HopOptions,
    ) -> Result<Channel, String> {
        self.channel(&ChannelKey::of(to, options))
    }

    /// Drops the channel to a target that could not be reached.
    fn forget(&self, key: &ChannelKey) {
        self.channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The pooled channel for `key`, made on first use. A hit takes only a
    /// shared lock.
    fn channel(&self, key: &ChannelKey) -> Result<Channel, String> {
        let now = self.now();
        let to = &key.to;
        if let Some(cached) = self
            .channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            cached.last_used.store(now, Ordering::Relaxed);
            return Ok(cached.channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let origin = format!("{scheme}://{}", to.authority)
            .parse()
            .map_err(|e| format!("bad authority \"{}\": {e}", to.authority))?;
        let endpoint = Endpoint::from_shared(format!("http://{}", to.connect()))
            .map_err(|e| format!("bad address \"{}\": {e}", to.connect()))?
            .origin(origin)
            .http2_max_header_list_size(MAX_HEADER_LIST)
            .connect_timeout(key.connect);
        let channel = match &self.tls {
            None => endpoint.connect_with_connector_lazy(connector()),
            Some(tls) => endpoint.connect_with_connector_lazy(super::tls::TlsConnector::new(
                connector(),
                tls,
                true,
                key.sni.as_deref().unwrap_or(to.host()),
                key.insecure,
            )?),
        };
        let mut channels = self.channels.write().unwrap_or_else(|p| p.into_inner());
        if channels.len() >= self.capacity {
            let idle = u64::try_from(CHANNEL_IDLE.as_millis()).unwrap_or(u64::MAX);
            channels.retain(|_, c| now.saturating_sub(c.last_used.load(Ordering::Relaxed)) < idle);
        }
        if channels.len() >= self.capacity {
            let oldest = channels
                .iter()
                .min_by_key(|(_, c)| c.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                channels.remove(&oldest);
            }
        }
        channels.insert(
            key.clone(),
            Cached {
                channel: channel.clone(),
                last_used: AtomicU64::new(now),
            },
        );
        Ok(channel)
    }

    /// Sends `request` to `to` and reads the downstream report, waiting
    /// `timer` at most (also sent as `grpc-timeout`).
    pub(super) async fn call(&self, out: Outgoing<'_>, request: pb::CallRequest) -> HopResult {
        let Outgoing {
            to,
            headers,
            timer,
            room,
            options,
            ..
        } = out;
        let key = ChannelKey::of(to, options);
        let connect = key.connect;
        let channel = match self.channel(&key) {
            Ok(c) => c,
            Err(e) => return HopResult::failed(Outcome::Error, e),
        };
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        request.set_timeout(timer);
        let channel = tower::ServiceBuilder::new()
            .map_response(status_from_http)
            .service(channel);
        let mut client = MockServiceClient::new(channel).max_decoding_message_size(room);
        match tokio::time::timeout(timer, client.call(request)).await {
            Err(elapsed) => HopResult::transport(&elapsed, to, timer, connect),
            Ok(Ok(response)) => {
                let response = response.into_inner();
                let bytes = prost::Message::encoded_len(&response);
                let report = Report::from(response);
                if report.service.is_empty() {
                    return HopResult::failed(
                        Outcome::BadAnswer,
                        "answered OK with a CallResponse that names no service: not a servicemock report".into(),
                    )
                    .with_status(0);
                }
                HopResult::from_ok_report(0, &"OK", Received::judged(report)).with_bytes(bytes)
            }
            Ok(Err(status))
                if status.code() == tonic::Code::OutOfRange
                    && status.details().is_empty()
                    && status.metadata().is_empty() =>
            {
                // tonic's own refusal of a message over `room`.
                HopResult::failed(
                    Outcome::BadAnswer,
                    format!("answered with more than the {room} bytes left for this request's reports (--max-report-size): cut"),
                )
                .with_bytes(room)
            }
            Ok(Err(status)) => {
                let result = judge_status(&status, to, timer, connect);
                if matches!(result.outcome, Outcome::Refused | Outcome::Dns) {
                    self.forget(&key);
                }
                result.with_bytes(status.details().len() + status.message().len())
            }
        }
    }
}

/// An answer to a gRPC call that is not gRPC — a proxy's own `503` page, a
/// `504` from a route timeout — gets the status gRPC's HTTP mapping gives
/// it (503 → UNAVAILABLE, 504 → UNAVAILABLE, 404 → UNIMPLEMENTED, ...), as
/// the gRPC spec asks of clients, instead of the body being decoded as gRPC
/// messages. Its headers stay, for [`answered_by`](super::failure::answered_by).
fn status_from_http(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let grpc_content = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let status = response.status();
    if (status == http::StatusCode::OK && grpc_content)
        || response.headers().contains_key("grpc-status")
    {
        return response;
    }
    let code = crate::codes::grpc_code_for_http(status.as_u16());
    let code = if code == 0 { 2 } else { code };
    let headers = response.headers_mut();
    headers.insert("grpc-status", http::HeaderValue::from(code));
    if let Ok(message) = http::HeaderValue::from_str(&format!("not a gRPC answer: HTTP {status}")) {
        headers.insert("grpc-message", message);
    }
    *response.status_mut() = http::StatusCode::OK;
    *response.body_mut() = tonic::body::Body::empty();
    response
}

/// Turns a failed call into a hop result: a transport failure (nothing
/// answered), an answer this side's guard refused, or a status [`judge`]d
/// as any answer is (a downstream servicemock's report in the details, or
/// a status made by something else, such as a proxy).
fn judge_status(
    status: &tonic::Status,
    to: &Resolved,
    timer: Duration,
    connect: Duration,
) -> HopResult {
    let code = status.code() as i32;
    let name = grpc_code_name(code);
    let text = crate::report::trim::clip(status.message(), MAX_STATUS_TEXT);
    if status.metadata().contains_key(REFUSED_BY_GUARD) {
        return HopResult::failed(
            Outcome::BadAnswer,
            format!("the answer was refused: {text}"),
        )
        .with_status(code);
    }
    let report = decode_status_details(status.details())
        .map(Report::from)
        .filter(|report| !report.service.is_empty());
    if report.is_none() {
        if let Some(source) = std::error::Error::source(status) {
            // Nothing answered: the channel failed (refused, unresolvable,
            // timed out) before any status came back.
            return HopResult::transport(source, to, timer, connect);
        }
    }
    let mut headers = status.metadata().clone().into_headers();
    headers.remove("grpc-status-details-bin");
    let said = format!("{name}: {}", crate::report::text::sanitize(&text));
    judge(Answer {
        code,
        success: false,
        out_of_time: status.code() == tonic::Code::DeadlineExceeded,
        said: &said,
        report: report
            .map(Received::judged)
            .ok_or_else(|| "no report in the status details".to_owned()),
        carrier: Carrier::Grpc {
            headers: &headers,
            message: &text,
        },
    })
}

impl super::super::Executor {
    /// The pooled gRPC channel a `grpc`/`grpcs` hop to `target` would use
    /// (`servicemock health` asks `grpc.health.v1` on it).
    pub fn grpc_channel(
        &self,
        target: &crate::plan::Target,
        protocol: crate::plan::Protocol,
    ) -> Result<tonic::transport::Channel, String> {
        let to = self.inner.resolver.resolve(target);
        self.inner
            .transports
            .grpc_channel(&to, protocol, &Default::default())
    }

    /// How many gRPC channels the hop clients keep open now.
    pub fn grpc_channels(&self) -> usize {
        self.inner.transports.grpc_channels()
    }
}

/// Headers a hop or a client call was given (`[name=value]`, `-H`), as
/// gRPC metadata. They were checked where they were written
/// ([`crate::plan::check_hop_header`]); one that is no metadata is left out.
pub(crate) fn metadata_of(
    headers: &std::collections::BTreeMap<String, String>,
) -> tonic::metadata::MetadataMap {
    let mut metadata = tonic::metadata::MetadataMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = tonic::metadata::MetadataKey::from_bytes(name.as_bytes());
        let value = tonic::metadata::MetadataValue::try_from(value.as_str());
        if let (Ok(name), Ok(value)) = (name, value) {
            metadata.insert(name, value);
        }
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> ChannelKey {
        let to = Resolved::new(format!("127.0.0.1:{port}"), format!("svc:{port}"));
        ChannelKey::of(&to, &Default::default())
    }

    #[tokio::test]
    async fn the_least_recently_used_channel_goes_first() {
        let pool = GrpcClients::with_capacity(3);
        for port in 1..=3 {
            pool.channel(&target(port)).unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        pool.channel(&target(1)).unwrap(); // 1 is used again: 2 is oldest
        tokio::time::sleep(Duration::from_millis(2)).await;
        pool.channel(&target(4)).unwrap();
        assert_eq!(pool.len(), 3);
        let kept = pool.channels.read().unwrap();
        assert!(kept.contains_key(&target(1)));
        assert!(
            !kept.contains_key(&target(2)),
            "the least recently used went"
        );
        assert!(kept.contains_key(&target(4)));
    }
}
