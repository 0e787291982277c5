//! One hop as the calling application makes it: how long it may take (its
//! own `[:timeout=…]` or `--hop-timeout`, within the request's deadline,
//! and the error says which limit it was), its tries (`[:retries=N]`, each
//! resending the hop's call id with `x-servicemock-try: K`, so the callee
//! counts every arrival whichever layer retried), and what each try said.

use std::sync::atomic::Ordering;
use std::sync::LazyLock;
use std::time::Duration;

use ::http::header::HOST;
use ::http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::context::{HopContext, Outbound, CALL, CALLS_LEFT, DEPTH, REQUEST_ID, TIMEOUT, TRY};
use super::header_numbers::number_value;
use super::transport::{HopUrl, Transport};
use super::{deadline, millis, resolve, Executor, HopResult, Outgoing};
use crate::plan::options::RetryOn;
use crate::plan::Hop;
use crate::report::{Forward, Outcome, Try};

/// Which limit a hop's timer is: the hop's own, the service's, or the
/// time left of the request.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Own(Duration),
    HopTimeout(Duration),
    Deadline,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Own(d) => write!(f, "the hop's own timeout of {}", deadline::human(*d)),
            Limit::HopTimeout(d) => write!(f, "--hop-timeout {}", deadline::human(*d)),
            Limit::Deadline => f.write_str("the request's deadline"),
        }
    }
}

impl Executor {
    /// Calls one hop within the time left, trying again as its options
    /// say, and records what happened. Each try is waited for until the
    /// request's deadline, at most the hop's own timeout (else
    /// `--hop-timeout`); the callee is told a smaller budget
    /// ([`deadline::callee_budget`]) so that its own timers fire first.
    pub(super) async fn call(&self, hop: &Hop, ctx: &HopContext) -> Forward {
        let start = Instant::now();
        let to = match hop.target.port {
            None if hop.protocol.default_port() != crate::plan::DEFAULT_PORT => {
                let port = Some(hop.protocol.default_port());
                let target = crate::plan::Target::new(hop.target.host.clone(), port);
                self.inner.resolver.resolve(&target)
            }
            _ => self.inner.resolver.resolve(&hop.target),
        };
        let transport = self.inner.transports.get(hop.protocol);
        let url = transport.url(&to, hop);
        let options = &hop.options;
        // One number for every try: a retry, by this service or a proxy on
        // the way, is the same call arriving again.
        let call = rand::random::<u64>();
        let retrying = options.retries > 0;
        let mut tries = Vec::new();
        let mut number = 1;
        let result = loop {
            // The first try begins as the hop does (one clock read fewer).
            let began = if number == 1 { start } else { Instant::now() };
            let said = if retrying { Some(number) } else { None };
            let mut result = self
                .try_once(hop, ctx, &to, &url, transport, call, said, began)
                .await;
            ctx.received.fetch_add(result.bytes, Ordering::Relaxed);
            let again = number < options.tries()
                && retryable(&result, options.retry_on(), hop.protocol.is_grpc())
                && Instant::now() + options.backoff() < ctx.deadline;
            if retrying {
                tries.push(Try {
                    number,
                    result: result.outcome,
                    status: result.status,
                    start_ms: millis(began.saturating_duration_since(ctx.started)),
                    duration_ms: millis(began.elapsed()),
                    error: result.error.clone(),
                    answered_by: result.answered_by.clone(),
                    // The last try's report is the hop's own Response.
                    response: if again { result.response.take() } else { None },
                });
            }
            if !again {
                break result;
            }
            tokio::time::sleep(options.backoff()).await;
            number += 1;
        };
        tracing::debug!(url = %url, result = result.outcome.as_str(), status = ?result.status, tries = number, "hop");
        Forward {
            url: url.into_string(),
            result: result.outcome,
            protocol: hop.protocol,
            status: result.status,
            start_ms: millis(start.saturating_duration_since(ctx.started)),
            duration_ms: millis(start.elapsed()),
            error: result.error,
            answered_by: result.answered_by,
            received_as: result.arrived_as.filter(|p| !p.is_how(hop.protocol)),
            response: result.response,
            options: (!options.is_empty()).then(|| options.summary()),
            tries,
        }
    }

