//! The report: the tree of what happened to one request, as the service that
//! received it tells it, with every downstream service's own report nested
//! under the hop that called it.
//!
//! The JSON form keeps the original Go server's field names (`ReceivedDate`,
//! `Message`, `RequestInfo`, `ParallelForwards[].SequentialForwards[]` with
//! `Url` and `Result`) so scripts written for it keep working. [`proto`]
//! converts to and from the gRPC `CallResponse`, which carries the same tree.

pub mod proto;
pub mod text;

use serde::{Deserialize, Serialize};

/// What one service did with one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Report {
    /// When the request arrived, RFC 3339 with milliseconds.
    pub received_date: String,
    /// One line on what the service did.
    pub message: String,
    /// The request as received: request line, then `name: value` per header.
    pub request_info: Vec<String>,
    /// The name the service was deployed under.
    pub service: String,
    pub version: String,
    /// Host or pod name.
    pub host: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod_ip: String,
    /// How the request arrived: `http/1.1`, `h2c` or `grpc`.
    pub protocol: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// From arrival to answer, hops included.
    pub duration_ms: f64,
    /// The hop groups, in the order written.
    pub parallel_forwards: Vec<ParallelForward>,
    /// Behaviour directives that took effect here (`delay 250ms`, `status 503`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<String>,
    /// Filler asked for by `x-mock-size`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub padding: String,
}

/// One group of hops (they ran one after another).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ParallelForward {
    pub sequential_forwards: Vec<Forward>,
}

/// One hop and its outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Forward {
    /// What was called, e.g. `http://service2:8080/@service3/end`.
    pub url: String,
    /// `ok`, or one word on the failure (see [`Outcome`]).
    pub result: String,
    /// `http`, `h2c` or `grpc`.
    pub protocol: String,
    /// HTTP status, or gRPC code for grpc hops; absent when nothing answered.
    pub status: Option<i32>,
    /// From the caller's arrival to the start of this hop.
    pub start_ms: f64,
    pub duration_ms: f64,
    /// Why the hop failed; absent on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The called service's own report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Box<Report>>,
}

/// The one-word `Result` of a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Nobody listened at the address.
    Refused,
    /// The name did not resolve.
    Dns,
    /// No answer within the hop's time.
    Timeout,
    /// An answer with a failing status.
    Status,
    /// A successful status with a body that is not a report.
    BadAnswer,
    /// Anything else on the way (reset connection, protocol error, ...).
    Error,
    /// Not called: the request's deadline had passed.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Dns => "dns",
            Outcome::Timeout => "timeout",
            Outcome::Status => "status",
            Outcome::BadAnswer => "bad-answer",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

impl Report {
    /// Whether every hop of this report succeeded.
    pub fn all_ok(&self) -> bool {
        self.forwards().all(|f| f.error.is_none())
    }

    /// Every hop of this level, group by group.
    pub fn forwards(&self) -> impl Iterator<Item = &Forward> {
        self.parallel_forwards
            .iter()
            .flat_map(|g| g.sequential_forwards.iter())
    }

    /// The first failed hop of this level, if any.
    pub fn first_failure(&self) -> Option<&Forward> {
        self.forwards().find(|f| f.error.is_some())
    }
}
