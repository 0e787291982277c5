//! The one request pipeline both edges share: admit (the request's own
//! headers), check the plan against the limits and the depth left, run it,
//! count it, log it, and reach a [`Verdict`]. The HTTP and gRPC edges only
//! translate a request into a plan and the verdict into their answer.

use std::sync::Arc;

use http::HeaderMap;

use crate::attempts::Attempt;

use super::Service;
use crate::exec::context::{trace_id, Told};
use crate::exec::{injected_failure, Admission, Inbound};
use crate::metrics::Refusal;
use crate::plan::{Limits, Plan, PlanError};
use crate::report::text::sanitize;
use crate::report::InboundProtocol;
use crate::report::Report;
use crate::spans::{ServerEnd, ServerStart};

/// The report's `Plan` when the service's default cascade ran.
pub(crate) const DEFAULT_PLAN: &str = "default";

/// Why a request was refused before anyone was called.
#[derive(Debug)]
pub(super) enum Refused {
    /// The request itself is wrong (400 / INVALID_ARGUMENT); the message
    /// names what and where, and `field` the part of a plan it concerns.
    BadRequest { message: String, field: String },
    /// The request arrived past `--max-depth`, or with a plan deeper than
    /// the depth left, below the entry (508 / FAILED_PRECONDITION): the
    /// report says so, so the caller's tree shows where it stopped.
    TooDeep(Box<Report>),
}

impl Refused {
    fn bad(message: impl ToString, field: &str) -> Refused {
        Refused::BadRequest {
            message: message.to_string(),
            field: field.to_owned(),
        }
    }

    /// The HTTP status of the answer (and of a TCP line's or WebSocket
    /// message's refusal): 400, or 508 Loop Detected.
    pub(super) fn http_status(&self) -> u16 {
        match self {
            Refused::BadRequest { .. } => 400,
            Refused::TooDeep(_) => 508,
        }
    }

    /// The gRPC code of the answer: INVALID_ARGUMENT or FAILED_PRECONDITION.
    pub(super) fn grpc_code(&self) -> tonic::Code {
        match self {
            Refused::BadRequest { .. } => tonic::Code::InvalidArgument,
            Refused::TooDeep(_) => tonic::Code::FailedPrecondition,
        }
    }

    /// What the edge `protocol` answers: its gRPC code or its HTTP status.
    fn on_edge(&self, protocol: InboundProtocol) -> u16 {
        if protocol == InboundProtocol::Grpc {
            self.grpc_code() as u16
        } else {
            self.http_status()
        }
    }
}

/// How a request ended, whatever edge it came by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every hop succeeded.
    Ok,
    /// At least one hop failed; the report says which. `root_url` and
    /// `root_error` name the deepest failure (the root cause), so a
    /// status message stays short however deep the tree.
    HopsFailed {
        failed: usize,
        total: usize,
        root_url: String,
        root_error: String,
    },
    /// A behaviour directive asked for this failure.
    Injected { http: u16, grpc: i32 },
    /// The service ran out of the time its caller gave it.
    TimedOut,
}

/// Reads what the request's headers ask (depth, time, behaviour), for
/// this service answering `attempt` (counted by the front, `front.rs`) of a
/// call from `caller` (its principal, when known).
pub(super) fn admit(
    service: &Service,
    told: &Told<'_>,
    headers: &HeaderMap,
    attempt: Option<&Attempt>,
    caller: Option<&str>,
) -> Result<Admission, Refused> {
    let attempt = attempt.copied().unwrap_or_default();
    service
        .executor
        .admit(
            told,
            headers,
            &service.control.defaults(),
            &service.here(attempt.number, caller),
        )
        .map_err(|e| {
            service.metrics.refused(Refusal::BadRequest);
            Refused::bad(e, "metadata")
        })
}

/// The plan a request runs, and whether it is the service's default
/// (`--calls`) because the request's own target had no command.
#[derive(Debug)]
pub(super) struct Chosen {
    pub(super) plan: Arc<Plan>,
    pub(super) by_default: bool,
}

