//! The raw TCP port and `tcp:` hops, with clients nobody here wrote: nc
//! (netcat-openbsd), socat, Python's socket module, and HAProxy in `mode
//! tcp` splitting connections 80/20 between a v1 and a v2 servicemock.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::haproxy::{replica, Proxy};
use common::*;
use serde_json::Value;
use servicemock::config::{ConnectionLimits, Settings};

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");

/// Runs `program args…` with `input` on stdin, off the runtime: stdout.
async fn piped(program: &str, args: Vec<String>, input: &[u8]) -> String {
    let program = tool(program);
    let input = input.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

async fn nc(addr: SocketAddr, input: &str) -> String {
    let args = vec![
        "-N".into(),
        "-w".into(),
        "10".into(),
        addr.ip().to_string(),
        addr.port().to_string(),
    ];
    piped("nc", args, input.as_bytes()).await
}

/// Python's socket module: runs `script` with the address as argv[1..3].
async fn python(addr: SocketAddr, script: &str) -> String {
    let python = venv_python();
    let script = script.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(python)
            .args([
                "-c",
                &script,
                &addr.ip().to_string(),
                &addr.port().to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

#[ignore = "needs nc and socat: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn nc_and_socat_get_echoes_and_reports() {
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let tcp = mesh.tcp_addr("service2").unwrap();
    let echoed = nc(tcp, "hello\nworld\n").await;
    let host = servicemock::config::local_host_name();
    assert_eq!(
        echoed,
        format!("service2 v1 {host}: hello\nservice2 v1 {host}: world\n")
    );
    // A line that is a path runs the plan: one line of compact JSON.
    let answer = nc(tcp, "/@service3/end\n").await;
    assert_eq!(answer.lines().count(), 1, "{answer}");
    let report: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(report["Protocol"], "tcp");
    assert_eq!(report["RequestInfo"][0], "TCP /@service3/end");
    assert_eq!(
        report["ParallelForwards"][0]["SequentialForwards"][0]["Response"]["Service"],
        "service3"
    );
    // The tree ends with an empty line; the echo after it still works.
    let tree = nc(tcp, "/@tcp:service3/end?view=tree\nafter\n").await;
    let (tree, rest) = tree.split_once("\n\n").unwrap();
    assert!(tree.starts_with("service2 v1  tcp"), "{tree}");
    assert!(tree.contains("└─ 1.1 tcp   service3 v1  200 ok"), "{tree}");
    assert_eq!(rest, format!("service2 v1 {host}: after\n"));
    // socat, with a bad line between good ones: each gets its answer.
    let args = vec!["-".into(), format!("TCP:{tcp}")];
    let out = piped("socat", args, b"one\n/@||\n\xff\n/@service1/x\n").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("service2 v1 {host}: one"));
    assert_eq!(lines[1], "error: empty target at position 2 in \"@||\"");
    assert_eq!(lines[2], "error: the line is not UTF-8 at byte 1");
    assert!(lines[3].starts_with('{') && lines[3].contains("\"Service\":\"service2\""));
}

#[tokio::test]
async fn a_cascade_http_tcp_grpc_tcp_shows_every_level() {
    let mesh = mesh(&["a", "b", "c", "d"]).await;
    let (status, report) = report(mesh.at("a"), "/@tcp:b/@grpc:c/@tcp:d/end").await;
    assert_eq!(status, 200, "{report:?}");
    let chain = first_hop_chain(&report);
    let seen: Vec<(&str, &str)> = chain
        .iter()
        .map(|r| (r.service.as_str(), r.protocol.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("a", "http/1.1"), ("b", "tcp"), ("c", "grpc"), ("d", "tcp")]
    );
    let hop = hops(&report)[0];
    assert!(
        hop.url.starts_with("tcp://b:9000/@grpc:c/@tcp:d/end"),
        "{}",
        hop.url
    );
    // Directives travel on a tcp hop as on any other: a delay is cut at
    // the deadline, a reset closes the connection with a RST.
    let (_, report) = report_of(&mesh, "/@tcp:b[x-mock-status=503]/").await;
    let hop = &report["ParallelForwards"][0]["SequentialForwards"][0];
    assert_eq!(hop["Result"], "status", "{hop}");
    assert_eq!(hop["Status"], 503);
    let (_, report) = report_of(&mesh, "/@tcp:b[x-mock-reset=true]/").await;
    let hop = &report["ParallelForwards"][0]["SequentialForwards"][0];
    assert_eq!(hop["Result"], "error", "{hop}");
    let (_, report) = report_of(&mesh, "/@tcp:b[:timeout=300ms][x-mock-delay=2s]/").await;
    let hop = &report["ParallelForwards"][0]["SequentialForwards"][0];
    assert_eq!(hop["Result"], "timeout", "{hop}");
    assert_eq!(
        hop["Response"]["TimedOut"], true,
        "the callee answered first"
    );
    // Nobody on the port, and a name no server has.
    let closed = closed_port().await;
    let (_, report) = report_of(&mesh, &format!("/@tcp:{closed}/")).await;
    assert_eq!(
        report["ParallelForwards"][0]["SequentialForwards"][0]["Result"],
        "refused"
    );
    // Retries apply to tcp hops too.
    let (_, report) = report_of(&mesh, "/@tcp:b[:retries=1][x-mock-status=503@first=1]/").await;
    let hop = &report["ParallelForwards"][0]["SequentialForwards"][0];
    assert_eq!(hop["Result"], "ok", "{hop}");
    assert_eq!(hop["Response"]["Attempt"], 2);
}

async fn report_of(mesh: &servicemock::mesh::Mesh, path: &str) -> (u16, Value) {
    let (status, body) = get(mesh.at("a"), path).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[ignore = "needs the test virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn bad_lines_get_one_error_line_and_hurt_nobody_else() {
    let settings = Settings {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(800),
            ..ConnectionLimits::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_with(&["a"], settings).await;
    let tcp = mesh.tcp_addr("a").unwrap();
    // Half a line, then silence: cut at the head timeout.
    let half = python(
        tcp,
        "import socket,sys\n\
         s=socket.create_connection((sys.argv[1],int(sys.argv[2])))\n\
         s.sendall(b'/@a')\n\
         print(s.makefile().read(), end='')\n",
    )
    .await;
    assert_eq!(
        half,
        "error: the line did not end within --header-read-timeout: closing the connection\n"
    );
    // A line over 64 KiB: one error line, then the connection closes.
    let long = python(
        tcp,
        "import socket,sys\n\
         s=socket.create_connection((sys.argv[1],int(sys.argv[2])))\n\
         s.sendall(b'x'*70000)\n\
         print(s.makefile().read(), end='')\n",
    )
    .await;
    assert_eq!(
        long,
        "error: line longer than 65536 bytes: closing the connection\n"
    );
    // A control character is named by its byte; an idle connection closes.
    let idle = python(
        tcp,
        "import socket,sys\n\
         s=socket.create_connection((sys.argv[1],int(sys.argv[2])))\n\
         s.sendall(b'ab\\x07c\\n')\n\
         print(s.makefile().read(), end='')\n",
    )
    .await;
    assert_eq!(
        idle,
        "error: control character '\\u{7}' at byte 3 of the line\n\
         error: idle past --idle-timeout: closing the connection\n"
    );
    // The port still answers.
    let fine = python(
        tcp,
        "import socket,sys\n\
         s=socket.create_connection((sys.argv[1],int(sys.argv[2])))\n\
         s.sendall(b'still here\\n')\n\
         s.shutdown(socket.SHUT_WR)\n\
         print(s.makefile().read(), end='')\n",
    )
    .await;
    assert!(fine.ends_with(": still here\n"), "{fine}");
}

/// A `servicemock serve` process, killed when dropped.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[ignore = "needs the test virtualenv and socat: scripts/test makes them and runs ignored tests"]
#[tokio::test]
async fn a_banner_comes_first_and_tls_works_on_the_tcp_port() {
    let (http, tcp) = (free_port(), free_port());
    let served = Served(
        Command::new(BIN)
            .args(["serve", "--name", "banner", "--listen"])
            .arg(format!("127.0.0.1:{http}"))
            .arg("--tcp-listen")
            .arg(format!("127.0.0.1:{tcp}"))
            .args(["--tcp-banner", "220 banner ready"])
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{tcp}").parse().unwrap();
    wait_listening(addr).await;
    // The client sends nothing and still hears the server first.
    let first = python(
        addr,
        "import socket,sys\n\
         s=socket.create_connection((sys.argv[1],int(sys.argv[2])))\n\
         s.settimeout(5)\n\
         print(s.recv(100).decode(), end='')\n",
    )
    .await;
    assert_eq!(first, "220 banner ready\n");
    drop(served);

    // A banner and TLS on one port are refused at start, saying why.
    let refused = Command::new(BIN)
        .args(["serve", "--tls-self-signed", "--listen", "127.0.0.1:0"])
        .args(["--tcp-listen", "127.0.0.1:0", "--tcp-banner", "hi"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--tcp-banner and TLS cannot share a TCP port"),
        "{said}"
    );

    // TLS on the TCP port by the first byte (socat as a TLS client).
    let (http, tcp) = (free_port(), free_port());
    let _tls = Served(
        Command::new(BIN)
            .args(["serve", "--name", "secure", "--tls-self-signed", "--listen"])
            .arg(format!("127.0.0.1:{http}"))
            .arg("--tcp-listen")
            .arg(format!("127.0.0.1:{tcp}"))
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{tcp}").parse().unwrap();
    wait_listening(addr).await;
    let args = vec![
        "-".into(),
        format!("OPENSSL:127.0.0.1:{tcp},verify=0,snihost=secure"),
    ];
    let out = piped("socat", args, b"over tls\n/@x/end\n").await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with(": over tls"), "{out}");
    let report: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(report["Tls"]["Sni"], "secure");
    assert_eq!(report["Protocol"], "tcp");
    // Plaintext on the same port still works.
    assert!(nc(addr, "plain\n").await.ends_with(": plain\n"));
}

/// Runs `servicemock load ARGS…`: exit code, and stdout with stderr.
async fn load(args: Vec<String>) -> (i32, String) {
    let (code, out, err) = run_load(&args).await;
    (code, out + &err)
}

/// Istio's TCP traffic shifting, with HAProxy in `mode tcp` as the proxy
/// that splits connections 80/20: judged per connection, as Envoy's is.
#[ignore = "needs haproxy: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn a_tcp_split_by_a_real_proxy_is_judged() {
    let v1 = replica("tcp-echo", "v1").await;
    let v2 = replica("tcp-echo", "v2").await;
    let proxy = Proxy {
        servers: &[
            (v1.tcp_addr("tcp-echo").unwrap(), 80),
            (v2.tcp_addr("tcp-echo").unwrap(), 20),
        ],
        tcp: true,
        ..Proxy::default()
    }
    .start()
    .await;
    let run = |expect: &str| {
        load(vec![
            "--protocol".into(),
            "tcp".into(),
            proxy.addr.to_string(),
            "/".into(),
            "-n".into(),
            "400".into(),
            "-c".into(),
            "4".into(),
            "--expect".into(),
            expect.into(),
        ])
    };
    let (code, out) = run("version=v1:80,v2:20").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("v1 320 (80.0%)"), "{out}");
    let (code, out) = run("version=v1:50,v2:50").await;
    assert_eq!(code, 1, "a 50/50 expectation fails: {out}");
    // A line that is no path is echoed: who answered is its prefix.
    let (code, out) = load(vec![
        "--protocol".into(),
        "tcp".into(),
        proxy.addr.to_string(),
        "hello".into(),
        "-n".into(),
        "200".into(),
        "--expect".into(),
        "version=v1:80,v2:20".into(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("v1 160 (80.0%)"), "{out}");
    // --reuse keeps a connection: one worker, pinned to the server its
    // connection went to.
    let (code, out) = load(vec![
        "--protocol".into(),
        "tcp".into(),
        "--reuse".into(),
        proxy.addr.to_string(),
        "/".into(),
        "-n".into(),
        "50".into(),
        "-c".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("version      v1 50 (100.0%)") || out.contains("version      v2 50 (100.0%)"),
        "{out}"
    );
    drop(proxy);
}

/// TCP connections count against `--max-connections` with HTTP ones.
#[tokio::test]
async fn tcp_and_http_share_the_connection_cap() {
    let settings = Settings {
        connections: ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        },
        ..Settings::default()
    };
    let mesh = mesh_with(&["a"], settings).await;
    let (http, tcp) = (mesh.at("a"), mesh.tcp_addr("a").unwrap());
    let held: Vec<tokio::net::TcpStream> = vec![
        tokio::net::TcpStream::connect(tcp).await.unwrap(),
        tokio::net::TcpStream::connect(tcp).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = client().get(format!("http://{http}/")).send().await;
    assert!(refused.is_err(), "the third connection is closed at once");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = get(http, "/").await;
    assert_eq!(status, 200);
}
