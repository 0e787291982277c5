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
    /// The call every worker of a run makes, as `options` ask.
    fn of(options: &LoadOptions) -> Call {
        Call {
            executor: Executor::for_client(options.timeout, options.tls.clone()),
            hop: Arc::new(Hop {
                target: options.target.clone(),
                protocol: options.protocol,
                headers: options.headers.clone(),
                options: crate::plan::HopOptions {
                    reuse: options.reuse,
                    ..Default::default()
                },
                next: Arc::new(options.plan.clone()),
            }),
            echo: options.echo.as_deref().map(Arc::from),
            stream: options.stream,
            timeout: options.timeout,
        }
    }

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

/// When the run is over: after `limit` calls, or at `ends`.
#[derive(Clone)]
struct Schedule {
    limit: Option<u64>,
    started: Instant,
    ends: Option<Instant>,
    live: Arc<Live>,
}

impl Schedule {
    /// The bounds the options ask for, each capped ([`MAX_REQUESTS`],
    /// [`MAX_DURATION`]); neither given is [`DEFAULT_REQUESTS`] calls.
    fn new(requests: Option<u64>, duration: Option<Duration>) -> Schedule {
        let limit = requests
            .or(duration.is_none().then_some(DEFAULT_REQUESTS))
            .map(|n| n.min(MAX_REQUESTS));
        let started = Instant::now();
        Schedule {
            limit,
            started,
            ends: duration.map(|d| started + d.min(MAX_DURATION)),
            live: Arc::default(),
        }
    }

    /// Takes the next call's number, or None when the run is over.
    fn next(&self) -> Option<u64> {
        if self.ends.is_some_and(|end| Instant::now() >= end) {
            return None;
        }
        let n = self.live.issued.fetch_add(1, Ordering::Relaxed);
        self.limit.is_none_or(|limit| n < limit).then_some(n)
    }
}

/// The tally every call is recorded in, shared by the workers.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Tally>>);

impl Recorder {
    fn record(&self, done: Done, latency: Duration) {
        let mut tally = self.lock();
        match done {
            Done::One(call) => tally.record(&call, latency),
            Done::Stream(answers) => tally.record_stream(&answers),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the load, calling `progress` about once a second with the counts
/// so far (requests, errors, rate, p50 and p99 in ms).
pub async fn run(
    options: LoadOptions,
    progress: impl Fn(&ProgressLine) + Send + 'static,
) -> Finished {
    let call = Call::of(&options);
    let schedule = Schedule::new(options.requests, options.duration);
    let recorder = Recorder::default();
    let ticker = tokio::spawn(report_progress(
        schedule.clone(),
        recorder.clone(),
        progress,
    ));
    let connections = options.connections.max(1);
    let held = match options.qps {
        None => closed_loop(&call, connections, &schedule, &recorder).await,
        Some(qps) => open_loop(&call, qps, connections, &schedule, &recorder).await,
    };
    let elapsed = schedule.started.elapsed();
    schedule.live.stop.store(true, Ordering::Relaxed);
    ticker.abort();
    let tally = std::mem::take(&mut *recorder.lock());
    let judgements = options
        .expectations
        .iter()
        .map(|e| e.judge(&tally, options.confidence))
        .collect();
    Finished {
        tally,
        elapsed,
        asked_qps: options.qps,
        held,
        judgements,
    }
}

/// Calls `progress` once a second with the counts so far, until the run
/// is over.
async fn report_progress(
    schedule: Schedule,
    recorder: Recorder,
    progress: impl Fn(&ProgressLine) + Send + 'static,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    loop {
        every.tick().await;
        if schedule.live.stop.load(Ordering::Relaxed) {
            break;
        }
        let line = ProgressLine::new(&recorder.lock(), schedule.started.elapsed());
        progress(&line);
    }
}

/// A closed loop: `connections` workers, each making its next call when
/// its last one answered. Always "held".
async fn closed_loop(
    call: &Call,
    connections: usize,
    schedule: &Schedule,
    recorder: &Recorder,
) -> bool {
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (call, schedule, recorder) = (call.clone(), schedule.clone(), recorder.clone());
        workers.spawn(async move {
            while schedule.next().is_some() {
                let due = Instant::now();
                recorder.record(call.make().await, due.elapsed());
            }
        });
    }
    while workers.join_next().await.is_some() {}
    true
}

/// An open loop: a call due every `1/qps` s whatever the answers, at most
/// `connections` in flight; a call that waits for a slot counts the wait
/// in its latency. Whether the rate was held: no call started more than a
/// tenth of a second, or ten intervals, after it was due.
async fn open_loop(
    call: &Call,
    qps: f64,
    connections: usize,
    schedule: &Schedule,
    recorder: &Recorder,
) -> bool {
    let qps = qps.max(0.001);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(connections));
    let mut calls = tokio::task::JoinSet::new();
    let mut late = Duration::ZERO;
    while let Some(n) = schedule.next() {
        let due = schedule.started + Duration::from_secs_f64(n as f64 / qps);
        // `-d 2s --qps 500` is 1000 calls, the last due before the end.
        if schedule.ends.is_some_and(|end| due >= end) {
            break;
        }
        tokio::time::sleep_until(due).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        late = late.max(Instant::now().saturating_duration_since(due));
        let (call, recorder) = (call.clone(), recorder.clone());
        calls.spawn(async move {
            recorder.record(call.make().await, due.elapsed());
            drop(permit);
        });
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
    late <= Duration::from_secs_f64((10.0 / qps).max(0.1))
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
