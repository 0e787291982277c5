//! The ceiling of this stack for one hop, for the benchmark: in one thread,
//! a "hello" leaf and a front that answers every request by fetching the
//! leaf through hyper-util's pooled client — no planner, no report.
//!
//!   cargo run --release --example hop_ceiling -- 127.0.0.1:19310 127.0.0.1:19311
//!
//! As two processes (the real shape, each service its own pod): `front`
//! serves only the front and fetches a leaf served elsewhere, `leaf` only
//! the leaf (examples/hello.rs's answer):
//!
//!   hop_ceiling 127.0.0.1:19320 127.0.0.1:19321 front
//!   hop_ceiling 127.0.0.1:19320 127.0.0.1:19321 leaf

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Pool = Client<HttpConnector, Empty<Bytes>>;

async fn front(State((client, leaf)): State<(Pool, http::Uri)>) -> Body {
    match client.get(leaf).await {
        Ok(response) => match response.into_body().collect().await {
            Ok(body) => Body::from(body.to_bytes()),
            Err(e) => Body::from(e.to_string()),
        },
        Err(e) => Body::from(e.to_string()),
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let front_addr = args.next().unwrap_or_else(|| "127.0.0.1:19310".into());
    let leaf_addr = args.next().unwrap_or_else(|| "127.0.0.1:19311".into());
    let role = args.next().unwrap_or_else(|| "both".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let nodelay = |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        };
        if role != "front" {
            let leaf = tokio::net::TcpListener::bind(&leaf_addr)
                .await?
                .tap_io(nodelay);
            let serving = axum::serve(leaf, Router::new().fallback(get(|| async { "hello\n" })));
            if role == "leaf" {
                return serving.await;
            }
            tokio::spawn(async move { serving.await });
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Pool = Client::builder(TokioExecutor::new()).build(connector);
        let uri: http::Uri = format!("http://{leaf_addr}/")
            .parse()
            .map_err(std::io::Error::other)?;
        let app = Router::new().fallback(get(front)).with_state((client, uri));
        let listener = tokio::net::TcpListener::bind(&front_addr)
            .await?
            .tap_io(nodelay);
        axum::serve(listener, app).await
    })
}
