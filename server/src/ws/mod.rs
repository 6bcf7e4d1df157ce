//! The WebSocket gateway: `GET /ws/{room}` upgrades to the y-websocket protocol.

mod close;
pub mod connection;
mod rate_limit;

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::Version;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub use close::CloseReason;

use crate::http::{ApiError, AppState};
use crate::socket::SocketHandle;

/// Longest room id accepted, in bytes.
pub const MAX_ROOM_ID_BYTES: usize = 256;

#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// `?app=1` opts in to CodeCrafter's app messages (chat, run output, errors).
    #[serde(default)]
    app: Option<String>,
}

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    Query(query): Query<WsQuery>,
    ConnectInfo(SocketHandle(socket)): ConnectInfo<SocketHandle>,
    version: Version,
    ws: WebSocketUpgrade,
) -> Response {
    // Rooms write frames straight into the TCP socket, which is only right when the WebSocket
    // owns the whole connection, as with HTTP/1.1's upgrade (the server speaks no HTTP/2).
    if version != Version::HTTP_11 {
        return ApiError::bad_request("version", "WebSocket connections need HTTP/1.1").into_response();
    }
    if room.is_empty() || room.len() > MAX_ROOM_ID_BYTES {
        return ApiError::bad_request("room", format!("room id must be 1 to {MAX_ROOM_ID_BYTES} bytes"))
            .into_response();
    }
    let Ok(permit) = state.connection_slots.clone().try_acquire_owned() else {
        return ApiError::unavailable("too many connections").into_response();
    };
    let lease = match state.rooms.join(&room).await {
        Ok(lease) => lease,
        Err(error) => {
            tracing::error!(room, %error, "could not open room");
            return ApiError::unavailable("room unavailable, try again").into_response();
        }
    };
    let app = matches!(query.app.as_deref(), Some("1" | "true"));
    let settings = state.connection_settings.clone();
    let cancel = state.cancel.clone();
    let tracker = state.connections.clone();
    let limit = state.config.max_message_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        // Small buffers keep idle sockets cheap; they grow for large messages as needed.
        .read_buffer_size(2 * 1024)
        .write_buffer_size(64 * 1024)
        .on_upgrade(move |upgraded| {
            tracker.track_future(async move {
                connection::serve(upgraded, socket, lease, settings, app, cancel).await;
                drop(permit);
            })
        })
}
