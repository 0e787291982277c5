//! The executor over a fake transport with paused time: sequences run in
//! order, groups at once, the report keeps the written order, deadlines
//! skip what cannot run and each hop's callee is told less time than the
//! hop is waited for. No sockets, no sleeps: tokio's clock is paused and
//! jumps straight to each timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use super::deadline::callee_budget;
use super::resolve::{Resolved, Resolver};
use super::transport::{HopFuture, HopUrl, Transport, Transports};
use super::{Admission, Executor, HopResult, Inbound, Outgoing};
use crate::behavior::Decision;
use crate::config::{Identity, Settings};
use crate::plan::path::parse_path;
use crate::plan::{Hop, Limits};
use crate::report::{Outcome, Received, Report};

/// One call the fake transport saw.
#[derive(Debug, Clone)]
struct Seen {
    host: String,
    at: Instant,
    timer: Duration,
    budget_header: Option<u64>,
    headers: Vec<String>,
}

/// Answers every hop after the delay set for its host (none: at once),
/// unless the hop's timer runs out first.
#[derive(Debug, Default)]
struct Fake {
    delays: HashMap<String, Duration>,
    seen: Mutex<Vec<Seen>>,
}

impl Transport for Fake {
    fn url(&self, to: &Resolved, _hop: &Hop) -> HopUrl {
        HopUrl::new(format!("fake://{}", to.authority))
    }

    fn call<'a>(&'a self, out: Outgoing<'a>, _hop: &'a Hop) -> HopFuture<'a> {
        Box::pin(async move {
            let host = out.to.host().to_owned();
            self.seen.lock().unwrap().push(Seen {
                host: host.clone(),
                at: Instant::now(),
                timer: out.timer,
                budget_header: out
                    .headers
                    .get(super::context::TIMEOUT_HEADER)
                    .and_then(|v| v.to_str().ok()?.parse().ok()),
                headers: out
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
                    .collect(),
            });
            let delay = self.delays.get(&host).copied().unwrap_or_default();
            if tokio::time::timeout(out.timer, tokio::time::sleep(delay))
                .await
                .is_err()
            {
                return HopResult::failed(Outcome::Timeout, "no answer".into());
            }
            let report = Report {
                service: host.into(),
                ..Report::default()
            };
            HopResult::from_ok_report(200, &"200 OK", Received::judged(report))
        })
    }
}

fn executor(fake: Arc<Fake>, settings: Settings) -> Executor {
    Executor::with_transports(
        Resolver::default(),
        settings,
        Vec::new(),
        Transports::all(fake),
    )
}

fn fake(delays: &[(&str, u64)]) -> Arc<Fake> {
    Arc::new(Fake {
        delays: delays
            .iter()
            .map(|(h, ms)| ((*h).to_owned(), Duration::from_millis(*ms)))
            .collect(),
        seen: Mutex::default(),
    })
}

async fn run(executor: &Executor, path: &str, budget: Duration) -> Report {
    run_with(executor, path, HeaderMap::new(), budget).await
}

async fn run_with(executor: &Executor, path: &str, headers: HeaderMap, budget: Duration) -> Report {
    let plan = parse_path(path, &Limits::default()).unwrap();
    let inbound = Inbound::new(
        crate::report::InboundProtocol::Http11,
        format!("GET {path}"),
        headers,
    );
    let admission = Admission {
        depth: 0,
        calls_left: crate::plan::Limits::DEFAULT_MAX_HOPS,
        budget,
        decision: Decision::default(),
        attempt: 1,
        try_number: 0,
    };
    *executor
        .answer(
            &Identity::named("entry", "v1"),
            &plan,
            &inbound,
            &admission,
            None,
        )
        .await
}

