//! The WebSocket route: `GET /ws/{room}` checks what HTTP can (HTTP/1.1 upgrade, room id, the
//! per-IP connect throttle, the connection cap), then hands the upgraded socket to the realtime
//! side ([`crate::ws`]), which admits it and serves it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Version};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{ApiPath, ApiQuery, ApiWebSocket, upgrade_required};
use super::{ApiError, client_ip};
use crate::socket::SocketHandle;
use crate::state::AppState;
use crate::telemetry::Metrics;
use crate::ws::MAX_ROOM_ID_BYTES;

/// Window of the per-IP connection throttle.
const CONNECT_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// `1` opts in to CodeCrafter's app messages (chat, run output, errors).
    #[serde(default)]
    app: Option<String>,
    /// Access token (JWT). Without it, the first message must be an auth token message
    /// (type 2, subtype 1), unless the server runs with `--allow-anonymous` and the room is not a
    /// session.
    #[serde(default)]
    token: Option<String>,
}

/// Open a room over WebSocket (y-websocket protocol). Refusals close the socket with 4401 (no or
/// bad token), 4403 (no access), 4404 (no such session); a viewer's updates are answered with a
/// permission-denied auth message and never applied.
#[utoipa::path(get, path = "/ws/{room}", tag = "realtime",
    params(("room" = String, Path, description = "Session id (any id for free rooms with --allow-anonymous)"), WsQuery),
    responses((status = 101, description = "Switching protocols"),
        (status = 400, description = "A bad room id (`invalid_path`), query (`invalid_query`) or handshake (`invalid_handshake`)", body = super::ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade over HTTP/1.1 (`upgrade_required`)", body = super::ErrorBody),
        (status = 429, description = "Too many connection attempts from this IP", body = super::ErrorBody),
        (status = 503, description = "Connection limit reached (`too_many_connections`)", body = super::ErrorBody)))]
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<WsQuery>,
    ConnectInfo(SocketHandle { socket, peer }): ConnectInfo<SocketHandle>,
    version: Version,
    headers: HeaderMap,
    ws: ApiWebSocket,
) -> Response {
    // Rooms write frames straight into the TCP socket, which is only right when the WebSocket
    // owns the whole connection, as with HTTP/1.1's upgrade (the server speaks no HTTP/2).
    if version != Version::HTTP_11 {
        return upgrade_required("WebSocket connections need an HTTP/1.1 upgrade");
    }
    if room.is_empty() || room.len() > MAX_ROOM_ID_BYTES {
        return ApiError::invalid_path(format!("room: a room id is 1 to {MAX_ROOM_ID_BYTES} bytes"))
            .into_response();
    }
    let ip = client_ip(&state.config, &headers, Some(peer));
    if let Err(refused) = throttle(&state, ip).await {
        return refused.into_response();
    }
    let Ok(permit) = state.gateway.slots.clone().try_acquire_owned() else {
        tracing::info!(reason = "too_many_connections", "WebSocket refused: --max-connections reached");
        return ApiError::with_status(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "the server holds as many WebSocket connections as it may; try again later",
        )
        .into_response();
    };
    let app = matches!(query.app.as_deref(), Some("1" | "true"));
    let gateway = state.gateway.clone();
    let (response, upgrade) = ws.accept();
    // The 101 goes out with the room's greeting (or the refusal), written by the connection.
    socket.hold_http_answer();
    // Set by the access log's middleware, which leaves the logging of a 101 to the connection.
    let request_id = headers
        .get(&super::access::REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let log = crate::ws::OpeningLog { request_id, peer };
    let opening = crate::ws::Opening { upgrade, socket, gateway, room, token: query.token, app, permit, log };
    // The connection's task starts now and takes over once hyper has sent the 101 and let go.
    let connection = crate::ws::serve(Box::new(opening));
    tokio::spawn(state.gateway.connections.track_future(connection));
    response
}

/// Count a connection attempt against the client IP's budget.
async fn throttle(state: &AppState, ip: std::net::IpAddr) -> Result<(), ApiError> {
    let limit = state.config.ws_connects_per_min;
    if limit == 0 {
        return Ok(());
    }
    let key = format!("rl:ws:{}", super::proxy::bucket(ip));
    match state.cache.hit(&key, CONNECT_WINDOW).await {
        Ok(hit) if hit.count > limit => {
            Metrics::get().rate_limited.increment(1);
            tracing::info!(%ip, reason = "rate_limited", "WebSocket refused: too many connects from this IP");
            Err(ApiError::too_many_requests(hit.reset_in))
        }
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(%error, "connect throttle unavailable; connection allowed");
            Ok(())
        }
    }
}
