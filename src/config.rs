//! Who this copy of servicemock is, and what it allows a request to do.
//!
//! Both are plain values built once at start (from flags and environment in
//! `main`, or directly by tests and the mesh) and shared read-only.

use std::time::Duration;

use crate::plan::Limits;
use crate::shared::SharedStr;

/// The identity a service reports in every answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The name it is deployed under, e.g. `service2`.
    pub service: SharedStr,
    /// Its version, e.g. `v1`; what traffic-split experiments count.
    pub version: SharedStr,
    /// Host or pod name.
    pub host: SharedStr,
    /// Kubernetes namespace, when known.
    pub namespace: String,
    /// Pod IP, when known.
    pub pod_ip: String,
}

impl Identity {
    /// An identity with the given name and version on this host.
    pub fn named(service: &str, version: &str) -> Identity {
        Identity {
            service: service.into(),
            version: version.into(),
            host: local_host_name().into(),
            ..Identity::default()
        }
    }
}

/// How long connections may take, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request head to its end.
    pub header_read_timeout: Duration,
    /// No bytes either way for this long closes the connection.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The default durations, as `--help` shows them and as
/// [`Settings::default`] reads them: each written once.
pub mod defaults {
    /// `--hop-timeout`.
    pub const HOP_TIMEOUT: &str = "10s";
    /// `--request-timeout`.
    pub const REQUEST_TIMEOUT: &str = "30s";
    /// `--max-delay`.
    pub const MAX_DELAY: &str = "10s";
    /// `--header-read-timeout`.
    pub const HEADER_READ_TIMEOUT: &str = "10s";
    /// `--idle-timeout`.
    pub const IDLE_TIMEOUT: &str = "5m";

    /// One of the texts above as a duration.
    pub(crate) fn duration(text: &str) -> std::time::Duration {
        crate::units::parse_duration(text).expect("the defaults are durations (tested)")
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: defaults::duration(defaults::HEADER_READ_TIMEOUT),
            idle_timeout: defaults::duration(defaults::IDLE_TIMEOUT),
            max_connections: 10_000,
        }
    }
}

/// What one request may ask of this service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Bounds on paths and plans.
    pub limits: Limits,
    /// Longest any single hop may take.
    pub hop_timeout: Duration,
    /// Longest a whole request may take here, hops included; shrinks as the
    /// request travels down the tree.
    pub request_timeout: Duration,
    /// Longest delay a behaviour directive may ask for.
    pub max_delay: Duration,
    /// Requests served at once; more are refused at once (503 or
    /// RESOURCE_EXHAUSTED) instead of queueing without bound.
    pub max_concurrent: usize,
    /// Most bytes of trailers a failed gRPC call may carry: its report in
    /// `grpc-status-details-bin` (base64) and `grpc-message`. gRPC clients
    /// refuse more than 8 KiB of metadata by default, so that is ours.
    pub grpc_details_budget: usize,
    /// Most bytes of downstream reports one request may receive, and of
    /// padding and propagated headers its plan may ask for: a hop whose
    /// answer would pass it is cut, a plan that asks for more is refused.
    pub max_report_size: usize,
    /// Bounds on inbound connections.
    pub connections: ConnectionLimits,
    /// Whether `GET/PUT/DELETE /control` may change this process's
    /// behaviour, readiness and liveness at run time (`--control`).
    pub control: bool,
    /// One info line per request (`--access-log`); otherwise the line is
    /// at debug level. Off by default: formatting and writing it is a
    /// large share of a service's own work per request.
    pub access_log: bool,
    /// How many received requests `GET /requests` keeps (`--record N`);
    /// 0: none, and `/requests` is a path like any other.
    pub record: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            hop_timeout: defaults::duration(defaults::HOP_TIMEOUT),
            request_timeout: defaults::duration(defaults::REQUEST_TIMEOUT),
            max_delay: defaults::duration(defaults::MAX_DELAY),
            max_concurrent: 1024,
            grpc_details_budget: 8 * 1024,
            max_report_size: 4 * 1024 * 1024,
            connections: ConnectionLimits::default(),
            control: false,
            access_log: false,
            record: 0,
        }
    }
}

/// The machine's host name (the pod name in Kubernetes): `HOSTNAME` when
/// set, else what the system says.
pub fn local_host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| gethostname::gethostname().into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub use crate::units::parse_duration;

/// Why a name cannot be used for a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a valid name: use lower-case letters, digits and '-', start with a letter, at most 63 characters")]
pub struct BadName(pub String);

/// Checks `name` as a Kubernetes object name (an RFC 1123 label) of at
/// most `max` characters: services, versions and namespaces are named so.
pub fn check_name(name: &str, max: usize) -> Result<(), BadName> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_durations_read_as_written() {
        let settings = Settings::default();
        assert_eq!(settings.hop_timeout, Duration::from_secs(10));
        assert_eq!(settings.request_timeout, Duration::from_secs(30));
        assert_eq!(settings.max_delay, Duration::from_secs(10));
        assert_eq!(
            settings.connections.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(settings.connections.idle_timeout, Duration::from_secs(300));
    }

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("150us"), Ok(Duration::from_micros(150)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
