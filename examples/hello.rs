//! The ceiling of this stack for the benchmark: a bare axum "hello" server on
//! the same runtime flavour servicemock uses with `--threads 1`.
//!
//!   cargo run --release --example hello -- 127.0.0.1:19300

use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19300".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new().fallback(get(|| async { "hello\n" }));
        axum::serve(listener, app).await
    })
}