    /// One try of `hop`, begun `now`: skipped when no time or room is
    /// left, else the transport's call with this hop's headers and timer.
    #[allow(clippy::too_many_arguments)]
    async fn try_once(
        &self,
        hop: &Hop,
        ctx: &HopContext,
        to: &resolve::Resolved,
        url: &HopUrl,
        transport: &dyn Transport,
        call: u64,
        number: Option<u32>,
        now: Instant,
    ) -> HopResult {
        let remaining = ctx.deadline.saturating_duration_since(now);
        let budget = self.inner.settings.max_report_size;
        let room = budget.saturating_sub(ctx.received.load(Ordering::Relaxed));
        if remaining.is_zero() {
            return HopResult::failed(
                Outcome::Skipped,
                "not called: the request's deadline had passed".into(),
            );
        }
        if room == 0 {
            return HopResult::failed(
                Outcome::Skipped,
                format!("not called: the reports of this request already took {budget} bytes (--max-report-size)"),
            );
        }
        let (cap, limit) = match hop.options.timeout {
            Some(own) => (own, Limit::Own(own)),
            None => {
                let service = self.inner.settings.hop_timeout;
                (service, Limit::HopTimeout(service))
            }
        };
        let (timer, limit) = if remaining < cap {
            (remaining, Limit::Deadline)
        } else {
            (cap, limit)
        };
        let callee_budget = deadline::callee_budget(timer);
        // A hop to what is not a servicemock carries none of its own.
        let own = (!ctx.bare).then(|| {
            // What the callee's own part of this plan asks, and its share
            // of what the plan leaves.
            let own = if hop.next.parallel.is_empty() {
                0
            } else {
                hop.next.count_hops(usize::MAX).unwrap_or(0)
            };
            [
                u64::from(ctx.depth) + 1,
                u64::try_from(own.saturating_add(ctx.calls_share)).unwrap_or(u64::MAX),
                call,
                u64::try_from(callee_budget.as_millis()).unwrap_or(u64::MAX),
            ]
        });
        // A plain HTTP/1.1 hop's Host goes in with them, in the same map
        // (added later by the transport, it would outgrow the map's room).
        let host =
            (own.is_some() && hop.protocol == crate::plan::Protocol::Http).then(|| to.http_host());
        let mut headers = hop_headers(ctx, hop, number, own, host);
        let span = ctx.trace.as_ref().map(|trace| {
            let span = trace.hop(hop_start(hop, url, number.unwrap_or(1)));
            span.inject(&mut headers);
            span
        });
        let out = Outgoing {
            to,
            url,
            headers,
            timer,
            room,
            options: &hop.options,
        };
        let mut result = transport.call(out, hop).await;
        if let Some(error) = result.error.as_mut() {
            match result.outcome {
                Outcome::Timeout => {
                    use std::fmt::Write as _;
                    let _ = write!(error, " ({limit})");
                }
                Outcome::Dns => {
                    if let Some(hint) = self
                        .inner
                        .resolver
                        .hint(&hop.target.host, hop.target.port_or_default())
                    {
                        error.push_str(" (");
                        error.push_str(&hint);
                        error.push(')');
                    }
                }
                _ => {}
            }
        }
        if let Some(span) = span {
            span.end(crate::spans::HopEnd {
                outcome: result.outcome.as_str(),
                status: result.status,
                grpc: hop.protocol.is_grpc(),
                error: result.error.as_deref(),
                // A servicemock's answer names itself in its own SERVER span.
                answered_by: match (&result.answered_by, &result.response) {
                    (Some(by), _) => Some(by.to_string().into()),
                    (None, Some(_)) => Some("servicemock".into()),
                    (None, None) => None,
                },
            });
        }
        result
    }
}

/// What the CLIENT span of a try of `hop` starts with.
fn hop_start<'a>(hop: &'a Hop, url: &'a HopUrl, try_number: u32) -> crate::spans::HopStart<'a> {
    let method = match &hop.options.method {
        Some(method) => method.as_str(),
        // As the HTTP transport sends it: a plan too long for a path is POSTed.
        None if url.path().is_none() => "POST",
        None => "GET",
    };
    let injected = hop
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-mock-"))
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut target = String::new();
    let _ = hop.target.write_to(&mut target);
    crate::spans::HopStart {
        protocol: hop.protocol.as_str(),
        target,
        host: &hop.target.host,
        port: hop.target.port.unwrap_or(hop.protocol.default_port()),
        url: url.as_str(),
        method,
        try_number,
        injected,
    }
}

