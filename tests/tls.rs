//! TLS and mTLS on the one port, with clients nobody here wrote: curl,
//! openssl s_client, grpcurl, Python grpcio, and HAProxy as an SNI-routing
//! gateway and as a sidecar that terminates mTLS and writes
//! `x-forwarded-client-cert`. Certificates come from `servicemock certs`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");

/// A `servicemock serve` process, killed when the test ends.
struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder of its own for one test, removed when it ends.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> Dir {
    let path = std::env::temp_dir().join(format!("servicemock-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    Dir(path)
}

/// `servicemock certs` into `dir/sub` for `names`, in namespace mock-1.
fn certs(dir: &Path, sub: &str, names: &[&str]) -> PathBuf {
    let out = dir.join(sub);
    let status = Command::new(BIN)
        .args(["certs", "--namespace", "mock-1", "--out"])
        .arg(&out)
        .args(names)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    out
}

fn s(path: PathBuf) -> String {
    path.display().to_string()
}

/// Starts `servicemock serve --name NAME` on a free port with `args`, and
/// waits until its plaintext `/health` answers (or, TLS only, until it
/// accepts connections).
async fn serve(name: &str, args: &[String]) -> Served {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--name", name, "--listen", &addr.to_string()])
        .args(args)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let served = Served { child, addr };
    wait_listening(addr).await;
    served
}

/// Flags of a caller whose https:/grpcs: hops trust the CA of `certs` and
/// present `name`'s certificate.
fn hop_client_args(certs: &Path, name: &str) -> Vec<String> {
    vec![
        "--hop-ca".into(),
        s(certs.join("ca.pem")),
        "--hop-cert".into(),
        s(certs.join(format!("{name}.pem"))),
        "--hop-key".into(),
        s(certs.join(format!("{name}-key.pem"))),
    ]
}

fn tls_args(certs: &Path, name: &str) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        s(certs.join(format!("{name}.pem"))),
        "--tls-key".into(),
        s(certs.join(format!("{name}-key.pem"))),
    ]
}

async fn run(program: &str, args: Vec<String>) -> Output {
    let program = tool(program);
    tokio::task::spawn_blocking(move || Command::new(program).args(args).output().unwrap())
        .await
        .unwrap()
}

/// curl with `args`; the body as JSON and the status line.
async fn curl_json(args: Vec<String>) -> (String, Value) {
    let mut all = vec!["-sS".to_owned(), "-D".into(), "/dev/stderr".into()];
    all.extend(args);
    let out = run("curl", all).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl failed: {stderr}");
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (stderr.lines().next().unwrap_or_default().to_owned(), body)
}

