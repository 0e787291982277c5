//! Shared fixtures for the integration tests: a mesh of real servers on
//! ephemeral loopback ports, a stand-in downstream whose answers the test
//! chooses, and small helpers to read reports.

#![allow(dead_code)]

pub mod haproxy;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing;
use axum::Router;
use servicemock::config::Settings;
use servicemock::exec::context::default_propagated;
use servicemock::mesh::{Mesh, MeshOptions};
use servicemock::report::{Forward, Report};

/// Options for a test mesh on loopback, any free ports.
pub fn options(settings: Settings) -> MeshOptions {
    MeshOptions {
        bind: "127.0.0.1".parse().unwrap(),
        base_port: 0,
        version: "v1".into(),
        settings,
        propagate: default_propagated(),
        grace: Duration::from_secs(5),
        defaults: Default::default(),
        tls: false,
        spans: None,
        trace_url: None,
    }
}

/// A mesh of the given names with default settings.
pub async fn mesh(names: &[&str]) -> Mesh {
    mesh_with(names, Settings::default()).await
}

pub async fn mesh_with(names: &[&str], settings: Settings) -> Mesh {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    Mesh::start(&names, options(settings))
        .await
        .expect("mesh starts")
}

/// Where a test mesh's members listen, by name. A mesh stops when it is
/// dropped, so a test ends with its scope, no `stop` needed.
pub trait Members {
    /// Where `name` listens; a name the mesh does not have fails the test,
    /// naming those it has.
    fn at(&self, name: &str) -> SocketAddr;
}

impl Members for Mesh {
    fn at(&self, name: &str) -> SocketAddr {
        self.addr(name).unwrap_or_else(|| {
            let names: Vec<&str> = self.members.iter().map(|(n, _)| n.as_str()).collect();
            panic!("the mesh has no {name:?}: it has {names:?}")
        })
    }
}

/// A plain HTTP/1.1 client that ignores proxies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// GETs `path` from `addr`; returns status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// GETs `path` and parses the report.
pub async fn report(addr: SocketAddr, path: &str) -> (u16, Report) {
    let (status, body) = get(addr, path).await;
    let report =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not a report ({e}): {body}"));
    (status, report)
}

/// The hops of a report, group by group, in written order.
pub fn hops(report: &Report) -> Vec<&Forward> {
    report.forwards().collect()
}

/// The nested report of the only hop of a one-hop report.
pub fn only_child(report: &Report) -> &Report {
    let forwards = hops(report);
    assert_eq!(forwards.len(), 1, "expected one hop in {report:#?}");
    forwards[0].response.as_deref().expect("nested response")
}

