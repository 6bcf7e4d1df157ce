//! `GET /api/sessions/{id}/messages`: a session's chat history, a page at a time, oldest first
//! within the page, paged backwards with `before` (members only: whoever may open the room).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use protocol::chat::ChatPost;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, AuthUser};
use super::sessions::member_session;
use super::{ApiError, AppState, ErrorBody};
use crate::ws::chat::history::{ChatHistory, HistoryError};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(history))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages per page, 1 to 100 (default 50).
    limit: Option<usize>,
    /// A message id: the page holds messages older than it (the `next` of the previous page).
    before: Option<String>,
}

/// Who wrote a message.
#[derive(Serialize, ToSchema)]
pub struct ChatUserView {
    id: String,
    username: String,
}

/// A chat message, in the shape of the socket's `chat` message.
#[derive(Serialize, ToSchema)]
pub struct ChatMessageView {
    id: String,
    room: String,
    user: ChatUserView,
    text: String,
    /// Unix ms.
    ts: i64,
}

impl From<ChatPost> for ChatMessageView {
    fn from(post: ChatPost) -> Self {
        Self {
            id: post.id,
            room: post.room,
            user: ChatUserView { id: post.user.id, username: post.user.username },
            text: post.text,
            ts: post.ts,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    /// Oldest first.
    messages: Vec<ChatMessageView>,
    /// Pass as `before` for the next (older) page; null when there is none.
    next: Option<String>,
}

/// A session's chat history, newest page first; members only.
#[utoipa::path(get, path = "/api/sessions/{id}/messages", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id"), HistoryQuery),
    responses((status = 200, description = "One page of messages, oldest first", body = MessagePage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn history(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_query(format!("limit: must be between 1 and {MAX_LIMIT}")));
    }
    if let Some(before) = &query.before
        && !storage::model::is_id(before)
    {
        return Err(ApiError::invalid_query("before: a message id (24 hex digits)"));
    }
    let session = member_session(&state, &claims, &id).await?;
    let history =
        ChatHistory::new(state.cache.clone(), state.store.clone() as Arc<dyn storage::MessageStore>);
    let page =
        history.page(&session.id, query.before.as_deref(), limit).await.map_err(|error| match error {
            HistoryError::Store(error) => ApiError::from(error),
            HistoryError::UnknownCursor => ApiError::invalid_query("before: no such message in this session"),
        })?;
    Ok(Json(MessagePage { messages: page.messages.into_iter().map(Into::into).collect(), next: page.next }))
}
