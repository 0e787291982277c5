//! `servicemock load`: drives a cascade with many calls and says what the
//! mesh did — per position of the tree, who answered, with which outcome,
//! attempt and latency — and, with `--expect`, whether the shares seen are
//! the ones expected, by a statistical test ([`expect`]).
//!
//! Every call goes through the product's own executor ([`Executor::call_once`]):
//! the same pooled HTTP/1.1, h2c and gRPC clients and the same judgement
//! of an answer as a hop of a plan. Load is closed-loop (`-c` workers, each
//! one call after another) or open-loop (`--qps`: calls are due on a fixed
//! schedule and timed from when they were due, so a slow answer cannot hide
//! the latency of the calls queued behind it, as wrk2 and fortio do). It is
//! always bounded, by `-n` or `-d`.

mod converse;
pub mod expect;
pub mod render;
pub mod tally;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::exec::Executor;
use crate::plan::{Hop, Plan, Protocol, Target};
use expect::{Expectation, Judgement};
use tally::{Percentiles, Tally};

/// Most calls one run may make, and longest it may last.
pub const MAX_REQUESTS: u64 = 100_000_000;
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Most workers (or calls in flight) one run may have.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Calls made when neither `-n` nor `-d` is given.
pub const DEFAULT_REQUESTS: u64 = 200;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where the calls go.
    pub target: Target,
    pub protocol: Protocol,
    /// What the target is asked to do (from the path or `--plan`).
    pub plan: Plan,
    /// Over tcp, a line to have echoed instead of a plan: who answered is
    /// read from the echo's prefix.
    pub echo: Option<String>,
    /// Over tcp, keep connections for the next call.
    pub reuse: bool,
    /// Each call a `Converse` stream of this many messages (gRPC only).
    pub stream: Option<u32>,
    /// Headers on every call (`-H`), directives included.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Workers (closed loop), or most calls in flight (open loop).
    pub connections: usize,
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    /// Calls per second, open loop.
    pub qps: Option<f64>,
    /// Longest one call may take.
    pub timeout: Duration,
    pub expectations: Vec<Expectation>,
    /// 0..1, e.g. 0.99.
    pub confidence: f64,
    /// What `https:`/`grpcs:` calls trust and present.
    pub tls: crate::exec::tls::HopTls,
}

/// What one call of a run is: the plan, over tcp the echo of a line, or a
/// stream of the plan's messages.
#[derive(Clone)]
struct Call {
    executor: Executor,
    hop: Arc<Hop>,
    echo: Option<Arc<str>>,
    stream: Option<u32>,
    timeout: Duration,
}

/// What one call did.
enum Done {
    One(Box<crate::report::Forward>),
    Stream(Vec<(crate::report::Forward, Duration)>),
}

