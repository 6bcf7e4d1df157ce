//! `/api/sessions/{id}/collaborators`: invite, change a role, remove (or leave). Owners and admins
//! manage; only the owner grants, changes or removes the admin role. A change reaches the
//! collaborator's live sockets at once: removed → closed with 4403, lowered → read-only.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use storage::model::{Collaborator, CollaboratorRole, Session};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, AuthUser};
use super::sessions::{require_manager, role};
use super::views::SessionView;
use super::{ApiError, AppState, ErrorBody, validate};
use crate::access::SessionRole;
use crate::clock::unix_ms;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(add)).routes(routes!(change_role, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddCollaborator {
    /// Who: one of userId, username, email.
    user_id: Option<String>,
    username: Option<String>,
    email: Option<String>,
    /// viewer (default), editor or admin.
    #[schema(value_type = Option<String>, example = "editor")]
    role: Option<CollaboratorRole>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeRole {
    #[schema(value_type = String, example = "viewer")]
    role: CollaboratorRole,
}

/// Invite a user to the session (owner or admin).
#[utoipa::path(post, path = "/api/sessions/{id}/collaborators", tag = "collaborators", security(("bearer" = [])),
    request_body = AddCollaborator, params(("id" = String, Path, description = "Session id")),
    responses((status = 201, description = "Invited: the session with its new collaborator", body = SessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "No such session or user", body = ErrorBody),
        (status = 409, description = "Already a collaborator, or no free seat", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn add(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<AddCollaborator>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let invitee = find_user(&state, &request).await?;
    let new_role = request.role.unwrap_or_default();
    let session = state
        .sessions
        .update(&id, |session| {
            let mine = require_manager(session, &claims)?;
            if new_role == CollaboratorRole::Admin && mine != SessionRole::Owner {
                return Err(ApiError::forbidden("only the owner may make admins"));
            }
            if session.owner == invitee.id || session.collaborator(&invitee.id).is_some() {
                return Err(ApiError::conflict("already_member", "that user is already in this session"));
            }
            if session.collaborators.len() >= session.max_collaborators as usize {
                return Err(ApiError::conflict("session_full", "the session has no free seat"));
            }
            session.collaborators.push(Collaborator {
                user_id: invitee.id.clone(),
                username: invitee.username.clone(),
                role: new_role,
                joined_at: unix_ms() as i64,
                is_active: false,
            });
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(SessionView::new(&session, role(&session, &claims)))))
}

/// Change a collaborator's role (owner or admin; admin roles only by the owner).
#[utoipa::path(put, path = "/api/sessions/{id}/collaborators/{userId}", tag = "collaborators",
    security(("bearer" = [])), request_body = ChangeRole,
    params(("id" = String, Path, description = "Session id"), ("userId" = String, Path, description = "Collaborator's user id")),
    responses((status = 200, description = "The session with the collaborator's new role", body = SessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn change_role(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<ChangeRole>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state
        .sessions
        .update(&id, |session| {
            let mine = require_manager(session, &claims)?;
            let target = member_mut(session, &user_id)?;
            if (target.role == CollaboratorRole::Admin || request.role == CollaboratorRole::Admin)
                && mine != SessionRole::Owner
            {
                return Err(ApiError::forbidden("only the owner may grant or change the admin role"));
            }
            target.role = request.role;
            Ok(())
        })
        .await?;
    Ok(Json(SessionView::new(&session, role(&session, &claims))))
}

/// Remove a collaborator (owner or admin; an admin only by the owner), or leave the session
/// yourself. Their live sockets are closed with 4403.
#[utoipa::path(delete, path = "/api/sessions/{id}/collaborators/{userId}", tag = "collaborators",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id"), ("userId" = String, Path, description = "Collaborator's user id")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn remove(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .sessions
        .update(&id, |session| {
            let leaving = user_id == claims.sub;
            if !leaving {
                let mine = require_manager(session, &claims)?;
                let target = member_mut(session, &user_id)?;
                if target.role == CollaboratorRole::Admin && mine != SessionRole::Owner {
                    return Err(ApiError::forbidden("only the owner may remove an admin"));
                }
            } else {
                member_mut(session, &user_id)?;
            }
            session.collaborators.retain(|c| c.user_id != user_id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn member_mut<'a>(session: &'a mut Session, user_id: &str) -> Result<&'a mut Collaborator, ApiError> {
    session
        .collaborators
        .iter_mut()
        .find(|c| c.user_id == user_id)
        .ok_or_else(|| ApiError::not_found("collaborator"))
}

async fn find_user(state: &AppState, request: &AddCollaborator) -> Result<storage::model::User, ApiError> {
    let user = match (&request.user_id, &request.username, &request.email) {
        (Some(id), None, None) if storage::model::is_id(id) => state.store.user_by_id(id).await?,
        (Some(_), None, None) => None,
        (None, Some(name), None) => state.store.user_by_username(name.trim()).await?,
        (None, None, Some(email)) => state.store.user_by_email(&validate::email(email)?).await?,
        _ => return Err(ApiError::bad_request("userId", "send exactly one of userId, username, email")),
    };
    user.ok_or_else(|| ApiError::not_found("user"))
}
