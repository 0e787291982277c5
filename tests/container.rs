//! The container image for real: build it with docker/build.sh, start three
//! named containers on a private network, and check what a user of Docker or
//! Kubernetes relies on — name resolution through Docker's DNS, chains,
//! fan-out, mixed protocols, a stopped container reported in the tree, and a
//! SIGTERM that lets the request in flight finish and exits 0. Also brings up
//! docker/compose.yaml. Everything it makes is removed, even on failure.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// Runs docker with `args`, panicking with its stderr on failure.
fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

/// Removes the containers, network and compose project of one test run.
struct Cleanup {
    prefix: String,
    image: String,
    compose: Option<(String, String)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = docker_output(&["ps", "-aq", "--filter", &format!("name={}", self.prefix)]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = docker_output(&["rm", "-f", id]);
        }
        let _ = docker_output(&["network", "rm", &self.prefix]);
        if let Some((tool, project)) = &self.compose {
            let _ = compose_command(tool, project)
                .args(["down", "-v", "--timeout", "2"])
                .output();
        }
        let _ = docker_output(&["rmi", "-f", &self.image]);
    }
}

/// `docker compose`, or Debian's docker-compose (v1).
fn compose_tool() -> String {
    if Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return "docker compose".into();
    }
    tool("docker-compose")
}

fn compose_command(tool: &str, project: &str) -> Command {
    let mut words = tool.split_whitespace();
    let mut command = Command::new(words.next().unwrap());
    command.args(words).args([
        "-p",
        project,
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/docker/compose.yaml"),
    ]);
    command
}

fn published(container: &str) -> SocketAddr {
    let mapping = docker(&["port", container, "8080/tcp"]);
    mapping.lines().next().unwrap().parse().unwrap()
}

/// The Docker engine answers (the test is ignored unless asked for, so a
/// missing engine fails it).
fn ensure_docker() {
    tool("docker");
    let running = docker_output(&["info"]).status.success();
    assert!(running, "the Docker engine is not running");
}

