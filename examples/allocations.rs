//! Heap allocations per request, for the benchmark: a counting allocator
//! around the system one, one thread, a servicemock entry and leaf in this
//! process (`/@leaf/` over HTTP/1.1), driven by a bare hyper client; the
//! client's own allocations, measured against a static server, are taken
//! off. Prints allocations and bytes per request for the entry and the leaf
//! together, and for one service answering with no hop.
//!
//!   cargo run --release --example allocations

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwards the caller's layout unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the pointer came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: the pointer came from `alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const REQUESTS: u64 = 20_000;

/// Allocations and bytes per request of `REQUESTS` GETs of `url`.
async fn per_request(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
) -> (f64, f64) {
    let uri: http::Uri = url.parse().unwrap();
    // Warm the pools and the connection.
    for _ in 0..100 {
        let body = client.get(uri.clone()).await.unwrap().into_body();
        body.collect().await.unwrap();
    }
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..REQUESTS {
        let response = client.get(uri.clone()).await.unwrap();
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.into_body().collect().await.unwrap();
    }
    let (a1, b1) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (
        (a1 - a0) as f64 / REQUESTS as f64,
        (b1 - b0) as f64 / REQUESTS as f64,
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let names = vec!["entry".to_owned(), "leaf".to_owned()];
        let options = servicemock::mesh::MeshOptions {
            bind: "127.0.0.1".parse().unwrap(),
            base_port: 0,
            version: "v1".into(),
            settings: Default::default(),
            propagate: servicemock::exec::context::default_propagated(),
            grace: std::time::Duration::from_secs(1),
            defaults: Default::default(),
            tls: false,
            spans: None,
            trace_url: None,
        };
        let mesh = servicemock::mesh::Mesh::start(&names, options).await.unwrap();
        let entry = mesh.addr("entry").unwrap();
        let leaf = mesh.addr("leaf").unwrap();
        // The client's own share, against a static answer of similar size.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = axum::Router::new().fallback(|| async { "x".repeat(1500) });
            axum::serve(listener, app).await
        });
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let (client_a, client_b) = per_request(&client, &format!("http://{plain}/")).await;
        let (hop_a, hop_b) = per_request(&client, &format!("http://{entry}/@leaf/")).await;
        let (leaf_a, leaf_b) = per_request(&client, &format!("http://{leaf}/")).await;
        println!(
            "entry + leaf, 1 hop: {:.1} allocations, {:.0} bytes per request (client's {:.1} taken off)",
            hop_a - client_a,
            hop_b - client_b,
            client_a
        );
        println!(
            "no hop (one service): {:.1} allocations, {:.0} bytes per request",
            leaf_a - client_a,
            leaf_b - client_b
        );
        mesh.stop().await.unwrap();
    });
}