/// Whether a try that ended so is tried again under `on`.
fn retryable(result: &HopResult, on: RetryOn, grpc: bool) -> bool {
    match result.outcome {
        Outcome::Timeout => on.contains(RetryOn::TIMEOUT),
        Outcome::Refused => on.contains(RetryOn::RESET),
        Outcome::Error => result.status.is_none() && on.contains(RetryOn::RESET),
        Outcome::Status => match result.status {
            Some(14) if grpc => on.contains(RetryOn::UNAVAILABLE),
            Some(status) if !grpc && (500..600).contains(&status) => {
                on.contains(RetryOn::STATUS_5XX)
            }
            _ => false,
        },
        _ => false,
    }
}

/// The headers of one try of a hop: on a hop to a servicemock its own
/// (`own`: depth, calls left, call id, time budget, and which try when
/// the hop may retry; `host` on a plain HTTP/1.1 one), what the request
/// carries on (`--propagate-header`, the request id), and the hop's own
/// `[header=…]`.
fn hop_headers(
    ctx: &HopContext,
    hop: &Hop,
    number: Option<u32>,
    own: Option<[u64; 4]>,
    host: Option<&str>,
) -> HeaderMap {
    let (mut headers, id_at) = match own {
        Some(values) => own_headers(&ctx.outbound, values, host),
        None => (
            HeaderMap::with_capacity(ctx.outbound.len() + hop.headers.len() + 1),
            None,
        ),
    };
    // Appended: the same name may come more than once.
    for (at, (name, value)) in ctx.outbound.iter().enumerate() {
        let ours = (own.is_some() && is_own(name)) || (host.is_some() && name == HOST);
        if Some(at) != id_at && !ours {
            headers.append(name.clone(), value.clone());
        }
    }
    // A plan cannot name `x-servicemock-*` (`check_hop_header`).
    for (name, value) in &hop.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    if let (Some(_), Some(number)) = (own, number) {
        headers.insert(TRY, number_value(u64::from(number)));
    }
    headers
}

/// The request id and servicemock's own headers of a hop, in this order:
/// `x-request-id`, then [`OWN`] with `values`, then `host` when given. Their names are hashed once,
/// into a map each hop clones and writes its values into in place (each
/// custom name inserted is hashed a byte at a time). The request id is the
/// first `outbound` carries (every request has one, carried or made): its
/// place in `outbound` comes back, not to be added twice.
fn own_headers(
    outbound: &Outbound,
    values: [u64; 4],
    host: Option<&str>,
) -> (HeaderMap, Option<usize>) {
    fn named(host: bool) -> HeaderMap {
        // Room for a few carried headers more without growing the index
        // (a clone's entries are as many as these: one more moves them).
        let mut map = HeaderMap::with_capacity(8);
        let host = host.then_some(HOST);
        for name in std::iter::once(REQUEST_ID).chain(OWN).chain(host) {
            map.insert(name, HeaderValue::from_static("0"));
        }
        map
    }
    static NAMED: LazyLock<HeaderMap> = LazyLock::new(|| named(false));
    static WITH_HOST: LazyLock<HeaderMap> = LazyLock::new(|| named(true));
    let mut map = match host {
        Some(_) => WITH_HOST.clone(),
        None => NAMED.clone(),
    };
    let id_at = outbound.iter().position(|(name, _)| name == REQUEST_ID);
    let mut slots = map.values_mut();
    if let (Some(slot), Some(at)) = (slots.next(), id_at) {
        slot.clone_from(&outbound[at].1);
    }
    // Values first: a zip takes from its first side first, and the slot
    // after the last value is the host's.
    for (value, slot) in values.into_iter().zip(slots.by_ref()) {
        *slot = number_value(value);
    }
    if let (Some(slot), Some(host)) = (slots.next(), host) {
        // An authority that is no header value fails the call as before:
        // the transport makes it again and says why.
        match HeaderValue::from_str(host) {
            Ok(value) => *slot = value,
            Err(_) => {
                map.remove(HOST);
            }
        }
    }
    if id_at.is_none() {
        map.remove(REQUEST_ID);
    }
    (map, id_at)
}

/// The names [`own_headers`] sets after the request id, in its order.
const OWN: [HeaderName; 4] = [DEPTH, CALLS_LEFT, CALL, TIMEOUT];

/// Whether `name` is one [`own_headers`] sets on a hop to a servicemock
/// (those win over the same name carried by `--propagate-header`).
fn is_own(name: &HeaderName) -> bool {
    name.as_str().starts_with("x-servicemock-") && OWN.contains(name)
}