#[ignore = "needs the Docker engine: scripts/test runs ignored tests"]
#[tokio::test(flavor = "multi_thread")]
async fn named_containers_form_a_mesh() {
    ensure_docker();
    let image = format!("servicemock:e2e-{}", std::process::id());
    let prefix = format!("smtest{}", std::process::id());
    let mut cleanup = Cleanup {
        prefix: prefix.clone(),
        image: image.clone(),
        compose: None,
    };
    let build = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/build.sh"))
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "docker/build.sh: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", &image])
        .parse()
        .unwrap();
    assert!(size < 15 * 1024 * 1024, "image is {size} bytes");
    assert_eq!(
        docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]),
        "65532:65532"
    );

    docker(&["network", "create", &prefix]);
    let name = |service: &str| format!("{prefix}-{service}");
    for service in ["service1", "service2", "service3"] {
        let mut args = vec!["run", "-d", "--name"];
        let container = name(service);
        let env = format!("SERVICEMOCK_NAME={service}");
        args.extend([
            container.as_str(),
            "--network",
            &prefix,
            "--network-alias",
            service,
        ]);
        args.extend([
            "--read-only",
            "--cap-drop",
            "ALL",
            "-e",
            &env,
            "-e",
            "SERVICEMOCK_SHUTDOWN_GRACE=10s",
        ]);
        if service == "service1" {
            args.extend(["-p", "127.0.0.1::8080"]);
        }
        args.push(&image);
        docker(&args);
    }
    let entry = published(&name("service1"));
    wait_healthy(entry, Duration::from_secs(30)).await;

    let (status, r) = report(entry, "/@service2/@service3/end").await;
    assert_eq!(status, 200, "{r:#?}");
    let s2 = only_child(&r);
    assert_eq!(
        (s2.service.as_str(), only_child(s2).service.as_str()),
        ("service2", "service3")
    );
    assert_eq!(hops(&r)[0].url, "http://service2:8080/@service3/end");

    let (status, r) = report(entry, "/@service2|service3/@service1/end").await;
    assert_eq!(status, 200, "{r:#?}");
    let names: Vec<_> = hops(&r)
        .iter()
        .map(|h| h.response.as_ref().unwrap().service.clone())
        .collect();
    assert_eq!(names, ["service2", "service3"]);

    let (status, r) = report(entry, "/@grpc:service2/@h2c:service3/@service1/end").await;
    assert_eq!(status, 200, "{r:#?}");
    let mut protocols = Vec::new();
    let mut level = &r;
    while let Some(hop) = level.forwards().next() {
        protocols.push(hop.protocol);
        level = hop.response.as_deref().unwrap();
    }
    assert_eq!(protocols, ["grpc", "h2c", "http"]);

    // A stopped container: its caller reports the failure and stays healthy.
    docker(&["stop", "-t", "5", &name("service3")]);
    let (status, r) = report(entry, "/@service2/@service3/end").await;
    assert_eq!(status, 502, "{r:#?}");
    let failed = hops(only_child(&r))[0];
    assert!(
        matches!(failed.result.as_str(), "dns" | "refused" | "timeout"),
        "{failed:#?}"
    );
    assert!(failed.error.is_some());
    assert_eq!(get(entry, "/health").await.0, 200);

    // SIGTERM with a request in flight: service2 is frozen, so the request
    // waits on it; service1 is told to stop, service2 thaws, the request
    // completes and service1 exits 0 within its grace period.
    docker(&["pause", &name("service2")]);
    let in_flight = tokio::spawn(async move { report(entry, "/@service2/end").await });
    wait_in_flight(entry, 1, Duration::from_secs(10)).await;
    docker(&["kill", "--signal", "TERM", &name("service1")]);
    wait_ready_status(entry, 503, Duration::from_secs(10)).await;
    let stopping_since = Instant::now();
    docker(&["unpause", &name("service2")]);
    let (status, r) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{r:#?}");
    assert_eq!(only_child(&r).service, "service2");
    let exit = loop {
        let state = docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.ExitCode}}",
            &name("service1"),
        ]);
        if let Some(code) = state.strip_prefix("false ") {
            break code.to_owned();
        }
        assert!(
            stopping_since.elapsed() < Duration::from_secs(10),
            "still running after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(exit, "0");

    // docker/compose.yaml brings up the same mesh by name.
    {
        let tool = compose_tool();
        let project = format!("{prefix}compose");
        cleanup.compose = Some((tool.clone(), project.clone()));
        let port = closed_port().await.port();
        let up = compose_command(&tool, &project)
            .args(["up", "-d"])
            .env("SERVICEMOCK_IMAGE", &image)
            .env("SERVICEMOCK_PORT", port.to_string())
            .output()
            .unwrap();
        assert!(
            up.status.success(),
            "compose up: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let entry: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_healthy(entry, Duration::from_secs(30)).await;
        let (status, r) = report(entry, "/@service2|service3/@service1/end").await;
        assert_eq!(status, 200, "{r:#?}");
        assert_eq!(r.service, "service1");
        let down = compose_command(&tool, &project)
            .args(["down", "-t", "2"])
            .env("SERVICEMOCK_IMAGE", &image)
            .output()
            .unwrap();
        assert!(
            down.status.success(),
            "compose down: {}",
            String::from_utf8_lossy(&down.stderr)
        );
    }

    // With docker/compose.tls.yaml on top: TLS on every hop, each level
    // showing how it arrived and, from the hop's client certificate, who
    // sent it.
    {
        let tool = compose_tool();
        let project = format!("{prefix}composetls");
        cleanup.compose = Some((tool.clone(), project.clone()));
        let certs = std::env::temp_dir().join(format!("{prefix}-certs"));
        let made = Command::new(env!("CARGO_BIN_EXE_servicemock"))
            .args(["certs", "--out"])
            .arg(&certs)
            .args(["service1", "service2", "service3"])
            .output()
            .unwrap();
        assert!(made.status.success());
        let port = closed_port().await.port();
        let up = compose_command(&tool, &project)
            .args([
                "-f",
                concat!(env!("CARGO_MANIFEST_DIR"), "/docker/compose.tls.yaml"),
                "up",
                "-d",
            ])
            .env("SERVICEMOCK_IMAGE", &image)
            .env("SERVICEMOCK_PORT", port.to_string())
            .env("SERVICEMOCK_CERTS", &certs)
            .output()
            .unwrap();
        assert!(
            up.status.success(),
            "compose up (TLS): {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let entry: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_healthy(entry, Duration::from_secs(30)).await;
        let (status, r) = report(entry, "/@https:service2/@grpcs:service3/end").await;
        assert_eq!(status, 200, "{r:#?}");
        let two = only_child(&r);
        let three = only_child(two);
        for (level, caller) in [(two, "service1"), (three, "service2")] {
            assert!(level.tls.is_some(), "{level:#?}");
            let principal = &level.peer.as_ref().expect("a caller").principal;
            assert_eq!(
                principal,
                &format!("spiffe://cluster.local/ns/default/sa/{caller}")
            );
        }
        let _ = std::fs::remove_dir_all(&certs);
    }
    drop(cleanup);
}
