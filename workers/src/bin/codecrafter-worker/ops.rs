//! What operators see: logs, the Prometheus recorder, and the ops endpoints: `/health` (the
//! process is alive), `/ready` (the broker and the store answer: 503 while reconnecting; the
//! sandbox's state is reported on a line of its own, as a runner without one still persists),
//! `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use workers::exec::Sandbox;

fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = workers::metrics::histogram_buckets()
            .into_iter()
            .try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
                b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            })
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        workers::metrics::describe();
        relay::metrics::describe();
        workers::metrics::register();
        handle
    })
}

/// Install the recorder before anything resolves a metric handle.
pub fn install_recorder() {
    prometheus();
}

/// What `/ready` checks.
pub struct Health {
    broker: AtomicBool,
    store: Arc<dyn storage::Store>,
    /// `None` when execution is turned off (`--docker-host none`).
    sandbox: Option<Arc<dyn Sandbox>>,
}

impl Health {
    pub fn new(store: Arc<dyn storage::Store>, sandbox: Option<Arc<dyn Sandbox>>) -> Self {
        metrics::gauge!("codecrafter_broker_connected").set(0.0);
        Self { broker: AtomicBool::new(false), store, sandbox }
    }

    /// The `/ready` line about running programs.
    fn sandbox_line(&self) -> String {
        match &self.sandbox {
            None => "sandbox: off\n".to_owned(),
            Some(sandbox) => {
                let status = sandbox.status();
                match (status.available, status.reason) {
                    (true, _) => format!("sandbox: available, {} running\n", status.running),
                    (false, reason) => {
                        format!("sandbox: unavailable: {}\n", reason.as_deref().unwrap_or("?"))
                    }
                }
            }
        }
    }

    /// Whether the worker is connected to the broker and consuming.
    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::Release);
        // The same gauge the server's outbox sets: a worker cut off from the broker alerts too.
        metrics::gauge!("codecrafter_broker_connected").set(if up { 1.0 } else { 0.0 });
    }
}

pub async fn serve(listener: tokio::net::TcpListener, health: Arc<Health>, stop: CancellationToken) {
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(|| async { prometheus().render() }))
        .with_state(health);
    if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await {
        tracing::error!(%error, "ops endpoints failed");
    }
}

async fn ready(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    if !health.broker.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "broker unreachable\n".into());
    }
    match health.store.ping().await {
        Ok(()) => (StatusCode::OK, format!("ready\n{}", health.sandbox_line())),
        Err(error) => {
            tracing::warn!(%error, "store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n".into())
        }
    }
}