/// A downstream written for the test: `/slow/MS` sleeps MS milliseconds and
/// answers an empty report; `/status/CODE` answers that status with a
/// report; `/text` answers 200 with a body that is no report, `/up` a
/// health-check JSON, `/lying` a 200 report listing a failed hop, and
/// `/envoy503` what Envoy answers itself when no upstream is healthy.
pub async fn stand_in() -> SocketAddr {
    async fn slow(axum::extract::Path(ms): axum::extract::Path<u64>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        "{\"Service\":\"stand-in\"}".to_string()
    }
    async fn status(axum::extract::Path(code): axum::extract::Path<u16>) -> (StatusCode, String) {
        (
            StatusCode::from_u16(code).unwrap(),
            "{\"Service\":\"stand-in\"}".to_string(),
        )
    }
    let app = Router::new()
        .route("/slow/{ms}", routing::get(slow))
        .route("/status/{code}", routing::get(status))
        .route("/text", routing::get(|| async { "hello, I am no report" }))
        .route("/up", routing::get(|| async { "{\"status\":\"UP\"}" }))
        .route("/lying", routing::get(|| async { LYING_REPORT }))
        .route(
            "/envoy503",
            routing::get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("server", "envoy"), ("x-envoy-overloaded", "true")],
                    "no healthy upstream",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A well-formed report that answers 200 yet lists a failed hop: what no
/// servicemock sends (it would answer 502), so the caller must not call it ok.
pub const LYING_REPORT: &str = r#"{"Service":"liar","ReceivedDate":"2026-01-01T00:00:00Z","ParallelForwards":[{"SequentialForwards":[{"Url":"http://x:8080/","Result":"refused","Error":"connection refused by x:8080"}]}]}"#;

/// Checks `check` again every 20 ms until it gives `Ok`, at most `limit`;
/// past it the test fails naming `what` it waited for and what the last
/// check saw (its `Err`). The one poll loop of the tests.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(seen) => assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within {limit:?}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `addr` is serving at least `requests` other requests (its
/// in-flight gauge, which counts the scrape itself too), at most `limit`:
/// the signal that a request sent elsewhere has arrived.
pub async fn wait_in_flight(addr: SocketAddr, requests: i64, limit: Duration) {
    let what = format!("{addr} has {requests} request(s) in flight");
    eventually(&what, limit, || async {
        let (_, text) = get(addr, "/metrics").await;
        let now = text
            .lines()
            .find_map(|l| l.strip_prefix("servicemock_in_flight_requests "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        if now > requests {
            Ok(())
        } else {
            Err(format!("{now} in flight"))
        }
    })
    .await
}

/// Waits until `addr` answers `/ready` with `status`, at most `limit`.
pub async fn wait_ready_status(addr: SocketAddr, status: u16, limit: Duration) {
    let what = format!("{addr}/ready answers {status}");
    eventually(&what, limit, || async {
        match get(addr, "/ready").await.0 {
            now if now == status => Ok(()),
            now => Err(now.to_string()),
        }
    })
    .await
}

/// Waits until `addr` answers `/health` with 200, at most `limit`.
pub async fn wait_healthy(addr: SocketAddr, limit: Duration) {
    let what = format!("{addr} is healthy");
    eventually(&what, limit, || async {
        match client().get(format!("http://{addr}/health")).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// Waits until something accepts TCP connections at `addr`, at most 10 s:
/// a process the test started is listening.
pub async fn wait_listening(addr: SocketAddr) {
    eventually(
        &format!("{addr} listens"),
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(addr)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await
}

/// A loopback port where nobody listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A free loopback port (bound, then let go for a server the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when CI=true.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The test virtualenv's Python (made by `scripts/test`). Tests that need
/// it are `#[ignore]`d with that reason, so plain `cargo test` lists them
/// as ignored and `scripts/test` (CI) runs them: when one runs, a missing
/// virtualenv fails it.
pub fn venv_python() -> std::path::PathBuf {
    let path = std::env::var_os("SERVICEMOCK_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} is missing: scripts/test creates it",
        path.display()
    );
    path
}

/// A command-line tool. Tests that need one are `#[ignore]`d with that
/// reason and run by `scripts/test` (CI), which installs it: when one runs,
/// a missing tool fails it.
pub fn tool(name: &str) -> String {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{name} is missing: scripts/test installs it");
    name.to_owned()
}

/// A tonic client of `servicemock.v1.MockService` at `addr`.
pub async fn grpc_client(
    addr: SocketAddr,
) -> servicemock::pb::mock_service_client::MockServiceClient<tonic::transport::Channel> {
    servicemock::pb::mock_service_client::MockServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// A `CallRequest` for an @-path.
pub fn path_request(path: &str) -> servicemock::pb::CallRequest {
    servicemock::pb::CallRequest {
        request: Some(servicemock::pb::call_request::Request::Path(path.into())),
    }
}

/// What a gRPC call answered: its code, its message, and the report (the
/// response, or the one carried in a failure's details).
pub struct GrpcAnswer {
    pub code: tonic::Code,
    pub message: String,
    pub report: Option<Report>,
    /// Bytes of the encoded status details, if any.
    pub details_len: usize,
}

/// Calls `path` over gRPC with a tonic client.
pub async fn grpc_call(addr: SocketAddr, path: &str) -> GrpcAnswer {
    let mut client = grpc_client(addr).await;
    match client.call(path_request(path)).await {
        Ok(response) => GrpcAnswer {
            code: tonic::Code::Ok,
            message: String::new(),
            report: Some(Report::from(response.into_inner())),
            details_len: 0,
        },
        Err(status) => GrpcAnswer {
            code: status.code(),
            message: status.message().to_owned(),
            report: servicemock::report::proto::decode_status_details(status.details())
                .map(Report::from),
            details_len: status.details().len(),
        },
    }
}

/// Runs a script of `tests/python` with the test virtualenv and parses the
/// one JSON line it prints (see [`venv_python`]).
pub async fn python_json(script: &str, args: Vec<String>) -> serde_json::Value {
    let python = venv_python();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Deep reports nest past serde_json's default 128 levels.
    servicemock::guard::json::from_json_unbounded(stdout.trim()).unwrap()
}

/// A loopback port that accepts connections and never answers: a frozen
/// process, as far as a caller can tell.
pub async fn black_hole() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// A loopback address where connecting never completes: a listener with
/// a backlog of one, filled and never accepted, so the kernel drops every
/// further SYN (as a black-holed address does; a connect timeout fires).
/// The listener and its held connections live until the test ends.
pub async fn unconnectable() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    // Fill the queue: connects go on succeeding until it is full.
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => held.push(stream),
            _ => break,
        }
    }
    Box::leak(Box::new((listener, held)));
    addr
}

/// Runs `servicemock load ARGS…` (at most 120 s): exit code, stdout, stderr.
pub async fn run_load<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicemock"))
        .arg("load")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("load finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The chain of reports under the first hop of each level, the root first.
pub fn first_hop_chain(report: &Report) -> Vec<&Report> {
    let mut out = vec![report];
    let mut level = report;
    while let Some(child) = level.forwards().next().and_then(|f| f.response.as_deref()) {
        out.push(child);
        level = child;
    }
    out
}

/// A gRPC health client of the server at `addr`.
pub async fn health_client(
    addr: SocketAddr,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    tonic_health::pb::health_client::HealthClient::new(endpoint.connect().await.unwrap())
}

/// grpcurl: the one scripts/test puts in `.venv/bin`, or one on the PATH
/// (see [`tool`]).
pub fn grpcurl() -> std::path::PathBuf {
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/grpcurl");
    if local.exists() {
        return local;
    }
    std::path::PathBuf::from(tool("grpcurl"))
}

/// Runs `command` with `input` on its stdin, to its end, and what it wrote.
pub fn with_stdin(mut command: std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs grpcurl ([`grpcurl`]) with `args`, off the async threads.
pub async fn grpcurl_run(args: Vec<String>) -> std::process::Output {
    let bin = grpcurl();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin).args(args).output().unwrap()
    })
    .await
    .unwrap()
}

/// The stream methods of a test's own `MockService` that serves `Call`
/// only: both answer UNIMPLEMENTED. (Written as `async_trait` expands
/// them: it does not see into a macro.)
#[macro_export]
macro_rules! unary_only {
    () => {
        type CallStreamStream =
            futures::stream::Empty<Result<servicemock::pb::CallResponse, tonic::Status>>;

        fn call_stream<'life0, 'async_trait>(
            &'life0 self,
            _: tonic::Request<servicemock::pb::CallStreamRequest>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<tonic::Response<Self::CallStreamStream>, tonic::Status>,
                    > + Send
                    + 'async_trait,
            >,
        >
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async { Err(tonic::Status::unimplemented("Call only")) })
        }

        type ConverseStream =
            futures::stream::Empty<Result<servicemock::pb::CallResponse, tonic::Status>>;

        fn converse<'life0, 'async_trait>(
            &'life0 self,
            _: tonic::Request<tonic::Streaming<servicemock::pb::ConverseRequest>>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<tonic::Response<Self::ConverseStream>, tonic::Status>,
                    > + Send
                    + 'async_trait,
            >,
        >
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async { Err(tonic::Status::unimplemented("Call only")) })
        }
    };
}

/// Kills the child when the test ends, however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `servicemock serve --listen` a free loopback port, then `args`, with
/// `env` set, in a process of its own: healthy when this returns, killed
/// when the [`Running`] is dropped.
pub async fn serve_process(args: &[&str], env: &[(&str, String)]) -> (Running, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_servicemock"))
        .args(["serve", "--listen", &addr.to_string()])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_healthy(addr, Duration::from_secs(10)).await;
    (running, addr)
}

/// A script of `tests/python` that serves on a loopback port the OS chose
/// and prints it on its first line; killed when dropped.
pub struct PythonServer {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `script` of `tests/python` with `args` (see [`PythonServer`]).
pub fn python_server<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> PythonServer {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut child = std::process::Command::new(venv_python())
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    PythonServer {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    }
}

/// Runs the servicemock binary to its end (it must end within 10 s): its
/// exit code and what it said on stderr.
pub fn run_to_end<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_servicemock"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("servicemock did not end within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl with `args`, its response head on stderr: (head, body). curl must
/// succeed.
pub fn curl(args: &[String]) -> (String, String) {
    let out = std::process::Command::new(tool("curl"))
        .args(["-sS", "-D", "/dev/stderr"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// [`curl`] from a blocking thread, so the test's servers keep serving.
pub async fn curl_off_runtime(args: Vec<String>) -> (String, String) {
    tokio::task::spawn_blocking(move || curl(&args))
        .await
        .unwrap()
}
