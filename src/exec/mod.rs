//! The executor: runs a [`Plan`] and builds the [`Report`] of what happened.
//!
//! Groups of a plan run concurrently, the hops of a group one after another;
//! each hop goes out over its own protocol (`http.rs` for `http`/`h2c`, `grpc.rs`
//! for `grpc`) with the headers of [`context`] and the time that is left. No
//! hop failure is ever dropped: each is recorded on its hop with a readable
//! error. This module knows nothing of the server side; both edges hand it an
//! [`Inbound`] and render the report it returns.

pub mod context;
pub(crate) mod deadline;
pub(crate) mod failure;
mod grpc;
pub(crate) use grpc::metadata_of;
mod hop;
mod http;
pub mod resolve;
mod tcp;
pub mod tls;
pub mod transport;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use ::http::{HeaderMap, HeaderName};
use futures::future::join_all;

use crate::behavior::{Decision, DirectiveError, Directives, Here, Injection};
use crate::config::{Identity, Settings};
use crate::plan::{Hop, Plan, Sequence};
use crate::report::{
    Forward, Forwards, Gist, InboundProtocol, Outcome, ParallelForward, Received, Report,
};
use context::HopContext;
use resolve::Resolver;

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
    pub answered_by: Option<String>,
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
            Outcome::Refused => format!("connection refused by {}", to.connect),
            Outcome::Timeout if kind.connecting => format!(
                "no connection to {} within the connect timeout of {}",
                to.connect,
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

/// What every hop transport needs for one call: where, with which
/// headers, how long to wait, and how many bytes of answer are left.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub to: &'a resolve::Resolved,
    /// What the transport's [`transport::Transport::url`] said for this
    /// hop: the sub-plan is encoded once, for the report and the call.
    pub url: &'a transport::HopUrl,
    pub headers: HeaderMap,
    pub timer: Duration,
    /// Bytes of answer this request may still receive (`--max-report-size`).
    pub room: usize,
    /// How the caller makes the call (TLS name and verification, connect
    /// timeout; the transport reads what applies to it).
    pub options: &'a crate::plan::HopOptions,
}

/// The request as the edge received it, in protocol-neutral terms.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// How it arrived.
    pub protocol: InboundProtocol,
    /// e.g. `GET /@service2/end HTTP/1.1`.
    pub request_line: String,
    pub headers: HeaderMap,
    pub received: SystemTime,
    pub started: Instant,
    /// The TLS session it came on, if any.
    pub tls: Option<crate::caller::Tls>,
    /// Who sent it, when known.
    pub peer: Option<crate::caller::Peer>,
    /// The HTTP method (none for gRPC).
    pub method: Option<::http::Method>,
    /// The request body's length and SHA-256 (hex), when it had one.
    pub body: Option<(u64, String)>,
}

impl Inbound {
    pub fn new(protocol: InboundProtocol, request_line: String, headers: HeaderMap) -> Inbound {
        Inbound {
            protocol,
            request_line,
            headers,
            received: SystemTime::now(),
            started: Instant::now(),
            tls: None,
            peer: None,
            method: None,
            body: None,
        }
    }

    /// The request as it arrived with `method` and a body (`body`, read
    /// whole, then let go: only its length and digest are kept).
    pub fn with_body(mut self, method: &::http::Method, body: &[u8]) -> Inbound {
        self.method = Some(method.clone());
        if !body.is_empty() {
            let digest = ring::digest::digest(&ring::digest::SHA256, body);
            let mut hex = String::with_capacity(64);
            for byte in digest.as_ref() {
                use std::fmt::Write as _;
                let _ = write!(hex, "{byte:02x}");
            }
            self.body = Some((body.len() as u64, hex));
        }
        self
    }

    /// The request with how it arrived and who sent it
    /// ([`crate::caller::of_request`]).
    pub fn with_caller(
        mut self,
        tls: Option<crate::caller::Tls>,
        peer: Option<crate::caller::Peer>,
    ) -> Inbound {
        (self.tls, self.peer) = (tls, peer);
        self
    }
}

/// Runs plans. Cheap to clone; every clone shares the pooled clients.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    transports: transport::Transports,
    resolver: Resolver,
    settings: Settings,
    propagate: Vec<HeaderName>,
}

impl Executor {
    /// An executor with its own pooled clients. `propagate` names the inbound
    /// headers passed on to every hop.
    pub fn new(resolver: Resolver, settings: Settings, propagate: Vec<HeaderName>) -> Executor {
        Executor::with_transports(
            resolver,
            settings,
            propagate,
            transport::Transports::standard(),
        )
    }