impl Call {
    async fn make(&self) -> Done {
        let (executor, hop, timeout) = (&self.executor, &*self.hop, self.timeout);
        if let Some(messages) = self.stream {
            return Done::Stream(converse::converse_once(executor, hop, messages, timeout).await);
        }
        Done::One(Box::new(match self.echo.as_deref() {
            Some(line) => executor.echo_once(hop, line, timeout).await,
            None => executor.call_once(hop, timeout).await,
        }))
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Finished {
    pub tally: Tally,
    pub elapsed: Duration,
    /// For an open loop: the rate asked, and whether it was held.
    pub asked_qps: Option<f64>,
    pub held: bool,
    pub judgements: Vec<Judgement>,
}

impl Finished {
    /// Calls per second over the run.
    pub fn rate(&self) -> f64 {
        self.tally.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Calls handed out, and whether the run is over (for the progress line).
#[derive(Default)]
struct Live {
    issued: AtomicU64,
    stop: AtomicBool,
}

/// Runs the load, calling `progress` about once a second with the counts
/// so far (requests, errors, rate, p50 and p99 in ms).
pub async fn run(
    options: LoadOptions,
    progress: impl Fn(&ProgressLine) + Send + 'static,
) -> Finished {
    let executor = Executor::for_client(options.timeout, options.tls.clone());
    let LoadOptions {
        target,
        protocol,
        plan,
        echo,
        reuse,
        stream,
        headers,
        connections,
        requests,
        duration,
        qps,
        timeout,
        expectations,
        confidence,
        tls: _,
    } = options;
    let hop = Arc::new(Hop {
        target,
        protocol,
        headers,
        options: crate::plan::HopOptions {
            reuse,
            ..Default::default()
        },
        next: Arc::new(plan),
    });
    let call = Call {
        executor,
        hop,
        echo: echo.map(Arc::from),
        stream,
        timeout,
    };
    let limit = requests
        .or(if duration.is_none() {
            Some(DEFAULT_REQUESTS)
        } else {
            None
        })
        .map(|n| n.min(MAX_REQUESTS));
    let duration = duration.map(|d| d.min(MAX_DURATION));
    let started = Instant::now();
    let ends = duration.map(|d| started + d);
    let live = Arc::new(Live::default());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let ticker = {
        let (live, tally) = (live.clone(), tally.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            loop {
                every.tick().await;
                if live.stop.load(Ordering::Relaxed) {
                    break;
                }
                let line = ProgressLine::new(
                    &tally.lock().unwrap_or_else(|p| p.into_inner()),
                    started.elapsed(),
                );
                progress(&line);
            }
        })
    };
    // Takes the next call's number, or None when the run is over.
    let next = {
        let live = live.clone();
        move || -> Option<u64> {
            if ends.is_some_and(|end| Instant::now() >= end) {
                return None;
            }
            let n = live.issued.fetch_add(1, Ordering::Relaxed);
            limit.is_none_or(|limit| n < limit).then_some(n)
        }
    };
    let record = {
        let tally = tally.clone();
        move |done: Done, latency: Duration| {
            let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
            match done {
                Done::One(call) => tally.record(&call, latency),
                Done::Stream(answers) => tally.record_stream(&answers),
            }
        }
    };
    let connections = connections.max(1);
    let mut held = true;
    match qps {
        None => {
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..connections {
                let (call, next, record) = (call.clone(), next.clone(), record.clone());
                workers.spawn(async move {
                    while next().is_some() {
                        let due = Instant::now();
                        record(call.make().await, due.elapsed());
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        }
        Some(qps) => {
            let qps = qps.max(0.001);
            let in_flight = Arc::new(tokio::sync::Semaphore::new(connections));
            let mut calls = tokio::task::JoinSet::new();
            let mut late = Duration::ZERO;
            while let Some(n) = next() {
                let due = started + Duration::from_secs_f64(n as f64 / qps);
                // `-d 2s --qps 500` is 1000 calls, the last due before the end.
                if ends.is_some_and(|end| due >= end) {
                    break;
                }
                tokio::time::sleep_until(due).await;
                // Waiting for a free slot delays the call, and the delay
                // counts in its latency (it is timed from `due`).
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                late = late.max(Instant::now().saturating_duration_since(due));
                let (call, record) = (call.clone(), record.clone());
                calls.spawn(async move {
                    record(call.make().await, due.elapsed());
                    drop(permit);
                });
                while calls.try_join_next().is_some() {}
            }
            while calls.join_next().await.is_some() {}
            // Held when no call started more than a tenth of a second, or
            // ten intervals, after it was due.
            let slack = Duration::from_secs_f64((10.0 / qps).max(0.1));
            held = late <= slack;
        }
    }
    let elapsed = started.elapsed();
    live.stop.store(true, Ordering::Relaxed);
    ticker.abort();
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    let judgements = expectations
        .iter()
        .map(|e| e.judge(&tally, confidence))
        .collect();
    Finished {
        tally,
        elapsed,
        asked_qps: qps,
        held,
        judgements,
    }
}

/// The counts a progress line shows.
#[derive(Debug, Clone)]
pub struct ProgressLine {
    pub done: u64,
    pub errors: u64,
    pub rate: f64,
    pub latency: Percentiles,
}

impl ProgressLine {
    fn new(tally: &Tally, elapsed: Duration) -> ProgressLine {
        ProgressLine {
            done: tally.requests,
            errors: tally.errors,
            rate: tally.requests as f64 / elapsed.as_secs_f64().max(1e-9),
            latency: Percentiles::of(&tally.latency),
        }
    }
}

impl std::fmt::Display for ProgressLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls, {:.0}/s, {} errors, p50 {:.2} ms, p99 {:.2} ms",
            self.done, self.rate, self.errors, self.latency.p50, self.latency.p99
        )
    }
}
