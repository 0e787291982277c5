//! `servicemock load` as a user runs it: the binary against real servers,
//! its table, its JSON and its verdict (the exit code). The split is a real
//! proxy's (HAProxy, weights 90/10 between a v1 and a v2 servicemock); the
//! failure share is a service's own `--error-rate`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::haproxy::{replica, Proxy};
use common::*;
use servicemock::behavior::{self, Directives};
use servicemock::mesh::Mesh;

/// Runs `servicemock load ARGS…`: exit code, stdout, stderr.
async fn load(args: &[&str]) -> (i32, String, String) {
    run_load(args).await
}

#[ignore = "needs haproxy: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn a_90_10_split_by_a_real_proxy_is_judged() {
    let entry = replica("frontend", "v1").await;
    let v1 = replica("reviews", "v1").await;
    let v2 = replica("reviews", "v2").await;
    let proxy = Proxy {
        servers: &[(v1.at("reviews"), 90), (v2.at("reviews"), 10)],
        ..Proxy::default()
    }
    .start()
    .await;
    let e = entry.at("frontend").to_string();
    let path = format!("/@{}/end", proxy.addr);
    let hop = format!("{}.version", proxy.addr);

    // 600 calls through the proxy, with these expectations.
    let split = |expect: &[&str]| {
        let mut args = vec![
            e.clone(),
            path.clone(),
            "-n".into(),
            "600".into(),
            "-c".into(),
            "4".into(),
        ];
        for x in expect {
            args.push("--expect".into());
            args.push((*x).to_owned());
        }
        args
    };
    // The split as written passes, by the hop's place or by the name of
    // the service that answered there.
    let expect = format!("{hop}=v1:90,v2:10");
    let args = split(&[&expect, "reviews.version=v1:90,v2:10"]);
    let (code, table, said) = load(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    eprintln!("{table}");
    assert_eq!(code, 0, "{table}\n{said}");
    assert!(table.contains("600 calls"), "{table}");
    assert!(table.contains("1.1 "), "a row for the hop: {table}");
    assert!(
        table.contains("version      v1 540 (90.0%), v2 60 (10.0%)"),
        "{table}"
    );
    assert_eq!(table.matches("  PASS").count(), 2, "{table}");

    // 50/50 is not what the proxy does.
    let args = split(&["1.1.version=v1:50,v2:50"]);
    let (code, table, _) = load(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 1, "{table}");
    assert!(
        table.contains("FAIL: the observed shares differ"),
        "{table}"
    );

    // Too few calls to tell 90/10 from anything: said, and not a pass.
    let (code, table, _) = load(&[&e, &path, "-n", "20", "--expect", &expect]).await;
    assert_eq!(code, 2, "{table}");
    assert!(
        table.contains("CANNOT JUDGE: too few answers to judge: 20"),
        "{table}"
    );
    assert!(table.contains("at least 50 are needed"), "{table}");

    // The same over h2c and gRPC hops behind the proxy, as JSON.
    for protocol in ["h2c", "grpc"] {
        let path = format!("/@{protocol}:{}/end", proxy.addr);
        let (code, json, said) = load(&[
            &e,
            &path,
            "-n",
            "300",
            "--json",
            "--expect",
            &format!("{hop}=v1:90,v2:10"),
        ])
        .await;
        assert_eq!(code, 0, "{protocol}: {json}\n{said}");
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["requests"], 300);
        let hop = &doc["positions"][1];
        assert_eq!(hop["position"], "1.1");
        assert_eq!(hop["versions"]["v1"], 270, "{protocol}: {hop}");
        assert_eq!(hop["versions"]["v2"], 30, "{protocol}: {hop}");
        assert_eq!(doc["expectations"][0]["verdict"], "pass");
    }
}

/// A mesh whose every member fails 10 % of requests (`--error-rate 10`).
async fn flaky() -> Mesh {
    let mut defaults = Directives::default();
    defaults
        .set(behavior::STATUS, "503@10%", Duration::from_secs(1))
        .unwrap();
    let mut options = options(Default::default());
    options.defaults = defaults;
    Mesh::start(&["flaky".to_owned()], options).await.unwrap()
}

#[tokio::test]
async fn an_error_rate_is_judged_over_each_protocol() {
    let mesh = flaky().await;
    let target = mesh.at("flaky").to_string();
    for protocol in [None, Some("--h2c"), Some("--grpc")] {
        let mut args = vec![target.as_str(), "/end", "-n", "2000", "-c", "8"];
        args.extend(protocol);
        // 99.99 %: a false alarm in one run of ten thousand.
        let ok = [
            "--expect",
            "result=ok:90,status:10",
            "--confidence",
            "99.99",
        ];
        let (code, table, said) = load(&[args.as_slice(), &ok].concat()).await;
        assert_eq!(code, 0, "{protocol:?}: {table}\n{said}");
        let status = if protocol == Some("--grpc") {
            "UNAVAILABLE"
        } else {
            "503"
        };
        assert!(
            table.contains(&format!(" {status} ")),
            "{protocol:?}: {table}"
        );
        // Twice the failures is told apart.
        let wrong = ["--expect", "result=ok:80,status:20"];
        let (code, table, _) = load(&[args.as_slice(), &wrong].concat()).await;
        assert_eq!(code, 1, "{protocol:?}: {table}");
    }
}

#[tokio::test]
async fn an_open_loop_holds_its_rate_or_says_it_could_not() {
    let mesh = mesh(&["a"]).await;
    let a = mesh.at("a").to_string();
    let (code, table, said) = load(&[&a, "/x", "--qps", "100", "-d", "1s", "-c", "4"]).await;
    assert_eq!(code, 0, "{said}");
    assert!(table.contains("open loop at 100/s: held"), "{table}");
    let calls: u64 = table
        .split(" calls")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((90..=101).contains(&calls), "{calls}: {table}");
    // One call in flight at a time, each taking 50 ms, cannot make 100/s:
    // the calls start late, and their latency counts the wait.
    let (code, table, _) = load(&[
        &a,
        "/x",
        "--qps",
        "100",
        "-n",
        "20",
        "-c",
        "1",
        "-H",
        "x-mock-delay: 50ms",
    ])
    .await;
    assert_eq!(code, 0);
    assert!(table.contains("NOT held"), "{table}");
    let p99: f64 = table
        .split("p99 ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        p99 > 400.0,
        "the 20th call waited ~0.8 s for its turn: {table}"
    );
}

#[tokio::test]
async fn bad_arguments_are_named() {
    let unused: SocketAddr = closed_port().await;
    let target = unused.to_string();
    for (args, says) in [
        (vec![target.as_str(), "/@a||b"], "empty target"),
        (
            vec![&target, "/", "--expect", "version=v1:90"],
            "add up to 90",
        ),
        (
            vec![&target, "/", "-H", "x-mock-status: 700"],
            "not an HTTP status",
        ),
        (
            vec![&target, "/", "-H", "content-length: 1"],
            "cannot be set on a hop",
        ),
        (vec![&target, "/", "--qps", "0"], "a positive rate"),
    ] {
        let (code, _, said) = load(&args).await;
        assert_ne!(code, 0, "{args:?}");
        assert!(said.contains(says), "{args:?}: {said}");
    }
    // Nobody listening: every call fails, the table says why, and the run
    // says no call was answered (exit 2: nothing to judge by).
    let (code, table, said) = load(&[&target, "/", "-n", "3"]).await;
    assert_eq!(code, 2, "{said}");
    assert!(
        table.contains("3 errors") && table.contains("refused 3"),
        "{table}"
    );
    assert!(said.contains("no call was answered: 3 refused"), "{said}");
}
