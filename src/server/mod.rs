//! The one listener that speaks HTTP/1.1, h2c and gRPC.
//!
//! Every connection is served by hyper's auto builder (through `axum::serve`),
//! which tells HTTP/1.1 from the HTTP/2 preface. Each request is then steered
//! by its content type: `application/grpc*` goes to the tonic services
//! (MockService, health, reflection), everything else, HTTP/2 included, to the
//! HTTP routes of [`http`]. Shutdown is graceful and bounded ([`shutdown`]).

pub mod grpc;
pub mod http;
pub mod shutdown;

use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tower::Service as _;

use crate::config::Identity;
use crate::exec::Executor;

/// One named service: who it is, and the executor that runs its plans.
#[derive(Debug)]
pub struct Service {
    pub identity: Identity,
    pub executor: Executor,
    draining: AtomicBool,
}

impl Service {
    pub fn new(identity: Identity, executor: Executor) -> Arc<Service> {
        Arc::new(Service {
            identity,
            executor,
            draining: AtomicBool::new(false),
        })
    }

    /// Whether shutdown has begun (readiness answers 503 from then on).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Whether a request is gRPC: `content-type: application/grpc` or `+proto` etc.
pub fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The whole application for one service: gRPC and HTTP behind one router.
pub async fn app(service: Arc<Service>) -> (Router, grpc::Health) {
    let (grpc_router, health) = grpc::router(service.clone()).await;
    let http_router = http::router(service);
    let app = Router::new().fallback_service(tower::service_fn(move |request: Request| {
        let mut target = if is_grpc(&request) {
            grpc_router.clone()
        } else {
            http_router.clone()
        };
        target.call(request)
    }));
    (app, health)
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops
/// accepting, reports NOT_SERVING and not-ready, and lets in-flight requests
/// finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (app, health) = app(service.clone()).await;
    let (begun_tx, begun_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        service.draining.store(true, Ordering::Relaxed);
        health.set_not_serving().await;
        let _ = begun_tx.send(());
    };
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let deadline = async move {
        if begun_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server.into_future() => served,
        () = deadline => {
            tracing::warn!(?grace, "shutdown grace period over, closing the connections still open");
            Ok(())
        }
    }
}
