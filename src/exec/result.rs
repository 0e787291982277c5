//! What came back from one hop ([`HopResult`]), built by named
//! constructors for each way a hop ends: nothing answered, a servicemock's
//! report with an ok or a failing status, or something else answering.

use std::time::Duration;

use super::{deadline, failure, resolve};
use crate::report::{AnsweredBy, Gist, InboundProtocol, Outcome, Received};

/// What came back from one hop, before it is placed in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct HopResult {
    /// HTTP status or gRPC code, if anything answered.
    pub status: Option<i32>,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// The downstream's own report, if it sent one.
    pub response: Option<Received>,
    /// How the downstream says the request reached it, read with its report.
    pub arrived_as: Option<InboundProtocol>,
    /// Who answered, when it was not a servicemock (a proxy's local reply,
    /// another server): what it said about itself.
    pub answered_by: Option<AnsweredBy>,
    /// Bytes of answer received, counted against `--max-report-size`.
    pub bytes: usize,
}

impl HopResult {
    /// A hop that got no usable answer.
    pub fn failed(outcome: Outcome, error: String) -> HopResult {
        HopResult {
            status: None,
            outcome,
            error: Some(error),
            response: None,
            arrived_as: None,
            answered_by: None,
            bytes: 0,
        }
    }

    /// An answer that is no servicemock report, made by `who` (what it
    /// said about itself), with its status.
    pub(crate) fn made_by(
        code: i32,
        outcome: Outcome,
        error: String,
        who: AnsweredBy,
    ) -> HopResult {
        HopResult {
            status: Some(code),
            answered_by: Some(who),
            ..HopResult::failed(outcome, error)
        }
    }

    /// An answer taken by its status alone from a target that need not be
    /// a servicemock (`[:expect=any]`, a HEAD): ok for a success, with who
    /// answered and what it said either way.
    pub(crate) fn by_status_alone(code: i32, error: Option<String>, said: AnsweredBy) -> HopResult {
        HopResult {
            status: Some(code),
            outcome: if error.is_some() {
                Outcome::Status
            } else {
                Outcome::Ok
            },
            error,
            response: None,
            arrived_as: None,
            answered_by: Some(said),
            bytes: 0,
        }
    }

    /// A servicemock that answered an echo (a TCP line that is no plan):
    /// who it was, as a report of those few fields.
    pub(crate) fn echoed(report: Received) -> HopResult {
        HopResult {
            status: None,
            outcome: Outcome::Ok,
            error: None,
            response: Some(report),
            arrived_as: None,
            answered_by: None,
            bytes: 0,
        }
    }

    /// The same result with the status that came with it.
    pub(crate) fn with_status(self, code: i32) -> HopResult {
        HopResult {
            status: Some(code),
            ..self
        }
    }

    /// The same result, counting `bytes` of answer received.
    pub(crate) fn with_bytes(self, bytes: usize) -> HopResult {
        HopResult { bytes, ..self }
    }

    /// A transport failure (nothing answered), named the way a person
    /// would: nobody listening, a name that does not resolve, no answer in
    /// time, or the error chain as it stands.
    pub(crate) fn transport(
        error: &(dyn std::error::Error + 'static),
        to: &resolve::Resolved,
        timer: Duration,
        connect: Duration,
    ) -> HopResult {
        let kind = failure::classify(error);
        let message = match kind.outcome {
            Outcome::Dns => format!("cannot resolve \"{}\": {}", to.host(), kind.cause),
            Outcome::Refused => format!("connection refused by {}", to.connect()),
            Outcome::Timeout if kind.connecting => format!(
                "no connection to {} within the connect timeout of {}",
                to.connect(),
                deadline::human(connect)
            ),
            Outcome::Timeout => format!("no answer within {}", deadline::human(timer)),
            Outcome::Tls => kind.cause,
            _ => failure::error_chain(error),
        };
        HopResult::failed(kind.outcome, message)
    }

    /// What a caller makes of a downstream servicemock's report that came
    /// with a failing status: a `timeout` when the callee itself ran out of
    /// time (so the slow hop is the one named), else a failing `status`.
    pub(crate) fn from_failed_report(
        status: i32,
        said: String,
        (report, mut gist): (Received, Gist),
    ) -> HopResult {
        match gist.timed_out.take() {
            // Its message says who ran out of what time.
            Some(own) => {
                HopResult::with_report(status, Outcome::Timeout, Some(own), (report, gist))
            }
            None => HopResult::with_report(status, Outcome::Status, Some(said), (report, gist)),
        }
    }

    /// A successful status with a servicemock report: ok, unless the report
    /// lists failed hops (a real servicemock would not answer 2xx then; the
    /// entry's status must follow the tree as received).
    pub(crate) fn from_ok_report(
        status: i32,
        status_text: &dyn std::fmt::Display,
        answer: (Received, Gist),
    ) -> HopResult {
        match answer.1.failed_hops {
            0 => HopResult::with_report(status, Outcome::Ok, None, answer),
            failed => {
                let why =
                    format!("answered {status_text}, yet its report lists {failed} failed hop(s)");
                HopResult::with_report(status, Outcome::BadAnswer, Some(why), answer)
            }
        }
    }

    fn with_report(
        status: i32,
        outcome: Outcome,
        error: Option<String>,
        (report, gist): (Received, Gist),
    ) -> HopResult {
        HopResult {
            status: Some(status),
            outcome,
            error,
            response: Some(report),
            arrived_as: Some(gist.protocol),
            answered_by: None,
            bytes: 0,
        }
    }
}
