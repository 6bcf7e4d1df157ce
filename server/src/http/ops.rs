//! Operations endpoints: liveness, readiness and Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready for traffic: accepting connections and the store answers. A node whose Redis (cache or
/// relay) is unreachable still serves its own clients: it stays ready, with status `degraded`; so
/// does a node with a room that failed and could not be reloaded yet, and a node whose broker is
/// unreachable or that holds jobs in its outbox (edits and chat go on; their `saved` waits).
/// Execution is reported (`execution`: no Docker, no worker seen) but does not make the node
/// degraded: everything else it serves is whole, and a laptop without Docker is a normal setup.
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, description = "Ready; the body names each dependency's state"),
    (status = 503, description = "Shutting down, or the store or cache is unreachable")))]
async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let accepting = state.accepting.load(Ordering::Acquire);
    let (store, cache, execution) =
        tokio::join!(state.store.ping(), state.cache.ping(), state.executions.runners.status());
    let (store_ok, cache_ok) = (store.is_ok(), cache.is_ok());
    let ok = accepting && store_ok;
    let relay_ok = state.relay.is_connected();
    let quarantined = state.rooms.quarantined();
    let queue = state.queue.status();
    let queue_ok = queue.connected && queue.held == 0;
    let degraded = !cache_ok || !relay_ok || !queue_ok || quarantined > 0;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": match (ok, degraded) { (false, _) => "not_ready", (true, true) => "degraded", (true, false) => "ready" },
        "accepting": accepting,
        "store": { "backend": state.store.backend_name(), "status": if store_ok { "ok" } else { "unavailable" } },
        "cache": { "backend": state.cache.backend_name(), "status": if cache_ok { "ok" } else { "degraded" } },
        "relay": { "backend": state.relay.backend_name(), "status": if relay_ok { "ok" } else { "degraded" } },
        "queue": { "backend": queue.backend, "status": if queue_ok { "ok" } else { "degraded" }, "held": queue.held },
        "execution": {
            "backend": execution.backend,
            "status": if execution.available { "ok" } else { "unavailable" },
            "reason": execution.reason,
            "running": execution.running,
            "runners": execution.runners,
        },
        "rooms": state.rooms.len(),
        "rooms_quarantined": quarantined,
    });
    (status, axum::Json(body))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let runners = state.executions.runners.status().await;
    crate::telemetry::Metrics::get().execution_available.set(if runners.available { 1.0 } else { 0.0 });
    if let Some(waiting) = state.executions.backlog.waiting() {
        crate::telemetry::Metrics::get().execution_queue_depth.set(waiting as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::telemetry::render())
}
