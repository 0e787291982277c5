//! When to stop: SIGTERM or SIGINT for the process, and a [`Shutdown`]
//! handle that many servers (the mesh, a test) can wait on together.

use tokio::sync::watch;

/// A one-way switch that any number of servers wait on.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            sender: watch::channel(false).0,
        }
    }
}

impl Shutdown {
    /// Starts the shutdown of every server waiting on this switch.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            let _ = receiver.wait_for(|stopped| *stopped).await;
        }
    }
}

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: an orchestrator (Kubernetes, Docker) is stopping the pod.
    /// Endpoints take seconds to stop sending traffic, so the service keeps
    /// serving for the drain delay, not-ready, before it stops accepting.
    Terminate,
    /// SIGINT (Ctrl-C): a person at a terminal; stop at once.
    Interrupt,
}

/// Resolves on SIGTERM (what Kubernetes and Docker send) or SIGINT (Ctrl-C),
/// saying which.
pub async fn signal() -> Stop {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let stop = {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => Stop::Interrupt,
                    _ = term.recv() => Stop::Terminate,
                }
            }
            Err(_) => {
                let _ = interrupt.await;
                Stop::Interrupt
            }
        }
    };
    #[cfg(not(unix))]
    let stop = {
        let _ = interrupt.await;
        Stop::Interrupt
    };
    match stop {
        Stop::Terminate => tracing::info!("SIGTERM received"),
        Stop::Interrupt => tracing::info!("interrupted (Ctrl-C), stopping now"),
    }
    stop
}