/// Checks a plan the edge read (`plan`) against the size and depth limits,
/// before anyone is called; a plan that calls nobody is replaced by the
/// service's default cascade, when it has one, called with the request's
/// own target as its remainder.
pub(super) fn check_plan(
    service: &Service,
    admission: &Admission,
    headers: &HeaderMap,
    plan: Result<Arc<Plan>, PlanError>,
) -> Result<Chosen, Refused> {
    let limits = service.executor.settings().limits;
    let checked = plan.and_then(|plan| {
        let chosen = match &service.calls {
            Some(calls) if plan.parallel.is_empty() => Chosen {
                plan: Arc::new(calls.plan_for(&plan.uri)),
                by_default: true,
            },
            _ => Chosen {
                plan,
                by_default: false,
            },
        };
        let plan = &chosen.plan;
        plan.check_size(&limits)?;
        if admission.depth == 0 {
            plan.check_depth(&limits, 0)?;
        }
        service
            .executor
            .check_cost(plan, headers, admission)
            .map_err(|problem| PlanError::Field {
                field: "plan (size of the answers)".into(),
                problem,
            })?;
        Ok(chosen)
    });
    checked.map_err(|e| {
        service.metrics.refused(Refusal::BadRequest);
        let field = match &e {
            PlanError::Field { field, .. } => field.clone(),
            PlanError::TooDeep { .. } => "plan (depth)".to_owned(),
            PlanError::TooManyHops { .. } => "plan (size)".to_owned(),
            PlanError::Syntax { .. }
            | PlanError::InCommand { .. }
            | PlanError::PathTooLong { .. } => "path".to_owned(),
        };
        Refused::bad(e, &field)
    })
}

/// Runs an admitted plan, or refuses it with a report when the request is
/// past the depth limit (a loop through proxies, or services configured
/// with different limits), and logs one line.
pub(super) async fn run(
    service: &Service,
    chosen: &Chosen,
    inbound: &Inbound,
    admission: &Admission,
    what: &str,
) -> Result<(Box<Report>, Verdict), Refused> {
    let executor = &service.executor;
    let plan = &chosen.plan;
    let refusal = below_the_entry(chosen, admission, &executor.settings().limits);
    let trace = service
        .tracing
        .spans
        .as_ref()
        .map(|spans| spans.server(&inbound.headers, server_start(inbound, what)));
    let trace = trace.as_ref();
    if let Some(mut report) =
        executor.refuse_loop(&service.identity, inbound, admission, refusal, trace)
    {
        service.metrics.refused(Refusal::Loop);
        service.link_trace(&mut report);
        let refused = Refused::TooDeep(report);
        if let (Some(trace), Refused::TooDeep(report)) = (trace, &refused) {
            let status = refused.on_edge(inbound.protocol);
            trace.end(server_end(
                report, "refused", status, inbound, admission, chosen,
            ));
        }
        return Err(refused);
    }
    let mut report = executor
        .answer(&service.identity, plan, inbound, admission, trace)
        .await;
    service.link_trace(&mut report);
    if chosen.by_default {
        report.plan = DEFAULT_PLAN.to_owned();
        report.message.push_str(" (its default plan, --calls)");
    }
    report
        .injected
        .extend(service.control.injected().iter().cloned());
    service
        .metrics
        .report(&report, &admission.decision.injected);
    let verdict = verdict(&report, admission, inbound.protocol);
    let status = if inbound.protocol == InboundProtocol::Grpc {
        verdict.grpc_code() as u16
    } else {
        verdict.http_status(admission)
    };
    access_line(service, &report, inbound, what, status, &verdict);
    if let Some(trace) = trace {
        trace.end(server_end(
            &report,
            verdict.word(),
            status,
            inbound,
            admission,
            chosen,
        ));
    }
    Ok((report, verdict))
}

/// Why a plan that arrived below the entry is refused with a report, if
/// it is: deeper than the depth left, or making more calls than the
/// cascade has left. (The entry's plan was measured by [`check_plan`] and
/// refused with 400.)
fn below_the_entry(chosen: &Chosen, admission: &Admission, limits: &Limits) -> Option<String> {
    let plan = &chosen.plan;
    if admission.depth > 0 {
        if let Err(too_deep) = plan.check_depth(limits, admission.depth) {
            return Some(too_deep.to_string());
        }
    }
    plan.count_hops(admission.calls_left).is_none().then(|| {
        format!(
            "call budget spent: its plan{} makes more calls than the {} this request may still make (--max-hops {} bounds the calls of the whole cascade, every level spending from it)",
            if chosen.by_default { " (its default, --calls)" } else { "" },
            admission.calls_left,
            limits.max_hops
        )
    })
}

/// The request's log line: at info with `--access-log`, else at debug.
fn access_line(
    service: &Service,
    report: &Report,
    inbound: &Inbound,
    what: &str,
    status: u16,
    verdict: &Verdict,
) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                service = %service.identity.service,
                request_id = %sanitize(&report.request_id),
                trace_id = %sanitize(trace_id(&inbound.headers).unwrap_or("-")),
                protocol = inbound.protocol.as_str(),
                path = %sanitize(what),
                status,
                verdict = verdict.word(),
                duration_ms = report.duration_ms,
                "request"
            )
        };
    }
    if service.executor.settings().access_log {
        line!(info);
    } else {
        line!(debug);
    }
}

