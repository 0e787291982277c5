//! The executor: runs a [`Plan`] and builds the [`Report`] of what happened.
//!
//! Groups of a plan run concurrently, the hops of a group one after another;
//! each hop goes out over its own protocol (the clients under [`transport`]:
//! `http` for `http`/`h2c`, `grpc`, `tcp`, and TLS for `https`/`grpcs`) with
//! the headers of [`context`] and the time that is left. No
//! hop failure is ever dropped: each is recorded on its hop with a readable
//! error. This module knows nothing of the server side; both edges hand it an
//! [`Inbound`] and render the report it returns.

mod admission;
mod base;
pub mod context;
pub(crate) mod deadline;
mod header_numbers;
mod hop;
mod judge;
pub mod resolve;
mod result;
pub mod transport;

#[cfg(test)]
mod tests;

use admission::calls_share;
use base::{base_report, Who};

pub use crate::report::millis;
pub use admission::{injected_failure, Admission, AdmissionError};
pub(crate) use base::rfc3339;
pub use result::HopResult;
pub(crate) use transport::grpc::metadata_of;
pub use transport::{failure, tls};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use ::http::{HeaderMap, HeaderName};
use futures::future::join_all;

use crate::behavior::{Decision, Injection};
use crate::config::{Identity, Settings};
use crate::plan::{Hop, Plan, Sequence};
use crate::report::{Forward, InboundProtocol, ParallelForward, Report};
use context::HopContext;
use resolve::Resolver;

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
    /// Shared with the report's `RequestInfo`, which is written from it.
    pub headers: Arc<HeaderMap>,
    pub received: SystemTime,
    pub started: Instant,
    /// The TLS session it came on, if any (boxed, as in [`Report`]: a
    /// request and its report are moved from future to future whole).
    pub tls: Option<Box<crate::caller::Tls>>,
    /// Who sent it, when known.
    pub peer: Option<Box<crate::caller::Peer>>,
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
            headers: Arc::new(headers),
            received: SystemTime::now(),
            started: Instant::now(),
            tls: None,
            peer: None,
            method: None,
            body: None,
        }
    }

    /// Notes the request's `method` and body (`body`, read whole, then let
    /// go: only its length and digest are kept). In place, as
    /// [`Inbound::set_caller`]: the request is some 500 bytes to move.
    pub fn set_body(&mut self, method: &::http::Method, body: &[u8]) {
        self.method = Some(method.clone());
        if !body.is_empty() {
            let digest = ring::digest::digest(&ring::digest::SHA256, body);
            let mut hex = String::new();
            crate::hex::push(&mut hex, digest.as_ref());
            self.body = Some((body.len() as u64, hex));
        }
    }

    /// Notes how the request arrived and who sent it
    /// ([`crate::caller::of_request`]).
    pub fn set_caller(
        &mut self,
        tls: Option<crate::caller::Tls>,
        peer: Option<crate::caller::Peer>,
    ) {
        (self.tls, self.peer) = (tls.map(Box::new), peer.map(Box::new));
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
    ) -> Box<Report> {
        let Admission {
            depth,
            calls_left,
            budget,
            ref decision,
            ..
        } = *admission;
        // A leaf calls nobody: only its request id is needed.
        let propagate: &[HeaderName] = if plan.parallel.is_empty() {
            &[]
        } else {
            &self.inner.propagate
        };
        let (outbound, request_id) = context::outbound_headers(&inbound.headers, propagate);
        let mut report = base_report(identity, inbound, request_id, admission, trace);
        let deadline = inbound.started + budget;
        let injected;
        (report.timed_out, injected) = delay(decision, inbound.started, budget).await;
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
        // Out of time, the hops still run (each with what little is left,
        // so each is reported); failing on purpose, none does.
        let on_purpose = !report.timed_out && injected_failure(decision, inbound.protocol);
        // A leaf's groups stay unset: nothing to run, nothing to make.
        if !on_purpose && !plan.parallel.is_empty() {
            report.parallel_forwards = self.run_plan(plan, &ctx).await.into();
        }
        report.message = if report.timed_out {
            format!(
                "{who} ran out of time: the caller allowed {}, its delay asked {}",
                deadline::human(budget),
                deadline::human(decision.delay)
            )
        } else if on_purpose {
            format!("{who} failed on purpose ({})", report.injected.join(", "))
        } else {
            match (report.forwards().count(), report.failed_hops()) {
                (0, _) => who.then(" answered, calling nobody"),
                (n, f) => who.called(n, f),
            }
        };
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
    ) -> Option<Box<Report>> {
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
        let mut report = base_report(identity, inbound, request_id, admission, trace);
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
            outbound: Vec::new(),
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

/// Waits the delay `decision` drew, from `started`, but no longer than
/// `budget`: the caller stops waiting soon after it, so a longer delay is
/// cut there and answered at once, saying so, instead of racing the
/// caller's timer. Whether it was cut, and the injections as they really
/// happened (`delay 2s cut at the deadline after 450ms`).
async fn delay(decision: &Decision, started: Instant, budget: Duration) -> (bool, Vec<Injection>) {
    let mut injected = decision.injected.clone();
    if decision.delay.is_zero() {
        return (false, injected);
    }
    if decision.delay <= budget {
        tokio::time::sleep_until(started + decision.delay).await;
        return (false, injected);
    }
    tokio::time::sleep_until(started + budget).await;
    for injection in &mut injected {
        if let Injection::Delay(asked) = *injection {
            *injection = Injection::DelayCut {
                asked,
                after: budget,
            };
        }
    }
    (true, injected)
}