    /// An executor whose hops go out through `transports` (tests give it a
    /// fake one).
    pub fn with_transports(
        resolver: Resolver,
        settings: Settings,
        propagate: Vec<HeaderName>,
        transports: transport::Transports,
    ) -> Executor {
        Executor {
            inner: Arc::new(Shared {
                transports,
                resolver,
                settings,
                propagate,
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

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

    /// Reads what an inbound request's own headers ask — its depth, the time
    /// it allows, and the behaviour directives (with `defaults` for those not
    /// given) — and draws the behaviour for it. Both edges admit this way.
    pub fn admit(
        &self,
        headers: &HeaderMap,
        defaults: &Directives,
        here: &Here<'_>,
    ) -> Result<Admission, AdmissionError> {
        let settings = &self.inner.settings;
        let depth = context::inbound_depth(headers)?;
        let calls_left = context::inbound_calls_left(headers, settings.limits.max_hops)?;
        let budget = context::inbound_budget(headers, settings.request_timeout)?;
        let directives = Directives::from_headers(headers, settings.max_delay)?.or(defaults);
        Ok(Admission {
            depth,
            calls_left,
            budget,
            decision: directives.decide(here, &mut rand::rng()),
            attempt: here.attempt,
        })
    }

    /// Refuses a plan whose answers would be bigger than `--max-report-size`
    /// before anyone is called: the padding its hops ask for (`x-mock-size`
    /// on every hop the tree makes) and this service's own, plus the
    /// propagated headers every level's report repeats.
    pub fn check_cost(
        &self,
        plan: &Plan,
        headers: &HeaderMap,
        admission: &Admission,
    ) -> Result<(), String> {
        let budget = self.inner.settings.max_report_size;
        // A leaf repeats the propagated headers once: when all the headers
        // it carries fit beside its padding, so do the propagated ones,
        // and the names need not be compared.
        if plan.parallel.is_empty() {
            let all: usize = headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum();
            if admission.decision.size.saturating_add(all) <= budget {
                return Ok(());
            }
        }
        let propagated: usize = context::carried(headers, &self.inner.propagate)
            .flat_map(|name| {
                headers
                    .get_all(name)
                    .iter()
                    .map(move |v| name.as_str().len() + v.len() + 4)
            })
            .sum();
        let (mut hops, mut padding) = (0usize, admission.decision.size);
        // Plans still to walk, with how many times each is run (a hop that
        // retries runs its callee's plan once per try); leaves call nobody
        // and are not kept, so a plan of one level walks without a heap.
        let (mut first, mut more) = (Some((plan, 1usize)), Vec::new());
        while let Some((level, runs)) = first.take().or_else(|| more.pop()) {
            for hop in level.hops() {
                let calls = runs.saturating_mul(hop.options.tries() as usize);
                hops = hops.saturating_add(calls);
                if let Some(size) = hop.headers.get(crate::behavior::SIZE) {
                    let size = crate::behavior::parse_size(size.trim()).unwrap_or(0);
                    padding = padding.saturating_add(size.saturating_mul(calls));
                }
                if !hop.next.parallel.is_empty() {
                    more.push((&*hop.next, calls));
                }
            }
        }
        let total = padding.saturating_add(propagated.saturating_mul(hops + 1));
        if total > budget {
            return Err(format!(
                "the plan's answers would take {total} bytes ({padding} of padding, {propagated} bytes of propagated headers repeated at {} levels), more than --max-report-size {budget}",
                hops + 1
            ));
        }
        Ok(())
    }

    /// Runs `plan` for `inbound` and reports what happened, as `admission`
    /// allows: its behaviour first (a delay, then an injected failure
    /// answers at once without calling anyone), then the hops, each a span
    /// of `trace` when the service exports spans.
    pub async fn answer(
        &self,
        identity: &Identity,
        plan: &Plan,
        inbound: &Inbound,
        admission: &Admission,
        trace: Option<&crate::spans::Trace>,
    ) -> Report {
        let Admission {
            depth,
            calls_left,
            budget,
            ref decision,
            attempt,
        } = *admission;
        // A leaf calls nobody: only its request id is needed.
        let propagate: &[HeaderName] = if plan.parallel.is_empty() {
            &[]
        } else {
            &self.inner.propagate
        };
        let (outbound, request_id) = context::outbound_headers(&inbound.headers, propagate);
        let mut report = base_report(identity, inbound, request_id, attempt, trace);
        let deadline = inbound.started + budget;
        let mut injected = decision.injected.clone();
        if !decision.delay.is_zero() {
            let wanted = inbound.started + decision.delay;
            if wanted > deadline {
                // The caller stops waiting soon after this deadline: answer
                // at it, saying so, instead of racing the caller's timer.
                tokio::time::sleep_until(deadline).await;
                report.timed_out = true;
                for injection in &mut injected {
                    if let Injection::Delay(asked) = *injection {
                        *injection = Injection::DelayCut {
                            asked,
                            after: budget,
                        };
                    }
                }
            } else {
                tokio::time::sleep_until(wanted).await;
            }
        }
        report.injected = injected.iter().map(Injection::to_string).collect();
        let who = Who(identity);
        let ctx = HopContext {
            started: inbound.started,
            depth,
            deadline,
            outbound,
            received: Default::default(),
            calls_share: calls_share(plan, calls_left),
            bare: false,
            trace: trace.cloned(),
        };
        if report.timed_out {
            report.message = format!(
                "{who} ran out of time: the caller allowed {}, its delay asked {}",
                deadline::human(budget),
                deadline::human(decision.delay)
            );
            report.parallel_forwards = self.run_plan(plan, &ctx).await.into();
        } else if injected_failure(decision, inbound.protocol) {
            report.message = format!("{who} failed on purpose ({})", report.injected.join(", "));
        } else {
            report.parallel_forwards = self.run_plan(plan, &ctx).await.into();
            let total = report.forwards().count();
            let failed = report.failed_hops();
            report.message = match (total, failed) {
                (0, _) => format!("{who} answered, calling nobody"),
                (n, 0) => format!("{who} called {n} hop(s), all ok"),
                (n, f) => format!("{who} called {n} hop(s), {f} failed"),
            };
        }
        if decision.size > 0 {
            report.padding = "x".repeat(decision.size);
        }
        report.duration_ms = millis(inbound.started.elapsed());
        report
    }

    /// The report refusing a request that has passed through more services
    /// than `--max-depth` allows (a loop through proxies), or whose plan
    /// (`too_deep` says how) goes deeper than the depth left; `None` if
    /// neither.
    pub fn refuse_loop(
        &self,
        identity: &Identity,
        inbound: &Inbound,
        admission: &Admission,
        too_deep: Option<String>,
        trace: Option<&crate::spans::Trace>,
    ) -> Option<Report> {
        let depth = admission.depth;
        let max = self.inner.settings.limits.max_depth;
        let message = match too_deep {
            Some(why) => format!("refused before calling anyone: {why}"),
            None if depth > max => format!(
                "loop detected: the request has passed through {depth} services, more than --max-depth {max}"
            ),
            None => return None,
        };
        // Its id, or a new one: no headers are built for hops it won't make.
        let request_id = context::carried_request_id(&inbound.headers)
            .map_or_else(context::new_request_id, str::to_owned);
        let mut report = base_report(identity, inbound, request_id, admission.attempt, trace);
        report.message = message;
        report.duration_ms = millis(inbound.started.elapsed());
        Some(report)
    }

    async fn run_plan(&self, plan: &Plan, ctx: &HopContext) -> Vec<ParallelForward> {
        join_all(
            plan.parallel
                .iter()
                .map(|group| self.run_sequence(group, ctx)),
        )
        .await
        .into_iter()
        .map(|sequential_forwards| ParallelForward {
            sequential_forwards,
        })
        .collect()
    }

    async fn run_sequence(&self, group: &Sequence, ctx: &HopContext) -> Vec<Forward> {
        let mut forwards = Vec::with_capacity(group.hops.len());
        for hop in &group.hops {
            forwards.push(self.call(hop, ctx).await);
        }
        forwards
    }

    /// Calls `hop` once as a client (`servicemock load`): the same pooled
    /// transports, headers and judgement as a hop of a plan, with `timeout`
    /// for the whole call. The callee sees a request from a servicemock
    /// (depth 1) and makes its own request id.
    pub async fn call_once(&self, hop: &Hop, timeout: Duration) -> Forward {
        self.once(hop, timeout, false).await
    }

    /// Calls `hop` once as a plain client would, without servicemock's own
    /// headers, so the server answers from its own endpoints (`/health`)
    /// rather than running a plan (`servicemock health`).
    pub async fn probe_once(&self, hop: &Hop, timeout: Duration) -> Forward {
        self.once(hop, timeout, true).await
    }

    async fn once(&self, hop: &Hop, timeout: Duration, bare: bool) -> Forward {
        let started = Instant::now();
        let ctx = HopContext {
            started,
            depth: 0,
            deadline: started + timeout,
            outbound: HeaderMap::new(),
            received: Default::default(),
            calls_share: self.inner.settings.limits.max_hops,
            bare,
            trace: None,
        };
        self.call(hop, &ctx).await
    }

    /// An executor for the clients (`call`, `load`, `health`): names
    /// resolve normally, each call waits `timeout` at most, TLS trusts
    /// what `tls` trusts.
    pub fn for_client(timeout: Duration, tls: tls::HopTls) -> Executor {
        let settings = Settings {
            hop_timeout: timeout,
            ..Settings::default()
        };
        Executor::with_transports(
            Resolver::default(),
            settings,
            Vec::new(),
            transport::Transports::with_tls(tls),
        )
    }
}

/// The calls each direct hop of `plan` may pass on beyond its own part of
/// it, when the request may make `calls_left` calls in all: what the plan
/// leaves, shared evenly (a hop that retries takes a share per try).
fn calls_share(plan: &Plan, calls_left: usize) -> usize {
    if plan.parallel.is_empty() {
        return 0;
    }
    let Some(spent) = plan.count_hops(calls_left) else {
        return 0;
    };
    let direct: usize = plan.hops().map(|h| h.options.tries() as usize).sum();
    (calls_left - spent) / direct.max(1)
}

/// What an inbound request asks of this service, read from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// How many services the request passed through before this one.
    pub depth: u32,
    /// How many calls its whole subtree may make here
    /// ([`context::CALLS_LEFT_HEADER`]).
    pub calls_left: usize,
    /// How long the request may take here, hops included.
    pub budget: Duration,
    /// What its behaviour directives drew.
    pub decision: Decision,
    /// Which attempt of the request this is (1 for the first).
    pub attempt: u32,
}

/// Why an inbound request's own headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Context(#[from] context::ContextError),
    #[error(transparent)]
    Directive(#[from] DirectiveError),
}

/// Whether the decision makes this request fail, given how it arrived.
pub fn injected_failure(decision: &Decision, protocol: InboundProtocol) -> bool {
    if protocol == InboundProtocol::Grpc {
        decision.grpc_code().is_some_and(|c| c != 0)
    } else {
        decision
            .http_status()
            .is_some_and(|s| !(200..300).contains(&s))
    }
}

/// `service version`, as a report's message names its writer.
struct Who<'a>(&'a Identity);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.service, self.0.version)
    }
}