/// What the SERVER span of `inbound` starts with; `what` is what it asked.
fn server_start<'a>(inbound: &'a Inbound, what: &'a str) -> ServerStart<'a> {
    let grpc = inbound.protocol == InboundProtocol::Grpc;
    ServerStart {
        protocol: inbound.protocol.as_str(),
        method: inbound.method.as_ref().map(|m| m.as_str()),
        // `POST /servicemock.v1.MockService/Call path=…`: the rpc's name.
        grpc_method: grpc
            .then(|| inbound.request_line.split(' ').nth(1))
            .flatten()
            .and_then(|path| path.rsplit('/').next()),
        path: what.split('?').next().unwrap_or(what),
        received: inbound.received,
    }
}

/// What the SERVER span of a request that came to `result` ends with.
fn server_end<'a>(
    report: &'a Report,
    result: &'a str,
    status: u16,
    inbound: &Inbound,
    admission: &Admission,
    chosen: &Chosen,
) -> ServerEnd<'a> {
    let grpc = inbound.protocol == InboundProtocol::Grpc;
    let delay = admission.decision.delay;
    ServerEnd {
        result,
        message: &report.message,
        status,
        grpc,
        http: !grpc && inbound.method.is_some(),
        attempt: report.attempt,
        hops: report.forwards().count(),
        injected: &report.injected,
        delay: (!delay.is_zero()).then_some(delay),
        timed_out: report.timed_out,
        received: inbound.received,
        by_default: chosen.by_default,
    }
}

/// A request target that came as a line (TCP) or a message (WebSocket),
/// with the headers it is admitted with, who sent it and which attempt it is.
pub(super) struct Target<'a> {
    pub(super) target: &'a str,
    pub(super) headers: HeaderMap,
    pub(super) tls: Option<crate::caller::Tls>,
    pub(super) peer: Option<crate::caller::Peer>,
    pub(super) attempt: Attempt,
    pub(super) protocol: InboundProtocol,
    pub(super) request_line: String,
}

/// Admits, checks and runs a request target as the HTTP edge runs a path:
/// the report, the verdict and the admission, or why it was refused.
pub(super) async fn run_target(
    service: &Service,
    asked: Target<'_>,
) -> Result<(Box<Report>, Verdict, Admission), Refused> {
    let caller = asked.peer.as_ref().map(|p| p.principal.as_str());
    let told = Told::of(&asked.headers);
    let admission = admit(service, &told, &asked.headers, Some(&asked.attempt), caller)?;
    let limits = service.executor.settings().limits;
    let plan = crate::plan::recent::plan_of(asked.target, &limits);
    let chosen = check_plan(service, &admission, &asked.headers, plan)?;
    let mut inbound = Inbound::new(asked.protocol, asked.request_line, asked.headers);
    inbound.set_caller(asked.tls, asked.peer);
    let (report, verdict) = run(service, &chosen, &inbound, &admission, asked.target).await?;
    Ok((report, verdict, admission))
}

/// The verdict a report and the request's behaviour come to.
fn verdict(report: &Report, admission: &Admission, protocol: InboundProtocol) -> Verdict {
    if report.timed_out {
        return Verdict::TimedOut;
    }
    let decision = &admission.decision;
    if injected_failure(decision, protocol) {
        if let (Some(http), Some(grpc)) = (decision.http_status(), decision.grpc_code()) {
            return Verdict::Injected { http, grpc };
        }
    }
    match report.deepest_failure() {
        None => Verdict::Ok,
        Some(root) => Verdict::HopsFailed {
            failed: report.failed_hops(),
            total: report.forwards().count(),
            root_url: root.url.clone(),
            root_error: root.error.clone().unwrap_or_default(),
        },
    }
}

impl Verdict {
    /// The HTTP status of the answer: 200 (or an injected 2xx), 502 when a
    /// hop failed, 504 when this service ran out of time, or the injected one.
    pub(super) fn http_status(&self, admission: &Admission) -> u16 {
        match self {
            Verdict::Ok => admission.decision.http_status().unwrap_or(200),
            Verdict::HopsFailed { .. } => 502,
            Verdict::Injected { http, .. } => *http,
            Verdict::TimedOut => 504,
        }
    }

    /// The gRPC code of the answer: OK, UNAVAILABLE when a hop failed,
    /// DEADLINE_EXCEEDED when this service ran out of time, or the injected one.
    pub(super) fn grpc_code(&self) -> i32 {
        match self {
            Verdict::Ok => 0,
            Verdict::HopsFailed { .. } => tonic::Code::Unavailable as i32,
            Verdict::Injected { grpc, .. } => *grpc,
            Verdict::TimedOut => tonic::Code::DeadlineExceeded as i32,
        }
    }

    /// One word for logs.
    pub(super) fn word(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::HopsFailed { .. } => "hops-failed",
            Verdict::Injected { .. } => "injected",
            Verdict::TimedOut => "timed-out",
        }
    }
}
