//! `GET /api/sessions/{id}/document`: the session's code as plain JSON (the text of its
//! document's `Y.Text` named `code`), for tools that do not speak Yjs. Members only.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::execute::session_of;
use super::extract::{ApiPath, AuthUser};
use super::{ApiError, AppState, ErrorBody};
use crate::exec::{SubmitRefusal, code_of, session_language};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(session_document))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    session_id: String,
    language: String,
    /// The live text when this node holds the room, else as last stored.
    code: String,
}

/// A session's code. Members only.
#[utoipa::path(get, path = "/api/sessions/{id}/document", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The session's code", body = DocumentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn session_document(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let session = session_of(&state, &claims, &id).await?;
    let code =
        code_of(&state.rooms, state.store.as_ref(), &session.id).await.map_err(|refusal| match refusal {
            SubmitRefusal::Store(error) => ApiError::from(error),
            other => ApiError::internal(other),
        })?;
    Ok(Json(DocumentView { language: session_language(&session), session_id: session.id, code }))
}
