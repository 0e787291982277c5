//! The web view in a real headless browser: Debian's chromium driven over
//! WebDriver (chromedriver). It loads /ui from a running mesh — directly and
//! behind a path-prefix-stripping proxy, as an Istio ingress rewrite would —
//! submits an @-path, checks the rendered hops and saves a screenshot.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    /// Ends the browser session (chromium would outlive chromedriver), then
    /// chromedriver itself, however the test ended.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let addr = self.base.trim_start_matches("http://").to_owned();
            if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    stream,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromedriver: &str) -> Driver {
        let port = closed_port().await.port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = client();
        eventually("chromedriver starts", Duration::from_secs(20), || async {
            http.get(format!("{base}/status"))
                .send()
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await;
        let mut driver = Driver {
            child,
            base,
            session: String::new(),
            http,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,760"]
        }}}});
        let created = driver.post("/session", caps).await;
        driver.session = created["sessionId"].as_str().expect("a session").to_owned();
        driver
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let text = request.send().await.unwrap().text().await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(
            value["value"]["error"].is_null(),
            "webdriver {path}: {text}"
        );
        value["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn script(&self, source: &str) -> Value {
        self.post("/execute/sync", json!({"script": source, "args": []}))
            .await
    }

    /// Types `path` into the field, submits, and waits for the hops.
    async fn submit(&self, page: &str, path: &str, hops: usize) -> Vec<String> {
        self.post("/url", json!({"url": page})).await;
        let field = self.element("#path").await;
        self.post(&format!("/element/{field}/clear"), json!({}))
            .await;
        self.post(&format!("/element/{field}/value"), json!({"text": path}))
            .await;
        let button = self.element("#go").await;
        self.post(&format!("/element/{button}/click"), json!({}))
            .await;
        eventually("the hops render", Duration::from_secs(15), || async {
            let rows = self
                .script("return [...document.querySelectorAll('.hop')].map(e => e.dataset.service + ' ' + e.dataset.result)")
                .await;
            let rows: Vec<String> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            if rows.len() >= hops {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await
    }

    async fn screenshot(&self, file: &std::path::Path) {
        let png = self.send(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
}

/// A reverse proxy that serves `upstream` under `/mock/`, stripping the
/// prefix the way an ingress rewrite does.
async fn prefix_proxy(upstream: SocketAddr) -> SocketAddr {
    async fn forward(State(upstream): State<SocketAddr>, request: Request) -> Response {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let Some(rest) = path.strip_prefix("/mock") else {
            return Response::builder()
                .status(404)
                .body(Body::from("outside the prefix"))
                .unwrap();
        };
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let mut forwarded = client()
            .request(parts.method.clone(), format!("http://{upstream}{rest}"))
            .body(body);
        if let Some(kind) = parts.headers.get("content-type") {
            forwarded = forwarded.header("content-type", kind.clone());
        }
        let answer = forwarded.send().await.unwrap();
        let mut response = Response::builder().status(answer.status().as_u16());
        if let Some(kind) = answer.headers().get("content-type") {
            response = response.header("content-type", kind.clone());
        }
        response
            .body(Body::from(answer.bytes().await.unwrap()))
            .unwrap()
    }
    let app = axum::Router::new().fallback(forward).with_state(upstream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[ignore = "needs chromium and chromedriver: scripts/test installs them and runs ignored tests"]
#[tokio::test(flavor = "multi_thread")]
async fn waterfall_renders_in_headless_chromium() {
    let chromedriver = tool("chromedriver");
    let mesh = mesh(&["service1", "service2", "service3"]).await;
    let entry = mesh.at("service1");
    let driver = Driver::start(&chromedriver).await;

    let rows = driver
        .submit(
            &format!("http://{entry}/ui"),
            "/@service2|grpc:service3[x-mock-delay=15ms]/@service1,nothere.invalid/end",
            6,
        )
        .await;
    assert_eq!(
        rows,
        [
            "service2 status",
            "service1 ok",
            " dns",
            "service3 status",
            "service1 ok",
            " dns"
        ],
        "rows in written order"
    );
    let summary = driver
        .script("return document.getElementById('summary').textContent")
        .await;
    assert!(summary.as_str().unwrap().starts_with("502"), "{summary}");
    let bars = driver
        .script("return document.querySelectorAll('.bar.fail').length")
        .await;
    assert_eq!(
        bars.as_u64(),
        Some(4),
        "failed hops are coloured as failures"
    );
    // Every error is shown whole on its own line, inside the window, with
    // no mouse: bars near the right edge included.
    let errors = driver
        .script(
            "return [...document.querySelectorAll('.errline')].map(e => { \
               const r = e.getBoundingClientRect(); \
               return [e.textContent, r.width > 0 && r.right <= window.innerWidth && e.scrollWidth <= e.clientWidth + 1]; })",
        )
        .await;
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 4, "{errors:?}");
    for error in errors {
        assert_eq!(error[1], true, "readable: {error}");
    }
    assert!(
        errors.iter().any(|e| e[0]
            .as_str()
            .unwrap()
            .contains("cannot resolve \"nothere.invalid\"")),
        "{errors:?}"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-waterfall.png");
    driver.screenshot(&shot).await;

    // Behind a path prefix: the page and its calls stay under /mock/.
    let proxy = prefix_proxy(entry).await;
    let rows = driver
        .submit(
            &format!("http://{proxy}/mock/ui"),
            "/@service2/@service3/end",
            2,
        )
        .await;
    assert_eq!(rows, ["service2 ok", "service3 ok"]);
    // A JSON plan is POSTed under the prefix too.
    let plan = r#"{"plan": {"parallel": [{"hops": [{"target": "service3", "protocol": "PROTOCOL_GRPC"}]}]}}"#;
    let rows = driver
        .submit(&format!("http://{proxy}/mock/ui"), plan, 1)
        .await;
    assert_eq!(rows, ["service3 ok"]);

    // A hop that retried: its options on its row, each try on a row of its own.
    let rows = driver
        .submit(
            &format!("http://{entry}/ui"),
            "/@service2[:retries=1][x-mock-status=503@first=1]/",
            1,
        )
        .await;
    assert_eq!(rows, ["service2 ok"]);
    let labels = |selector: &str| {
        format!(
            "return [...document.querySelectorAll('{selector} .label')].map(e => e.textContent)"
        )
    };
    let hop = driver.script(&labels(".hop")).await;
    assert!(
        hop[0]
            .as_str()
            .unwrap()
            .starts_with("1.1 http service2 v1 200 ok {retries 1} attempt 2"),
        "{hop}"
    );
    let tries = driver.script(&labels(".try")).await;
    assert_eq!(
        tries,
        json!(["try 1 503 status service2 v1", "try 2 200 ok service2 v1"])
    );

    // Over TLS: each level says how it arrived.
    let mut tls_options = options(Default::default());
    tls_options.tls = true;
    let tls_mesh =
        servicemock::mesh::Mesh::start(&["web".to_owned(), "back".to_owned()], tls_options)
            .await
            .unwrap();
    let web = tls_mesh.at("web");
    driver
        .submit(&format!("http://{web}/ui"), "/@https:back/", 1)
        .await;
    let hop = driver.script(&labels(".hop")).await;
    let hop = hop[0].as_str().unwrap();
    assert!(hop.starts_with("1.1 https back v1 200 ok"), "{hop}");
    assert!(hop.contains(" · tls TLSv1.3 h2 sni back"), "{hop}");
    tls_mesh.stop().await.unwrap();

    // With spans on and --trace-url: each level links to its own span.
    let nobody = closed_port().await;
    let traced_options = servicemock::mesh::MeshOptions {
        spans: servicemock::spans::SpanSettings::from_lookup(
            Some(&format!("http://{nobody}")),
            |_| None,
        )
        .unwrap(),
        trace_url: Some("http://jaeger.example/trace/{trace_id}?uiFind={span_id}".into()),
        ..options(Default::default())
    };
    let traced =
        servicemock::mesh::Mesh::start(&["front".to_owned(), "back".to_owned()], traced_options)
            .await
            .unwrap();
    let front = traced.at("front");
    driver
        .submit(&format!("http://{front}/ui"), "/@back/", 1)
        .await;
    let links = driver
        .script("return [...document.querySelectorAll('.trace-link')].map(a => a.href)")
        .await;
    let links: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(links.len(), 2, "the entry's row and the hop's: {links:?}");
    let trace = links[0]
        .strip_prefix("http://jaeger.example/trace/")
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    assert_eq!(trace.len(), 32, "{links:?}");
    assert!(links[1].contains(trace), "one trace: {links:?}");
    assert_ne!(links[0], links[1], "each level its own span: {links:?}");
}
