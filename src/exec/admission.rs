//! Admission: what an inbound request's own headers ask of this service
//! (its depth, the calls and time it may still spend, the behaviour it
//! draws), and the checks made before anyone is called.

use std::time::Duration;

use ::http::HeaderMap;

use super::{context, Executor};
use crate::behavior::{Decision, DirectiveError, Directives, Here};
use crate::plan::Plan;
use crate::report::InboundProtocol;

impl Executor {
    /// Reads what an inbound request's own headers ask — its depth, the time
    /// it allows (as `told`, read from `headers` by the edge, which also
    /// counted the attempt with it), and the behaviour directives (with
    /// `defaults` for those not given) — and draws the behaviour for it.
    /// Both edges admit this way.
    pub fn admit(
        &self,
        told: &context::Told<'_>,
        headers: &HeaderMap,
        defaults: &Directives,
        here: &Here<'_>,
    ) -> Result<Admission, AdmissionError> {
        let settings = &self.inner.settings;
        let depth = told.depth()?;
        let calls_left = told.calls_left(settings.limits.max_hops)?;
        let budget = told.budget(settings.request_timeout)?;
        // Without directives of its own, a request draws from the defaults
        // as they are (no merged copy made).
        let decision = if Directives::any_in(headers) {
            Directives::from_headers(headers, settings.max_delay)?
                .or(defaults)
                .decide(here, &mut rand::rng())
        } else {
            defaults.decide(here, &mut rand::rng())
        };
        Ok(Admission {
            depth,
            calls_left,
            budget,
            decision,
            attempt: here.attempt,
            try_number: told.try_number(),
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
        // Every call the tree makes (once per try), as the size check
        // counted them before this one (past the limit: more than any).
        let limit = self.inner.settings.limits.max_hops;
        let hops = plan.count_hops(limit).unwrap_or(usize::MAX);
        let padding = admission.decision.size.saturating_add(plan.padding());
        let levels = hops.saturating_add(1);
        let total = padding.saturating_add(propagated.saturating_mul(levels));
        if total > budget {
            return Err(format!(
                "the plan's answers would take {total} bytes ({padding} of padding, {propagated} bytes of propagated headers repeated at {levels} levels), more than --max-report-size {budget}"
            ));
        }
        Ok(())
    }
}

/// The calls each direct hop of `plan` may pass on beyond its own part of
/// it, when the request may make `calls_left` calls in all: what the plan
/// leaves, shared evenly (a hop that retries takes a share per try).
pub(super) fn calls_share(plan: &Plan, calls_left: usize) -> usize {
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
    /// Which try of its caller's own retries it is (0 when the caller
    /// does not retry: [`context::TRY_HEADER`]).
    pub try_number: u32,
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