/// The report of a request before any hop ran: identity, request info,
/// the attempt it answers and the trace it is part of.
fn base_report(
    identity: &Identity,
    inbound: &Inbound,
    request_id: String,
    attempt: u32,
    trace: Option<&crate::spans::Trace>,
) -> Report {
    let mut request_info = Vec::with_capacity(inbound.headers.len() + 1);
    request_info.push(inbound.request_line.clone());
    for (name, value) in &inbound.headers {
        // Header values are nearly always ASCII: checked as UTF-8 at once
        // (a word at a time), the lossy walk only for the rare other.
        let value = match std::str::from_utf8(value.as_bytes()) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value.as_bytes()),
        };
        let mut line = String::with_capacity(name.as_str().len() + 2 + value.len());
        line.push_str(name.as_str());
        line.push_str(": ");
        line.push_str(&value);
        request_info.push(line);
    }
    Report {
        received_date: rfc3339(inbound.received),
        message: String::new(),
        request_info,
        service: identity.service.clone(),
        version: identity.version.clone(),
        host: identity.host.clone(),
        namespace: identity.namespace.clone(),
        pod_ip: identity.pod_ip.clone(),
        protocol: inbound.protocol,
        request_id,
        duration_ms: 0.0,
        parallel_forwards: Forwards::default(),
        injected: Vec::new(),
        padding: String::new(),
        timed_out: false,
        attempt,
        try_number: context::inbound_try(&inbound.headers),
        stream_message: 0,
        plan: String::new(),
        tls: inbound.tls.clone(),
        peer: inbound.peer.clone(),
        method: inbound
            .method
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        body_bytes: inbound.body.as_ref().map_or(0, |(len, _)| *len),
        body_sha256: inbound
            .body
            .as_ref()
            .map(|(_, sha)| sha.clone())
            .unwrap_or_default(),
        trace_id: match trace {
            Some(trace) => trace.trace_id().to_owned(),
            None => crate::spans::propagate::carried_trace_id(&inbound.headers).unwrap_or_default(),
        },
        span_id: trace.map(|t| t.span_id().to_owned()).unwrap_or_default(),
        trace_url: String::new(),
    }
}

/// RFC 3339 in UTC with nanoseconds. The date and time to the second are
/// formatted once per second (per thread), the fraction for each call.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let Ok(since) = at.duration_since(SystemTime::UNIX_EPOCH) else {
        return String::new();
    };
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != since.as_secs() {
            let whole = at - Duration::from_nanos(u64::from(since.subsec_nanos()));
            let text = time::OffsetDateTime::from(whole)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            *cached = (since.as_secs(), text.trim_end_matches('Z').to_owned());
        }
        // `.{:09}Z` without the formatting machinery.
        let mut fraction = *b".000000000Z";
        let mut nanos = since.subsec_nanos();
        for digit in fraction[1..10].iter_mut().rev() {
            *digit = b'0' + (nanos % 10) as u8;
            nanos /= 10;
        }
        let mut out = String::with_capacity(cached.1.len() + fraction.len());
        out.push_str(&cached.1);
        out.push_str(std::str::from_utf8(&fraction).unwrap_or_default());
        out
    })
}

/// A duration in milliseconds with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
