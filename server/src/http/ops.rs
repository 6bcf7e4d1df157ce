//! Operations endpoints: liveness, readiness and Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::AppState;
use crate::telemetry::{Metrics, prometheus};

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics))
}

/// The process is up and serving HTTP.
async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready for traffic: accepting connections and the store answers.
async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let accepting = state.accepting.load(Ordering::Acquire);
    let store_ok = state.store.load_snapshot("").await.is_ok();
    let status = if accepting && store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "accepting": accepting,
        "store": if store_ok { "ok" } else { "unavailable" },
        "rooms": state.rooms.len(),
    });
    (status, axum::Json(body))
}

async fn metrics() -> impl IntoResponse {
    Metrics::get();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render())
}
