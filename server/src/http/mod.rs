//! The HTTP surface: one router for the WebSocket gateway and the operations endpoints, and the
//! JSON error shape every route answers with.

mod error;
mod ops;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::routing::get;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::ApiError;

use crate::config::Config;
use crate::room::Rooms;
use crate::ws::connection::ConnectionSettings;

pub struct AppState {
    pub config: Arc<Config>,
    pub rooms: Arc<Rooms>,
    pub connection_settings: Arc<ConnectionSettings>,
    pub connection_slots: Arc<Semaphore>,
    /// Every WebSocket connection task, so shutdown can wait for them to close.
    pub connections: TaskTracker,
    pub cancel: CancellationToken,
    pub store: Arc<dyn storage::SnapshotStore>,
    /// False once shutdown starts: `/ready` then answers 503.
    pub accepting: AtomicBool,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().route("/ws/{*room}", get(crate::ws::upgrade)).merge(ops::router()).with_state(state)
}