fn results(report: &Report) -> Vec<(String, &'static str, f64)> {
    report
        .forwards()
        .map(|f| (f.url.clone(), f.result.as_str(), f.start_ms))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn sequences_in_order_groups_at_once_report_in_written_order() {
    let fake = fake(&[("a", 100), ("b", 50), ("c", 120)]);
    let executor = executor(fake.clone(), Settings::default());
    let report = run(&executor, "/@a,b|c/end", Duration::from_secs(30)).await;
    assert_eq!(
        results(&report),
        [
            ("fake://a:8080".to_owned(), "ok", 0.0),
            ("fake://b:8080".to_owned(), "ok", 100.0),
            ("fake://c:8080".to_owned(), "ok", 0.0),
        ]
    );
    assert_eq!(report.duration_ms, 150.0, "the slower group sets the time");
    let seen = fake.seen.lock().unwrap();
    let order: Vec<&str> = seen.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(order, ["a", "c", "b"], "b waits for a, c does not");
    assert_eq!(seen[1].at, seen[0].at, "the groups start together");
    assert_eq!(seen[2].at - seen[0].at, Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn the_report_keeps_the_written_order_not_the_finishing_one() {
    let executor = executor(fake(&[("slow", 200), ("fast", 10)]), Settings::default());
    let report = run(&executor, "/@slow|fast/", Duration::from_secs(30)).await;
    let hosts: Vec<String> = report
        .forwards()
        .map(|f| f.response.as_ref().unwrap().service.to_string())
        .collect();
    assert_eq!(hosts, ["slow", "fast"]);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_times_out_the_hop_in_flight_and_skips_the_rest() {
    let executor = executor(
        fake(&[("a", 200), ("b", 200), ("c", 200)]),
        Settings::default(),
    );
    let report = run(&executor, "/@a,b,c/", Duration::from_millis(300)).await;
    let outcomes: Vec<(&str, f64)> = report
        .forwards()
        .map(|f| (f.result.as_str(), f.duration_ms))
        .collect();
    assert_eq!(
        outcomes,
        [("ok", 200.0), ("timeout", 100.0), ("skipped", 0.0)]
    );
    assert_eq!(report.duration_ms, 300.0);
}

#[tokio::test(start_paused = true)]
async fn each_callee_is_told_less_time_than_its_hop_is_waited_for() {
    let settings = Settings {
        hop_timeout: Duration::from_secs(2),
        ..Settings::default()
    };
    let fake = fake(&[("a", 250)]);
    let executor = executor(fake.clone(), settings);
    run(&executor, "/@a,b/", Duration::from_secs(1)).await;
    let seen = fake.seen.lock().unwrap();
    // a: the request's whole second (under --hop-timeout); b: what is left.
    assert_eq!(seen[0].timer, Duration::from_secs(1));
    assert_eq!(seen[1].timer, Duration::from_millis(750));
    for s in seen.iter() {
        let told = Duration::from_millis(s.budget_header.unwrap());
        assert_eq!(told, callee_budget(s.timer), "{s:?}");
        assert!(told < s.timer);
    }
}

#[tokio::test(start_paused = true)]
async fn a_delay_past_the_deadline_is_cut_there_and_said() {
    let executor = executor(fake(&[]), Settings::default());
    let plan = parse_path("/@a/", &Limits::default()).unwrap();
    let inbound = Inbound::new(
        crate::report::InboundProtocol::Http11,
        "GET /@a/".into(),
        HeaderMap::new(),
    );
    let admission = Admission {
        depth: 0,
        calls_left: crate::plan::Limits::DEFAULT_MAX_HOPS,
        budget: Duration::from_millis(450),
        decision: Decision {
            delay: Duration::from_secs(2),
            injected: vec![crate::behavior::Injection::Delay(Duration::from_secs(2))],
            ..Decision::default()
        },
        attempt: 1,
        try_number: 0,
    };
    let started = Instant::now();
    let report = executor
        .answer(
            &Identity::named("b", "v1"),
            &plan,
            &inbound,
            &admission,
            None,
        )
        .await;
    assert_eq!(started.elapsed(), Duration::from_millis(450));
    assert!(report.timed_out);
    assert_eq!(
        report.injected,
        ["delay 2s cut at the deadline after 450ms"]
    );
    assert_eq!(report.forwards().next().unwrap().result, "skipped");
}

#[test]
fn dates_are_rfc3339_with_nanoseconds_whatever_the_cache_holds() {
    let at = std::time::SystemTime::UNIX_EPOCH + Duration::new(1_764_000_000, 5_000);
    assert_eq!(super::rfc3339(at), "2025-11-24T16:00:00.000005000Z");
    let next = at + Duration::from_millis(1_500);
    assert_eq!(super::rfc3339(next), "2025-11-24T16:00:01.500005000Z");
    assert_eq!(super::rfc3339(at), "2025-11-24T16:00:00.000005000Z");
    let every_digit = at + Duration::new(2, 987_654_321 - 5_000);
    assert_eq!(
        super::rfc3339(every_digit),
        "2025-11-24T16:00:02.987654321Z"
    );
}

#[tokio::test]
async fn a_hop_carries_servicemocks_own_headers_over_propagated_ones() {
    let fake = fake(&[]);
    let depth = http::HeaderName::from_static("x-servicemock-depth");
    let executor = propagating(&fake, depth);
    let mut carried = HeaderMap::new();
    carried.insert("x-servicemock-depth", "99".parse().unwrap());
    carried.insert("x-request-id", "req-7".parse().unwrap());
    let path = "/@a[x-team=blue]/end";
    run_with(&executor, path, carried, Duration::from_secs(30)).await;
    let seen = fake.seen.lock().unwrap();
    let headers = &seen[0].headers;
    let value = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter_map(|h| h.strip_prefix(name)?.strip_prefix(": "))
            .collect()
    };
    assert_eq!(value("x-servicemock-depth"), ["1"], "{headers:?}");
    assert_eq!(value("x-servicemock-calls-left"), ["1023"], "{headers:?}");
    assert_eq!(value("x-servicemock-timeout-ms").len(), 1, "{headers:?}");
    assert_eq!(value("x-servicemock-call").len(), 1, "{headers:?}");
    assert_eq!(value("x-team"), ["blue"], "{headers:?}");
    assert_eq!(value("x-request-id"), ["req-7"], "{headers:?}");
    assert_eq!(headers[0], "x-request-id: req-7", "first, as before");
    assert!(
        value("x-servicemock-try").is_empty(),
        "tried once: {headers:?}"
    );
    // Made with them on a plain HTTP/1.1 hop, as the transport would.
    assert_eq!(value("host"), ["a:8080"], "{headers:?}");
}

#[tokio::test]
async fn only_a_plain_http_hop_carries_its_host_among_servicemocks_own() {
    let fake = fake(&[]);
    let executor = executor(fake.clone(), Settings::default());
    run(
        &executor,
        "/@grpc:a|h2c:b|http:c:80/end",
        Duration::from_secs(30),
    )
    .await;
    let hosts = |host: &str| hosts_seen(&fake, host);
    assert!(hosts("a").is_empty(), "gRPC: none");
    assert!(hosts("b").is_empty(), "h2c: its transport's choice");
    assert_eq!(
        hosts("c"),
        ["host: c"],
        "port 80 left out, as hyper-util does"
    );
}

#[tokio::test]
async fn a_propagated_host_loses_only_to_a_plain_http_hops_own() {
    let fake = fake(&[]);
    let executor = propagating(&fake, http::header::HOST);
    let mut carried = HeaderMap::new();
    carried.insert(http::header::HOST, "front.example".parse().unwrap());
    run_with(
        &executor,
        "/@grpc:a|c/end",
        carried,
        Duration::from_secs(30),
    )
    .await;
    let hosts = |host: &str| hosts_seen(&fake, host);
    assert_eq!(hosts("a"), ["host: front.example"], "carried on, as before");
    assert_eq!(hosts("c"), ["host: c:8080"], "the hop's own");
}

/// An executor through `fake` that also passes `name` on to every hop.
fn propagating(fake: &Arc<Fake>, name: http::HeaderName) -> Executor {
    let mut propagate = super::context::default_propagated();
    propagate.push(name);
    Executor::with_transports(
        Resolver::default(),
        Settings::default(),
        propagate,
        Transports::all(fake.clone()),
    )
}

/// The `host` lines the fake transport saw on the hop to `host`.
fn hosts_seen(fake: &Fake, host: &str) -> Vec<String> {
    let seen = fake.seen.lock().unwrap();
    let one = seen.iter().find(|s| s.host == host).unwrap();
    let hosts = one.headers.iter().filter(|h| h.starts_with("host: "));
    hosts.cloned().collect()
}