fn https(name: &str, addr: SocketAddr, path: &str) -> [String; 3] {
    [
        "--resolve".into(),
        format!("{name}:{}:127.0.0.1", addr.port()),
        format!("https://{name}:{}{path}", addr.port()),
    ]
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn curl_speaks_tls_and_plaintext_on_one_port() {
    let d = dir("one-port");
    let certs = certs(&d.0, "c", &["service1"]);
    let server = serve("service1", &tls_args(&certs, "service1")).await;
    let ca = s(certs.join("ca.pem"));
    for (flag, protocol, alpn, line) in [
        ("--http2", "h2", "h2", "HTTP/2 200"),
        ("--http1.1", "http/1.1", "http/1.1", "HTTP/1.1 200"),
    ] {
        let mut args = vec!["--cacert".to_owned(), ca.clone(), flag.into()];
        args.extend(https("service1", server.addr, "/"));
        let (status, report) = curl_json(args).await;
        assert!(status.starts_with(line), "{status}");
        assert_eq!(report["Protocol"], protocol);
        assert_eq!(report["Tls"]["Version"], "TLSv1.3");
        assert_eq!(report["Tls"]["Alpn"], alpn);
        assert_eq!(report["Tls"]["Sni"], "service1");
        assert!(report["Tls"]["Cipher"]
            .as_str()
            .unwrap()
            .starts_with("TLS13_"));
        assert!(
            report.get("Peer").is_none(),
            "no client certificate, no XFCC: {report}"
        );
    }
    // The same port, in cleartext, HTTP/1.1 and h2c.
    for (flag, protocol) in [
        ("--http1.1", "http/1.1"),
        ("--http2-prior-knowledge", "h2c"),
    ] {
        let url = format!("http://{}/", server.addr);
        let (_, report) = curl_json(vec![flag.into(), url]).await;
        assert_eq!(report["Protocol"], protocol);
        assert!(report.get("Tls").is_none());
    }
}

#[ignore = "needs curl and openssl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn mtls_reads_the_caller_and_a_required_certificate_is_enforced() {
    let d = dir("mtls");
    let certs = certs(&d.0, "c", &["service1", "service2"]);
    let other = certs_of_another_ca(&d.0);
    let ca = s(certs.join("ca.pem"));
    let mut args = tls_args(&certs, "service1");
    args.extend([
        "--tls-client-ca".into(),
        ca.clone(),
        "--tls-client-auth".into(),
        "required".into(),
    ]);
    args.extend(["--tls-listen".into(), format!("127.0.0.1:{}", free_port())]);
    let server = serve("service1", &args).await;

    let mut with_cert = vec![
        "--cacert".to_owned(),
        ca.clone(),
        "--cert".into(),
        s(certs.join("service2.pem")),
        "--key".into(),
        s(certs.join("service2-key.pem")),
    ];
    with_cert.extend(https("service1", server.addr, "/"));
    let (_, report) = curl_json(with_cert).await;
    let peer = &report["Peer"];
    assert_eq!(peer["Source"], "tls");
    assert_eq!(
        peer["Principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service2"
    );
    assert!(
        peer["Subject"].as_str().unwrap().contains("CN=service2"),
        "{peer}"
    );
    assert!(peer["DNS"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == "service2.mock-1.svc"));
    assert!(!peer["Serial"].as_str().unwrap().is_empty());
    assert!(peer["NotAfter"].as_str().unwrap().ends_with('Z'));

    // No certificate, or one from a CA nobody trusts: the handshake fails.
    let mut without = vec!["--cacert".to_owned(), ca.clone()];
    without.extend(https("service1", server.addr, "/"));
    let out = run("curl", [vec!["-sS".to_owned()], without].concat()).await;
    assert!(!out.status.success(), "served without a client certificate");
    let mut untrusted = vec![
        "-sS".to_owned(),
        "--cacert".into(),
        ca.clone(),
        "--cert".into(),
        s(other.join("service2.pem")),
        "--key".into(),
        s(other.join("service2-key.pem")),
    ];
    untrusted.extend(https("service1", server.addr, "/"));
    assert!(
        !run("curl", untrusted).await.status.success(),
        "an untrusted certificate was let in"
    );
    // openssl s_client without a certificate: the server's alert says why.
    let out = openssl_s_client(server.addr, "service1", "h2", &ca, None).await;
    assert!(
        out.contains("certificate required") || out.contains("alert"),
        "{out}"
    );

    // Both are logged and counted; the plaintext side still answers.
    let (_, metrics) = get(server.addr, "/metrics").await;
    assert!(
        metrics
            .contains("servicemock_tls_handshake_failures_total{reason=\"no_client_certificate\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "servicemock_tls_handshake_failures_total{reason=\"bad_client_certificate\"}"
        ),
        "{metrics}"
    );
}

/// A second CA and its service2 certificate, which the server does not trust.
fn certs_of_another_ca(dir: &Path) -> PathBuf {
    certs(dir, "other", &["service2"])
}

/// `openssl s_client` to `addr` with SNI and ALPN; what it printed.
async fn openssl_s_client(
    addr: SocketAddr,
    sni: &str,
    alpn: &str,
    ca: &str,
    cert: Option<(&str, &str)>,
) -> String {
    let mut args = vec![
        "s_client".to_owned(),
        "-connect".into(),
        addr.to_string(),
        "-servername".into(),
        sni.into(),
        "-alpn".into(),
        alpn.into(),
        "-CAfile".into(),
        ca.into(),
    ];
    if let Some((cert, key)) = cert {
        args.extend(["-cert".into(), cert.into(), "-key".into(), key.into()]);
    }
    let openssl = tool("openssl");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(openssl)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        std::thread::sleep(Duration::from_millis(500));
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[ignore = "needs openssl and curl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn sni_chooses_among_several_certificates() {
    let d = dir("sni");
    let certs = certs(&d.0, "c", &["service1", "service2"]);
    let ca = s(certs.join("ca.pem"));
    let mut args = tls_args(&certs, "service1");
    args.extend(tls_args(&certs, "service2"));
    let server = serve("service1", &args).await;
    for (sni, cn) in [
        ("service2", "CN=service2"),
        ("service1", "CN=service1"),
        ("service2.mock-1.svc", "CN=service2"),
    ] {
        let out = openssl_s_client(server.addr, sni, "h2", &ca, None).await;
        let subject = out
            .lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or_default();
        assert!(
            subject.replace(' ', "").contains(cn),
            "SNI {sni}: {subject}\n{out}"
        );
        assert!(out.contains("ALPN protocol: h2"), "{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    }
    let out = openssl_s_client(server.addr, "service1", "http/1.1", &ca, None).await;
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("HTTP/1.1 200"), "{out}");
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn tls_only_refuses_plaintext_with_a_hint() {
    let d = dir("only");
    let certs = certs(&d.0, "c", &["service1"]);
    let mut args = tls_args(&certs, "service1");
    args.push("--tls-only".into());
    let server = serve("service1", &args).await;
    let out = run(
        "curl",
        vec![
            "-s".into(),
            "-w".into(),
            "\n%{http_code}".into(),
            format!("http://{}/", server.addr),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("this port speaks TLS only"), "{text}");
    assert!(text.ends_with("400"), "{text}");
    let mut args = vec!["--cacert".to_owned(), s(certs.join("ca.pem"))];
    args.extend(https("service1", server.addr, "/"));
    let (_, report) = curl_json(args).await;
    assert_eq!(report["Tls"]["Sni"], "service1");
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn tls_listen_serves_tls_on_a_port_of_its_own() {
    let d = dir("listen");
    let certs = certs(&d.0, "c", &["service1"]);
    let tls_port = free_port();
    let mut args = tls_args(&certs, "service1");
    args.extend(["--tls-listen".into(), format!("127.0.0.1:{tls_port}")]);
    let server = serve("service1", &args).await;
    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let mut args = vec!["--cacert".to_owned(), s(certs.join("ca.pem"))];
    args.extend(https("service1", tls_addr, "/"));
    let (_, report) = curl_json(args).await;
    assert_eq!(report["Protocol"], "h2");
    let out = run("curl", vec!["-s".into(), format!("http://{tls_addr}/")]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("TLS only"));
    let (status, _) = get(server.addr, "/health").await;
    assert_eq!(status, 200, "the plaintext port stays for probes");
}

#[ignore = "needs grpcurl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn grpcurl_over_tls_with_and_without_verification() {
    let d = dir("grpcurl");
    let certs = certs(&d.0, "c", &["service1", "client"]);
    let mut args = tls_args(&certs, "service1");
    args.extend(["--tls-client-ca".into(), s(certs.join("ca.pem"))]);
    let server = serve("service1", &args).await;
    let addr = format!("localhost:{}", server.addr.port());
    let out = grpcurl_run(vec![
        "-cacert".into(),
        s(certs.join("ca.pem")),
        "-cert".into(),
        s(certs.join("client.pem")),
        "-key".into(),
        s(certs.join("client-key.pem")),
        "-d".into(),
        r#"{"path":"/"}"#.into(),
        addr.clone(),
        "servicemock.v1.MockService/Call".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["protocol"], "grpc");
    assert_eq!(answer["tls"]["alpn"], "h2");
    assert_eq!(
        answer["peer"]["principal"],
        "spiffe://cluster.local/ns/mock-1/sa/client"
    );
    // -insecure, no client certificate (optional by default).
    let out = grpcurl_run(vec![
        "-insecure".into(),
        "-d".into(),
        r#"{"path":"/"}"#.into(),
        addr,
        "servicemock.v1.MockService/Call".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(answer.get("peer").is_none(), "{answer}");
}

#[ignore = "needs the Python virtualenv: scripts/test makes it and runs ignored tests"]
#[tokio::test]
async fn python_grpcio_with_a_client_certificate() {
    let d = dir("grpcio");
    let certs = certs(&d.0, "c", &["service1", "service3"]);
    let mut args = tls_args(&certs, "service1");
    args.extend([
        "--tls-client-ca".into(),
        s(certs.join("ca.pem")),
        "--tls-client-auth".into(),
        "required".into(),
    ]);
    let server = serve("service1", &args).await;
    let seen = python_json(
        "tls_call.py",
        vec![
            server.addr.to_string(),
            s(certs.join("ca.pem")),
            s(certs.join("service3.pem")),
            s(certs.join("service3-key.pem")),
            "service1".into(),
        ],
    )
    .await;
    assert_eq!(seen["service"], "service1");
    assert_eq!(seen["tls"]["sni"], "service1");
    assert_eq!(seen["peer"]["source"], "tls");
    assert_eq!(
        seen["peer"]["principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service3"
    );
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn self_signed_certificate_for_the_service_name() {
    let server = serve("service7", &["--tls-self-signed".into()]).await;
    let mut args = vec!["--insecure".to_owned()];
    args.extend(https("service7", server.addr, "/"));
    let (_, report) = curl_json(args).await;
    assert_eq!(report["Tls"]["Sni"], "service7");
    let d = dir("self-signed");
    let ca = certs(&d.0, "c", &["x"]).join("ca.pem");
    let out = openssl_s_client(server.addr, "service7", "h2", &s(ca), None).await;
    assert!(out.replace(' ', "").contains("s:CN=service7"), "{out}");
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn rotated_certificates_are_served_to_new_connections_without_dropping_old_ones() {
    // As a Kubernetes Secret volume does it: the files are symlinks into
    // `..data`, itself a symlink swapped to a new folder.
    let d = dir("rotate");
    let first = certs(&d.0, "v1", &["service1"]);
    let second = certs(&d.0, "v2", &["service1"]);
    let volume = d.0.join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::os::unix::fs::symlink(&first, volume.join("..data")).unwrap();
    for (link, file) in [("tls.crt", "service1.pem"), ("tls.key", "service1-key.pem")] {
        std::os::unix::fs::symlink(Path::new("..data").join(file), volume.join(link)).unwrap();
    }
    let args = vec![
        "--tls-cert".into(),
        s(volume.join("tls.crt")),
        "--tls-key".into(),
        s(volume.join("tls.key")),
        "--tls-reload-interval".into(),
        "100ms".into(),
    ];
    let server = serve("service1", &args).await;
    let trusts = |ca: &Path| {
        let mut args = vec!["--cacert".to_owned(), s(ca.join("ca.pem"))];
        args.extend(https("service1", server.addr, "/"));
        args
    };
    curl_json(trusts(&first)).await;
    // A connection opened before the swap, kept alive across it.
    let mut before = open_tls_connection(server.addr, &first.join("ca.pem")).await;
    assert!(before.get("/health").await.starts_with("HTTP/1.1 200"));

    let swapped = volume.join("..data.new");
    std::os::unix::fs::symlink(&second, &swapped).unwrap();
    std::fs::rename(&swapped, volume.join("..data")).unwrap();
    eventually(
        "new connections get the swapped certificate",
        Duration::from_secs(10),
        || {
            let args = trusts(&second);
            async move {
                let out = run("curl", [vec!["-sS".to_owned()], args].concat()).await;
                match out.status.success() {
                    true => Ok(()),
                    false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                }
            }
        },
    )
    .await;
    let out = run("curl", [vec!["-sS".to_owned()], trusts(&first)].concat()).await;
    assert!(
        !out.status.success(),
        "the old certificate is still served to new connections"
    );
    assert!(
        before.get("/health").await.starts_with("HTTP/1.1 200"),
        "the open connection was dropped"
    );
}

/// A keep-alive HTTP/1.1 connection over TLS (rustls as a client).
struct TlsConnection(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

async fn open_tls_connection(addr: SocketAddr, ca: &Path) -> TlsConnection {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("service1").unwrap();
    TlsConnection(connector.connect(name, tcp).await.unwrap())
}

impl TlsConnection {
    /// GETs `path` on the connection; the answer's head and body.
    async fn get(&mut self, path: &str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let request = format!("GET {path} HTTP/1.1\r\nHost: service1\r\n\r\n");
        self.0.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), self.0.read(&mut buf))
                .await
                .unwrap()
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if length.is_some_and(|len| body.len() >= len) {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    }
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn bad_handshakes_get_cut_and_hurt_nobody_else() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let d = dir("bad");
    let certs = certs(&d.0, "c", &["service1"]);
    let mut args = tls_args(&certs, "service1");
    args.extend(["--header-read-timeout".into(), "500ms".into()]);
    let server = serve("service1", &args).await;
    // Random bytes after 0x16: the connection is closed at once.
    let mut garbage = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(&[
            0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0xff,
        ])
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        while garbage.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "a garbled ClientHello kept its connection");
    // A ClientHello that never finishes: cut at the head timeout.
    let started = Instant::now();
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        while stalled.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(cut.is_ok(), "a stalled handshake was not cut");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "cut before the head timeout"
    );
    // A silent connection to a TLS port is cut the same way.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        while silent.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(cut.is_ok(), "a silent connection was kept");
    // Everyone else is served as ever.
    let mut args = vec!["--cacert".to_owned(), s(certs.join("ca.pem"))];
    args.extend(https("service1", server.addr, "/"));
    curl_json(args).await;
    let (_, metrics) = get(server.addr, "/metrics").await;
    assert!(metrics.contains("reason=\"bad_hello\""), "{metrics}");
    assert!(metrics.contains("reason=\"timeout\""), "{metrics}");
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn xfcc_names_the_last_element_and_never_fails_a_request() {
    let server = serve("service1", &[]).await;
    let url = format!("http://{}/", server.addr);
    let two = "By=spiffe://cluster.local/ns/mock-1/sa/gateway;Hash=11;URI=spiffe://cluster.local/ns/mock-1/sa/frontend,\
               By=spiffe://cluster.local/ns/mock-1/sa/service1;Hash=22;Subject=\"CN=service2,O=a;b\";URI=spiffe://cluster.local/ns/mock-1/sa/service2";
    let (_, report) = curl_json(vec![
        "-H".into(),
        format!("x-forwarded-client-cert: {two}"),
        url.clone(),
    ])
    .await;
    let peer = &report["Peer"];
    assert_eq!(peer["Source"], "xfcc");
    assert_eq!(
        peer["Principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service2"
    );
    assert_eq!(peer["Elements"].as_array().unwrap().len(), 2);
    assert_eq!(peer["Elements"][1]["Subject"], "CN=service2,O=a;b");
    let malformed = "By=a;Subject=\"never closed";
    let (status, report) = curl_json(vec![
        "-H".into(),
        format!("x-forwarded-client-cert: {malformed}"),
        url.clone(),
    ])
    .await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(report["Peer"]["Unparsed"], malformed);
    assert!(report["Peer"]["Error"]
        .as_str()
        .unwrap()
        .contains("not closed"));
    let many: Vec<String> = (0..1000)
        .map(|i| format!("By=p{i};URI=spiffe://td/ns/n/sa/s{i}"))
        .collect();
    let (_, report) = curl_json(vec![
        "-H".into(),
        format!("x-forwarded-client-cert: {}", many.join(",")),
        url,
    ])
    .await;
    assert_eq!(report["Peer"]["Principal"], "spiffe://td/ns/n/sa/s999");
    assert_eq!(report["Peer"]["Omitted"], 1000 - 32);
}

/// HAProxy from `config` (a `defaults`/`frontend`/`backend` text) on its
/// own port `port`, stopped when dropped.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn haproxy(dir: &Path, port: u16, config: &str) -> Proxy {
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, format!("global\n  maxconn 256\n{config}")).unwrap();
    let child = Command::new(tool("haproxy"))
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let proxy = Proxy(child);
    wait_listening(([127, 0, 0, 1], port).into()).await;
    proxy
}

#[ignore = "needs haproxy and curl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn an_sni_passthrough_gateway_routes_tls_it_does_not_terminate() {
    let d = dir("passthrough");
    let certs = certs(&d.0, "c", &["service1", "service2"]);
    let one = serve("service1", &tls_args(&certs, "service1")).await;
    let two = serve("service2", &tls_args(&certs, "service2")).await;
    let port = free_port();
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
         frontend gateway\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 5s\n  tcp-request content accept if {{ req.ssl_hello_type 1 }}\n\
         \x20 use_backend b2 if {{ req.ssl_sni -i service2 }}\n  default_backend b1\n\
         backend b1\n  server s1 {}\nbackend b2\n  server s2 {}\n",
        one.addr, two.addr
    );
    let _proxy = haproxy(&d.0, port, &config).await;
    let gateway: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for name in ["service1", "service2"] {
        let mut args = vec!["--cacert".to_owned(), s(certs.join("ca.pem"))];
        args.extend(https(name, gateway, "/"));
        let (_, report) = curl_json(args).await;
        assert_eq!(report["Service"], name, "SNI {name} went elsewhere");
        assert_eq!(report["Tls"]["Sni"], name, "the gateway terminated TLS");
    }
}

#[ignore = "needs haproxy and curl: scripts/test installs them and runs ignored tests"]
#[tokio::test]
async fn a_sidecar_that_terminates_mtls_is_seen_through_xfcc() {
    let d = dir("sidecar");
    let certs = certs(&d.0, "c", &["service1", "service2"]);
    let app = serve("service1", &[]).await;
    // HAProxy wants the certificate and key in one file.
    let bundle = d.0.join("sidecar.pem");
    let pem = std::fs::read_to_string(certs.join("service1.pem")).unwrap()
        + &std::fs::read_to_string(certs.join("service1-key.pem")).unwrap();
    std::fs::write(&bundle, pem).unwrap();
    let port = free_port();
    let config = format!(
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
         frontend sidecar\n  bind 127.0.0.1:{port} ssl crt {} ca-file {} verify required alpn h2,http/1.1\n\
         \x20 http-request set-header x-forwarded-client-cert \"By=spiffe://cluster.local/ns/mock-1/sa/service1;Hash=%[ssl_c_der,sha2(256),hex];Subject=\\\"%[ssl_c_s_dn]\\\";URI=spiffe://cluster.local/ns/mock-1/sa/%[ssl_c_s_dn(CN)]\"\n\
         \x20 default_backend app\n\
         backend app\n  server app {}\n",
        s(bundle),
        s(certs.join("ca.pem")),
        app.addr
    );
    let _proxy = haproxy(&d.0, port, &config).await;
    let sidecar: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut args = vec![
        "--cacert".to_owned(),
        s(certs.join("ca.pem")),
        "--cert".into(),
        s(certs.join("service2.pem")),
        "--key".into(),
        s(certs.join("service2-key.pem")),
    ];
    args.extend(https("service1", sidecar, "/"));
    let (_, report) = curl_json(args).await;
    assert!(
        report.get("Tls").is_none(),
        "the sidecar terminated TLS: {report}"
    );
    let peer = &report["Peer"];
    assert_eq!(peer["Source"], "xfcc");
    assert_eq!(
        peer["Principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service2"
    );
    assert_eq!(
        peer["Elements"][0]["By"],
        "spiffe://cluster.local/ns/mock-1/sa/service1"
    );
    assert_eq!(peer["Elements"][0]["Hash"].as_str().unwrap().len(), 64);
    assert!(
        peer["Subject"].as_str().unwrap().contains("CN=service2"),
        "{peer}"
    );
}

/// GETs `path` from a plaintext `addr` and parses the JSON report.
async fn report_of(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).await;
    let report = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, report)
}

/// The report of the first hop below `report`.
fn child(report: &Value) -> &Value {
    &report["ParallelForwards"][0]["SequentialForwards"][0]["Response"]
}

fn hop(report: &Value) -> &Value {
    &report["ParallelForwards"][0]["SequentialForwards"][0]
}

#[tokio::test]
async fn a_mixed_tree_says_at_every_level_how_it_arrived() {
    let mut options = options(servicemock::config::Settings::default());
    options.tls = true;
    let names: Vec<String> = ["service1", "service2", "service3", "service4"]
        .map(String::from)
        .to_vec();
    let mesh = servicemock::mesh::Mesh::start(&names, options)
        .await
        .unwrap();
    let entry = mesh.at("service1");
    let (status, root) = report_of(entry, "/@https:service2/@grpcs:service3/@service4/end").await;
    assert_eq!(status, 200, "{root:#}");
    assert!(
        root.get("Tls").is_none(),
        "the entry was called in plaintext"
    );
    assert_eq!(
        hop(&root)["Url"],
        "https://service2:8080/@grpcs:service3/@service4/end"
    );
    let two = child(&root);
    assert_eq!(two["Service"], "service2");
    assert_eq!(two["Protocol"], "h2", "ALPN chose HTTP/2");
    assert_eq!(
        two["Tls"]["Sni"], "service2",
        "SNI is the name, not the loopback address"
    );
    assert_eq!(hop(two)["Url"], "grpcs://service3:8080");
    let three = child(two);
    assert_eq!(three["Protocol"], "grpc");
    assert_eq!(three["Tls"]["Alpn"], "h2");
    assert_eq!(three["Tls"]["Sni"], "service3");
    let four = child(three);
    assert_eq!(four["Protocol"], "http/1.1");
    assert!(four.get("Tls").is_none());
    // The text tree shows it on each level's continuation line.
    let (_, tree) = get(
        entry,
        "/@https:service2/@grpcs:service3/@service4/end?view=tree",
    )
    .await;
    assert!(tree.contains("tls TLSv1.3 h2 sni service2"), "{tree}");
    assert!(tree.contains("tls TLSv1.3 h2 sni service3"), "{tree}");
}

#[tokio::test]
async fn tls_origination_to_an_mtls_servicemock_shows_the_caller() {
    let d = dir("origination");
    let certs = certs(&d.0, "c", &["service1", "service2"]);
    let ca = s(certs.join("ca.pem"));
    let mut args = tls_args(&certs, "service2");
    args.extend([
        "--tls-client-ca".into(),
        ca.clone(),
        "--tls-client-auth".into(),
        "required".into(),
    ]);
    let two = serve("service2", &args).await;
    let one = serve("service1", &hop_client_args(&certs, "service1")).await;
    let path = format!("/@https:localhost:{}/end", two.addr.port());
    let (status, root) = report_of(one.addr, &path).await;
    assert_eq!(status, 200, "{root:#}");
    let callee = child(&root);
    assert_eq!(callee["Peer"]["Source"], "tls");
    assert_eq!(
        callee["Peer"]["Principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service1"
    );
    assert_eq!(callee["Tls"]["Sni"], "localhost");
    let (_, flat) = report_of(one.addr, &format!("{path}?view=flat")).await;
    assert_eq!(flat[1]["Position"], "1.1");
    assert_eq!(
        flat[1]["Principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service1"
    );
    assert_eq!(flat[1]["Tls"], "TLSv1.3");
    assert!(
        flat[0].get("Principal").is_none(),
        "the entry's caller is not known"
    );
    let path = format!("/@grpcs:localhost:{}/end", two.addr.port());
    let (status, root) = report_of(one.addr, &path).await;
    assert_eq!(status, 200, "{root:#}");
    assert_eq!(
        child(&root)["Peer"]["Principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service1"
    );
}

#[tokio::test]
async fn a_failed_hop_handshake_says_why_in_words() {
    let d = dir("hop-errors");
    let certs = certs(&d.0, "c", &["service2", "service3"]);
    let other = certs_of_another_ca(&d.0);
    let ca = s(certs.join("ca.pem"));
    // A server whose CA the caller does not trust; one that wants a client
    // certificate; one for other names; one that speaks no TLS; an expired one.
    let untrusted = serve("untrusted", &tls_args(&other, "service2")).await;
    let mut wants = tls_args(&certs, "service2");
    wants.extend([
        "--tls-client-ca".into(),
        ca.clone(),
        "--tls-client-auth".into(),
        "required".into(),
    ]);
    let wants_cert = serve("wants-cert", &wants).await;
    let port = free_port();
    let wrong_name = Served {
        child: Command::new(BIN)
            .args([
                "serve",
                "--name",
                "wrong",
                "--listen",
                &format!("127.0.0.2:{port}"),
            ])
            .args(tls_args(&certs, "service3"))
            .spawn()
            .unwrap(),
        addr: format!("127.0.0.2:{port}").parse().unwrap(),
    };
    let plaintext = serve("plaintext", &[]).await;
    let expired_certs = d.0.join("expired");
    let made = Command::new(BIN)
        .args(["certs", "--days", "0", "--out"])
        .arg(&expired_certs)
        .arg("service2")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let expired = serve("expired", &tls_args(&expired_certs, "service2")).await;
    // Both CAs in the one --hop-ca file.
    let bundle = d.0.join("both-ca.pem");
    std::fs::write(
        &bundle,
        std::fs::read_to_string(certs.join("ca.pem")).unwrap()
            + &std::fs::read_to_string(expired_certs.join("ca.pem")).unwrap(),
    )
    .unwrap();
    let caller = serve("caller", &["--hop-ca".into(), s(bundle)]).await;
    wait_listening(wrong_name.addr).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // the --days 0 certificate expires
    for (target, words) in [
        (
            format!("https:localhost:{}", untrusted.addr.port()),
            "certificate for \"localhost\" is not trusted: unknown issuer",
        ),
        (
            format!("https:localhost:{}", wants_cert.addr.port()),
            "server asked for a client certificate and none is configured (--hop-cert)",
        ),
        (format!("https:127.0.0.2:{port}"), "not \"127.0.0.2\""),
        (
            format!("https:localhost:{}", plaintext.addr.port()),
            "does not speak TLS",
        ),
        (
            format!("grpcs:localhost:{}", plaintext.addr.port()),
            "does not speak TLS",
        ),
        (
            format!("https:localhost:{}", expired.addr.port()),
            "certificate for \"localhost\" expired on ",
        ),
    ] {
        let (status, root) = report_of(caller.addr, &format!("/@{target}/end")).await;
        assert_eq!(status, 502, "{target}: {root:#}");
        let failed = hop(&root);
        assert_eq!(failed["Result"], "tls", "{target}: {failed:#}");
        let error = failed["Error"].as_str().unwrap();
        assert!(error.contains(words), "{target}: {error}");
    }
}

#[ignore = "needs curl: scripts/test installs it and runs ignored tests"]
#[tokio::test]
async fn from_aims_a_fault_at_one_caller_as_an_authorization_policy_would() {
    let d = dir("from");
    let certs = certs(&d.0, "c", &["service1", "service2", "service3"]);
    let ca = s(certs.join("ca.pem"));
    let mut args = tls_args(&certs, "service2");
    args.extend(["--tls-client-ca".into(), ca.clone()]);
    let two = serve("service2", &args).await;
    // By client certificate: only service3's calls get the 403.
    for (caller, status) in [("service3", "403"), ("service1", "200")] {
        let mut args = vec![
            "-H".to_owned(),
            "x-mock-status: 403@from=service3".into(),
            "--cacert".into(),
            ca.clone(),
            "--cert".into(),
            s(certs.join(format!("{caller}.pem"))),
            "--key".into(),
            s(certs.join(format!("{caller}-key.pem"))),
        ];
        args.extend(https("service2", two.addr, "/"));
        let (line, report) = curl_json(args).await;
        assert!(line.contains(status), "{caller}: {line} {report}");
    }
    // By XFCC, with the full principal.
    let xfcc = "x-forwarded-client-cert: By=spiffe://cluster.local/ns/mock-1/sa/service2;URI=spiffe://cluster.local/ns/mock-1/sa/service1";
    let url = format!("http://{}/", two.addr);
    let (line, _) = curl_json(vec![
        "-H".into(),
        xfcc.into(),
        "-H".into(),
        "x-mock-status: 403@from=spiffe://cluster.local/ns/mock-1/sa/service1".into(),
        url.clone(),
    ])
    .await;
    assert!(line.contains("403"), "{line}");
    let (line, _) = curl_json(vec![
        "-H".into(),
        "x-mock-status: 403@from=service1".into(),
        url,
    ])
    .await;
    assert!(line.contains("200"), "no caller known, no fault: {line}");
    // In a bracket on a hop, the principal's slashes written %2F: the hop
    // from service1 (presenting its certificate) gets the 403.
    let one = serve("service1", &hop_client_args(&certs, "service1")).await;
    let path = format!(
        "/@https:localhost:{}[x-mock-status=403@from=spiffe:%2F%2Fcluster.local%2Fns%2Fmock-1%2Fsa%2Fservice1]/end",
        two.addr.port()
    );
    let (status, root) = report_of(one.addr, &path).await;
    assert_eq!(status, 502, "{root:#}");
    assert_eq!(hop(&root)["Status"], 403, "{root:#}");
    assert_eq!(
        child(&root)["Peer"]["Principal"],
        "spiffe://cluster.local/ns/mock-1/sa/service1"
    );
}

#[tokio::test]
async fn load_tallies_who_called_each_position() {
    let d = dir("load");
    let certs = certs(&d.0, "c", &["service1", "service2"]);
    let ca = s(certs.join("ca.pem"));
    let mut args = tls_args(&certs, "service2");
    args.extend(["--tls-client-ca".into(), ca.clone()]);
    let two = serve("service2", &args).await;
    let one = serve("service1", &hop_client_args(&certs, "service1")).await;
    let path = format!("/@https:localhost:{}/end", two.addr.port());
    let principal = "spiffe://cluster.local/ns/mock-1/sa/service1";
    let run = |expect: String| {
        let (target, path) = (one.addr.to_string(), path.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["load", &target, &path, "-n", "40", "--expect", &expect])
                .output()
                .unwrap()
        })
    };
    let out = run(format!("1.1.principal={principal}:100")).await.unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains(&format!("principal    {principal}")),
        "{table}"
    );
    let out = run("1.1.principal=spiffe://cluster.local/ns/mock-1/sa/other:100".into())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn call_and_load_speak_tls_and_say_why_a_handshake_failed() {
    let d = dir("clients");
    let certs = certs(&d.0, "c", &["service1", "client"]);
    let other = certs_of_another_ca(&d.0);
    let ca = s(certs.join("ca.pem"));
    let mut args = tls_args(&certs, "service1");
    args.extend(["--tls-client-ca".into(), ca.clone()]);
    let server = serve("service1", &args).await;
    let addr = format!("localhost:{}", server.addr.port());
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(BIN).args(args).output().unwrap())
    };
    for protocol in ["https", "grpcs"] {
        let out = run(vec![
            "call".into(),
            "--protocol".into(),
            protocol.into(),
            "--cacert".into(),
            ca.clone(),
            "--cert".into(),
            s(certs.join("client.pem")),
            "--key".into(),
            s(certs.join("client-key.pem")),
            addr.clone(),
            "/".into(),
        ])
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{protocol}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["Peer"]["Principal"],
            "spiffe://cluster.local/ns/mock-1/sa/client"
        );
        assert_eq!(report["Tls"]["Sni"], "localhost");
    }
    // -k takes any certificate; a CA that did not sign it is named.
    let out = run(vec![
        "call".into(),
        "--protocol".into(),
        "https".into(),
        "-k".into(),
        addr.clone(),
        "/".into(),
        "--tree".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tls TLSv1.3"));
    let out = run(vec![
        "call".into(),
        "--protocol".into(),
        "https".into(),
        "--cacert".into(),
        s(other.join("ca.pem")),
        addr.clone(),
        "/".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not trusted: unknown issuer"), "{said}");
    // load over TLS, the caller's identity tallied.
    let out = run(vec![
        "load".into(),
        "--protocol".into(),
        "grpcs".into(),
        "--cacert".into(),
        ca.clone(),
        "--cert".into(),
        s(certs.join("client.pem")),
        "--key".into(),
        s(certs.join("client-key.pem")),
        addr,
        "/".into(),
        "-n".into(),
        "20".into(),
        "--expect".into(),
        "principal=spiffe://cluster.local/ns/mock-1/sa/client:100".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `[:sni=…]` and `[:insecure=true]` belong to one hop: the callee sees
/// the name sent, verification follows it, and no connection made one way
/// is reused for a hop that asks another.
#[tokio::test]
async fn sni_and_insecure_are_options_of_one_hop() {
    let d = dir("hop-options");
    let certs = certs(&d.0, "c", &["service2"]);
    let target = serve("service2", &tls_args(&certs, "service2")).await;
    let trusting = serve("trusting", &["--hop-ca".into(), s(certs.join("ca.pem"))]).await;
    let untrusting = serve("untrusting", &[]).await;
    let t = target.addr;
    let results = |report: &Value| -> Vec<String> {
        report["ParallelForwards"][0]["SequentialForwards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["Result"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, report) = report_of(
        untrusting.addr,
        &format!("/@https:{t},https:{t}[:insecure=true],https:{t}/"),
    )
    .await;
    assert_eq!(results(&report), ["tls", "ok", "tls"], "{report}");
    let (status, report) = report_of(
        trusting.addr,
        &format!("/@https:{t}[:sni=service2.mock-1.svc]/"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        hop(&report)["Response"]["Tls"]["Sni"],
        "service2.mock-1.svc"
    );
    assert_eq!(hop(&report)["Options"], "sni service2.mock-1.svc");
    let (_, report) = report_of(trusting.addr, &format!("/@https:{t}[:sni=a.example]/")).await;
    assert_eq!(hop(&report)["Result"], "tls", "{report}");
    assert!(
        hop(&report)["Error"]
            .as_str()
            .unwrap()
            .contains("\"a.example\""),
        "{report}"
    );
    let (status, report) = report_of(
        untrusting.addr,
        &format!("/@grpcs:{t}[:insecure=true][:sni=service2]/"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(hop(&report)["Response"]["Tls"]["Sni"], "service2");
    assert_eq!(hop(&report)["Response"]["Protocol"], "grpc");
}

/// `servicemock health` speaks TLS as `call` does: trusting --cacert, or
/// -k, over https (/health) and grpcs (grpc.health.v1).
#[tokio::test(flavor = "multi_thread")]
async fn health_checks_over_tls() {
    let d = dir("health");
    let certs = certs(&d.0, "c", &["service2"]);
    let server = serve("service2", &tls_args(&certs, "service2")).await;
    let addr = server.addr.to_string();
    let ca = s(certs.join("ca.pem"));
    let health = |args: &[&str]| {
        let mut all = vec!["health".to_owned()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.push(addr.clone());
        Command::new(BIN).args(all).output().unwrap()
    };
    for args in [
        &["--protocol", "https", "--cacert", &ca][..],
        &["--protocol", "grpcs", "--cacert", &ca],
        &["--protocol", "https", "-k"],
        &["--protocol", "grpcs", "-k"],
    ] {
        let out = tokio::task::block_in_place(|| health(args));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tokio::task::block_in_place(|| health(&["--protocol", "https"]));
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not trusted: unknown issuer"), "{said}");
}
