//! A default cascade per service (`serve --calls`, `mesh NAME=PLAN`, a
//! topology file): `curl /` makes the whole tree, the request's own target
//! the remainder; the calls of a cascade that loops back are bounded across
//! levels; replicas of a name are called in turn. With curl, grpcurl and
//! the real binary.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use servicemock::config::Settings;
use servicemock::mesh::{Member, Mesh};
use servicemock::plan::Limits;

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");

fn calling(name: &str, path: &str) -> Member {
    Member::from_arg(&format!("{name}={path}"), &Limits::default()).unwrap()
}

async fn mesh_of(members: &[Member], settings: Settings) -> Mesh {
    Mesh::start_members(members, options(settings))
        .await
        .expect("mesh starts")
}

/// [`run_to_end`] from a blocking thread.
async fn run_async(args: Vec<String>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || run_to_end(&args))
        .await
        .unwrap()
}

fn hops(level: &Value) -> Vec<&Value> {
    level["ParallelForwards"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["SequentialForwards"].as_array().into_iter().flatten())
        .collect()
}

/// Every hop of the whole tree.
fn all_hops(report: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut levels = vec![report];
    while let Some(level) = levels.pop() {
        for hop in hops(level) {
            out.push(hop);
            if hop["Response"].is_object() {
                levels.push(&hop["Response"]);
            }
        }
    }
    out
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn curl_on_a_plain_path_makes_the_three_level_cascade() {
    let mesh = mesh_of(
        &[
            calling("service1", "/@service2|service3/"),
            calling("service2", "/@service4/"),
            Member::named("service3"),
            Member::named("service4"),
        ],
        Settings::default(),
    )
    .await;
    let entry = mesh.at("service1");
    let (head, body) = curl_off_runtime(vec![format!("http://{entry}/productpage?user=7")]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["Plan"], "default");
    assert!(
        report["Message"]
            .as_str()
            .unwrap()
            .contains("its default plan, --calls"),
        "{report}"
    );
    let first = hops(&report);
    assert_eq!(first.len(), 2);
    let service2 = &first[0]["Response"];
    assert_eq!(service2["Service"], "service2");
    assert_eq!(service2["Plan"], "default", "service2 ran its own default");
    assert_eq!(
        service2["RequestInfo"][0],
        "GET /productpage?user=7 HTTP/1.1"
    );
    let service4 = &hops(service2)[0]["Response"];
    assert_eq!(service4["Service"], "service4");
    assert_eq!(
        service4["RequestInfo"][0],
        "GET /productpage?user=7 HTTP/1.1"
    );
    assert!(service4.get("Plan").is_none(), "a leaf runs no default");
    assert_eq!(first[1]["Response"]["Service"], "service3");
    // The tree view says so on the entry's line.
    let (_, tree) = curl_off_runtime(vec![format!("http://{entry}/?view=tree")]).await;
    assert!(tree.contains("1.1.1 http  service4 v1  200 ok"), "{tree}");
    // A request with its own command runs its own plan.
    let (_, body) = curl_off_runtime(vec![format!("http://{entry}/@service3/end")]).await;
    let own: Value = serde_json::from_str(&body).unwrap();
    assert!(own.get("Plan").is_none(), "{own}");
    assert_eq!(hops(&own).len(), 1);
    assert_eq!(hops(&own)[0]["Response"]["Service"], "service3");
}

#[tokio::test]
async fn a_default_that_fans_out_in_a_loop_ends_within_the_call_budget() {
    let settings = Settings {
        limits: Limits {
            max_hops: 100,
            ..Limits::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_of(&[calling("a", "/@b|b/"), calling("b", "/@a|a/")], settings).await;
    let entry = mesh.at("a");
    let started = std::time::Instant::now();
    let (status, body) = get(entry, "/").await;
    assert!(started.elapsed() < Duration::from_secs(20), "it ends fast");
    assert_eq!(status, 502, "the calls it could not make are failures");
    let report: Value = serde_json::from_str(&body).unwrap();
    let made = all_hops(&report);
    assert!(
        made.len() <= 100,
        "{} calls, more than --max-hops 100",
        made.len()
    );
    assert!(
        made.len() >= 50,
        "the budget is spent, not refused at once: {}",
        made.len()
    );
    let refused: Vec<&&Value> = made.iter().filter(|h| h["Status"] == 508).collect();
    assert!(!refused.is_empty());
    let why = refused[0]["Response"]["Message"].as_str().unwrap();
    assert!(why.contains("call budget spent"), "{why}");
    assert!(why.contains("--max-hops 100"), "{why}");
}

#[tokio::test]
async fn a_default_that_loops_one_to_one_ends_at_max_depth() {
    let settings = Settings {
        limits: Limits {
            max_depth: 6,
            ..Limits::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_of(&[calling("a", "/@b/"), calling("b", "/@a/")], settings).await;
    let (status, body) = get(mesh.at("a"), "/").await;
    assert_eq!(status, 502);
    let report: Value = serde_json::from_str(&body).unwrap();
    let made = all_hops(&report);
    assert_eq!(
        made.len(),
        6,
        "the sixth service is refused: it would pass --max-depth"
    );
    let refused: Vec<&&Value> = made.iter().filter(|h| h["Status"] == 508).collect();
    assert_eq!(refused.len(), 1);
    let why = refused[0]["Response"]["Message"].as_str().unwrap();
    assert!(why.contains("--max-depth 6"), "{why}");
}

#[ignore = "needs grpcurl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn a_grpc_call_without_a_plan_runs_the_default() {
    let mesh = mesh_of(
        &[
            calling("service1", "/@grpc:service2/"),
            Member::named("service2"),
        ],
        Settings::default(),
    )
    .await;
    let entry = mesh.at("service1");
    let out = grpcurl_run(vec![
        "-plaintext".into(),
        "-d".into(),
        "{}".into(),
        entry.to_string(),
        "servicemock.v1.MockService/Call".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["plan"], "default", "{answer}");
    let hop = &answer["parallelForwards"][0]["sequentialForwards"][0];
    assert_eq!(hop["protocol"], "PROTOCOL_GRPC", "{answer}");
    assert_eq!(hop["response"]["service"], "service2", "{answer}");
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn serve_takes_its_default_from_a_flag_or_a_file_and_refuses_a_bad_one() {
    let downstream = mesh(&["service2"]).await;
    let to = downstream.at("service2");
    let file = std::env::temp_dir().join(format!("servicemock-calls-{}.json", std::process::id()));
    std::fs::write(&file, format!(r#"{{"path": "/@{to}/"}}"#)).unwrap();
    for how in [
        vec!["--calls".to_owned(), format!("/@{to}/")],
        vec!["--calls-file".to_owned(), file.display().to_string()],
    ] {
        let args: Vec<&str> = ["--name", "front"]
            .into_iter()
            .chain(how.iter().map(String::as_str))
            .collect();
        let (_running, addr) = serve_process(&args, &[]).await;
        let (head, body) = curl_off_runtime(vec![format!("http://{addr}/orders")]).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{how:?}: {head}");
        let report: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["Plan"], "default", "{how:?}");
        let leaf = &hops(&report)[0]["Response"];
        assert_eq!(leaf["Service"], "service2");
        assert_eq!(leaf["RequestInfo"][0], "GET /orders HTTP/1.1", "{how:?}");
    }
    // A plan that does not parse stops the service at start, saying where.
    let (code, said) = run_async(vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--calls".into(),
        "/@service2||service3/".into(),
    ])
    .await;
    assert_ne!(code, Some(0));
    assert!(said.contains("--calls /@service2||service3/"), "{said}");
    assert!(said.contains("position"), "{said}");
    std::fs::write(&file, r#"{"path": "/@a/", "pth": 1}"#).unwrap();
    let (code, said) = run_async(vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--calls-file".into(),
        file.display().to_string(),
    ])
    .await;
    assert_ne!(code, Some(0));
    assert!(said.contains("pth"), "{said}");
    let _ = std::fs::remove_file(&file);
}

const TOPOLOGY: &str = "\
# Bookinfo's shape: productpage calls details and reviews; reviews has
# three versions, v2 with two replicas.
services:
  - name: productpage
    calls: /@details|reviews/
  - name: details
  - name: reviews
    calls: /@ratings/
    versions:
      - name: v1
        replicas: 1
      - name: v2
        replicas: 2
        delay: 1ms
      - name: v3
        replicas: 1
  - name: ratings
";

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn a_topology_runs_in_mesh_with_replicas_called_in_turn() {
    let file =
        std::env::temp_dir().join(format!("servicemock-topology-{}.yaml", std::process::id()));
    std::fs::write(&file, TOPOLOGY).unwrap();
    let mut child = Command::new(BIN)
        .args(["mesh", "--base-port", "0", "--topology"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    // The table it prints: NAME VERSION ADDRESS ..., a line per server.
    let (entry, table, stdout) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(stdout);
        let mut table = Vec::new();
        let mut line = String::new();
        while lines.read_line(&mut line).unwrap() > 0 && !line.starts_with("@name") {
            table.push(line.trim_end().to_owned());
            line.clear();
        }
        let entry: SocketAddr = table
            .iter()
            .find(|l| l.trim_start().starts_with("productpage "))
            .and_then(|l| l.split_whitespace().nth(2))
            .expect("productpage's line")
            .parse()
            .unwrap();
        (entry, table, lines)
    })
    .await
    .unwrap();
    let servers = table.iter().filter(|l| l.contains("127.0.0.1:")).count();
    assert_eq!(
        servers, 7,
        "productpage, details, 4 of reviews, ratings: {table:#?}"
    );
    assert!(
        table
            .iter()
            .any(|l| l.contains("reviews") && l.contains("v2") && l.contains("/@ratings/")),
        "{table:#?}"
    );
    wait_healthy(entry, Duration::from_secs(10)).await;
    let mut versions = std::collections::BTreeMap::<String, usize>::new();
    let mut hosts = std::collections::BTreeSet::<String>::new();
    for _ in 0..20 {
        let (head, body) = curl_off_runtime(vec![format!("http://{entry}/productpage")]).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let report: Value = serde_json::from_str(&body).unwrap();
        let reviews = &hops(&report)[1]["Response"];
        assert_eq!(reviews["Service"], "reviews");
        *versions
            .entry(reviews["Version"].as_str().unwrap().into())
            .or_default() += 1;
        hosts.insert(reviews["Host"].as_str().unwrap().into());
        let ratings = &hops(reviews)[0]["Response"];
        assert_eq!(ratings["Service"], "ratings", "three levels: {report}");
    }
    // Four servers of reviews taken in turn: v1, v2, v2, v3.
    assert_eq!(
        versions,
        [("v1".into(), 5), ("v2".into(), 10), ("v3".into(), 5)].into(),
        "{versions:?}"
    );
    assert_eq!(hosts.len(), 4, "each replica its own host: {hosts:?}");
    assert!(hosts.contains("reviews-v2-1"), "{hosts:?}");
    drop(stdout);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_bad_topology_is_refused_with_file_line_and_column() {
    let dir = std::env::temp_dir();
    let cases = [
        (
            "services:\n  - name: a\n  - name: a\n",
            ":3:11: service name \"a\" used twice",
        ),
        (
            "services:\n  - name: a\n    calls: /@b/\n",
            ":3:12: a calls \"b\", which this file does not define",
        ),
        (
            "services:\n  - name: a\n    versions:\n      - name: v2\n",
            ":4:15: version v2 of a has no replicas",
        ),
    ];
    for (i, (text, expected)) in cases.into_iter().enumerate() {
        let file = dir.join(format!(
            "servicemock-bad-topology-{}-{i}.yaml",
            std::process::id()
        ));
        std::fs::write(&file, text).unwrap();
        let (code, said) = run_async(vec![
            "mesh".into(),
            "--base-port".into(),
            "0".into(),
            "--topology".into(),
            file.display().to_string(),
        ])
        .await;
        assert_ne!(code, Some(0));
        assert!(
            said.contains(&format!("{}{expected}", file.display())),
            "{said}"
        );
        let _ = std::fs::remove_file(&file);
    }
}

#[tokio::test]
async fn a_topology_whose_defaults_form_a_cycle_is_said_at_start() {
    let file = std::env::temp_dir().join(format!("servicemock-cycle-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        "services:\n  - name: a\n    calls: /@b/\n  - name: b\n    calls: /@a/\n",
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["mesh", "--base-port", "0", "--topology"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let mut stderr = running.0.stderr.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(&mut stderr)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        line.contains("the default calls form a cycle, a → b → a"),
        "{line}"
    );
    assert!(line.contains("--max-hops"), "{line}");
    let _ = std::fs::remove_file(&file);
}
