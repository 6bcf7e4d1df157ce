//! `/api/sessions`: list mine, create, get, update, delete, join, lock/unlock. A session is a
//! room: its id is the room id of `/ws/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use storage::model::{
    Collaborator, CollaboratorRole, Language, Page, Session, SessionMetadata, SessionStatus, new_id,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use super::views::{Pagination, SessionList, SessionView};
use super::{ApiError, AppState, ErrorBody, validate};
use crate::access::SessionRole;
use crate::auth::Claims;
use crate::clock::unix_ms;

const DEFAULT_PAGE_SIZE: u64 = 10;
const MAX_PAGE_SIZE: u64 = 100;
const DEFAULT_MAX_COLLABORATORS: u32 = 10;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(join))
        .routes(routes!(lock))
        .routes(routes!(unlock))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page number.
    page: Option<u64>,
    /// Sessions per page, 1 to 100 (default 10).
    limit: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSession {
    /// 1 to 100 characters.
    #[schema(example = "Binary search kata")]
    title: String,
    /// Up to 500 characters.
    description: Option<String>,
    #[schema(value_type = Option<String>, example = "python")]
    language: Option<Language>,
    is_public: Option<bool>,
    /// 1 to 50 (default 10).
    max_collaborators: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSession {
    title: Option<String>,
    description: Option<String>,
    #[schema(value_type = Option<String>)]
    language: Option<Language>,
    is_public: Option<bool>,
    is_locked: Option<bool>,
    max_collaborators: Option<u32>,
    #[schema(value_type = Option<String>, example = "paused")]
    status: Option<SessionStatus>,
}

/// My sessions (owned or collaborating), newest first.
#[utoipa::path(get, path = "/api/sessions", tag = "sessions", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "One page of the sessions I own or collaborate on, newest first", body = SessionList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Account disabled", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn list(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid_query("page: starts at 1"));
    }
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::invalid_query(format!("limit: must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let skip = (page - 1).saturating_mul(limit);
    let (sessions, total) = state.store.sessions_of_user(&claims.sub, Page { skip, limit }).await?;
    let total_pages = total.div_ceil(limit);
    Ok(Json(SessionList {
        sessions: sessions.iter().map(|s| SessionView::new(s, role(s, &claims))).collect(),
        pagination: Pagination {
            current_page: page,
            total_pages,
            total_items: total,
            has_next: page < total_pages,
            has_prev: page > 1,
        },
    }))
}

/// Create a session; the caller owns it.
#[utoipa::path(post, path = "/api/sessions", tag = "sessions", security(("bearer" = [])), request_body = CreateSession,
    responses((status = 201, description = "The new session (its id is the room id)", body = SessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Account disabled", body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn create(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiJson(request): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let now = unix_ms() as i64;
    let session = Session {
        id: new_id(),
        title: validate::text("title", &request.title, validate::MAX_TITLE_CHARS, false)?,
        description: validate::text(
            "description",
            request.description.as_deref().unwrap_or(""),
            validate::MAX_DESCRIPTION_CHARS,
            true,
        )?,
        language: request.language.unwrap_or_default(),
        owner: claims.sub.clone(),
        collaborators: Vec::new(),
        is_public: request.is_public.unwrap_or(false),
        is_locked: false,
        max_collaborators: validate::max_collaborators(
            request.max_collaborators.unwrap_or(DEFAULT_MAX_COLLABORATORS),
        )?,
        status: SessionStatus::Active,
        metadata: SessionMetadata { last_activity: now, ..Default::default() },
        created_at: now,
        updated_at: now,
        revision: 0,
    };
    state.sessions.create(&session).await?;
    Ok((StatusCode::CREATED, Json(SessionView::new(&session, Some(SessionRole::Owner)))))
}

/// One session: for its members, or anyone signed in if it is public.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id (also the room id)")),
    responses((status = 200, description = "The session", body = SessionView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state.sessions.get(&id).await?.ok_or_else(|| ApiError::not_found("session"))?;
    let role = role(&session, &claims);
    if role.is_none() && !session.is_public {
        return Err(ApiError::forbidden("you are not a member of this session"));
    }
    Ok(Json(SessionView::new(&session, role)))
}

/// Change a session's settings (owner or admin). `maxCollaborators` may not drop below the
/// current number of collaborators.
#[utoipa::path(put, path = "/api/sessions/{id}", tag = "sessions", security(("bearer" = [])), request_body = UpdateSession,
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The session as changed", body = SessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn update(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateSession>,
) -> Result<Json<SessionView>, ApiError> {
    let title =
        request.title.map(|t| validate::text("title", &t, validate::MAX_TITLE_CHARS, false)).transpose()?;
    let description = request
        .description
        .map(|d| validate::text("description", &d, validate::MAX_DESCRIPTION_CHARS, true))
        .transpose()?;
    let max = request.max_collaborators.map(validate::max_collaborators).transpose()?;
    let session = state
        .sessions
        .update(&id, |session| {
            require_manager(session, &claims)?;
            if let Some(max) = max {
                if (max as usize) < session.collaborators.len() {
                    return Err(ApiError::bad_request(
                        "maxCollaborators",
                        format!("the session already has {} collaborators", session.collaborators.len()),
                    ));
                }
                session.max_collaborators = max;
            }
            if let Some(title) = &title {
                session.title = title.clone();
            }
            if let Some(description) = &description {
                session.description = description.clone();
            }
            if let Some(language) = request.language {
                session.language = language;
            }
            if let Some(public) = request.is_public {
                session.is_public = public;
            }
            if let Some(locked) = request.is_locked {
                session.is_locked = locked;
            }
            if let Some(status) = request.status {
                session.status = status;
            }
            Ok(())
        })
        .await?;
    Ok(Json(SessionView::new(&session, role(&session, &claims))))
}

/// Delete a session and its document (owner only). Its live sockets are closed with 4404.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn delete(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let session = state.sessions.get(&id).await?.ok_or_else(|| ApiError::not_found("session"))?;
    if session.owner != claims.sub {
        return Err(ApiError::forbidden("only the owner may delete a session"));
    }
    if !state.sessions.delete(&id).await? {
        return Err(ApiError::not_found("session"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Join a session: a public one (as a viewer, while there is a free seat), or one you were
/// invited to (marks you active).
#[utoipa::path(post, path = "/api/sessions/{id}/join", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Joined (or already a member): the session", body = SessionView), (status = 401, body = ErrorBody),
        (status = 403, description = "Private and not invited", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "No free seat (maxCollaborators)", body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn join(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state
        .sessions
        .update(&id, |session| {
            if session.owner == claims.sub {
                return Ok(());
            }
            if let Some(me) = session.collaborators.iter_mut().find(|c| c.user_id == claims.sub) {
                me.is_active = true;
                return Ok(());
            }
            if !session.is_public {
                return Err(ApiError::forbidden("this session is private: ask its owner for an invitation"));
            }
            if session.collaborators.len() >= session.max_collaborators as usize {
                return Err(ApiError::conflict("session_full", "the session has no free seat"));
            }
            session.collaborators.push(Collaborator {
                user_id: claims.sub.clone(),
                username: claims.username.clone(),
                role: CollaboratorRole::Viewer,
                joined_at: unix_ms() as i64,
                is_active: true,
            });
            Ok(())
        })
        .await?;
    Ok(Json(SessionView::new(&session, role(&session, &claims))))
}

/// Make the session read-only for everyone but its owner (owner or admin).
#[utoipa::path(post, path = "/api/sessions/{id}/lock", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Locked: read-only for all but the owner", body = SessionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn lock(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    set_locked(&state, &claims, &id, true).await
}

/// Let editors write again (owner or admin).
#[utoipa::path(post, path = "/api/sessions/{id}/unlock", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Unlocked", body = SessionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn unlock(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, ApiError> {
    set_locked(&state, &claims, &id, false).await
}

async fn set_locked(
    state: &AppState,
    claims: &Claims,
    id: &str,
    locked: bool,
) -> Result<Json<SessionView>, ApiError> {
    let session = state
        .sessions
        .update(id, |session| -> Result<(), ApiError> {
            require_manager(session, claims)?;
            session.is_locked = locked;
            Ok(())
        })
        .await?;
    Ok(Json(SessionView::new(&session, role(&session, claims))))
}

pub(super) fn role(session: &Session, claims: &Claims) -> Option<SessionRole> {
    SessionRole::of(session, &claims.sub, claims.role)
}

/// The session `id` if `claims` has any role in it: 404 when there is no such session, 403 when
/// the caller is not a member (a public session's non-members included).
pub(super) async fn member_session(state: &AppState, claims: &Claims, id: &str) -> Result<Session, ApiError> {
    let session = state.sessions.get(id).await?.ok_or_else(|| ApiError::not_found("session"))?;
    if role(&session, claims).is_none() {
        return Err(ApiError::forbidden("you are not a member of this session"));
    }
    Ok(session)
}

/// The caller's role, if it may manage the session; 403 otherwise (404 is decided before).
pub(super) fn require_manager(session: &Session, claims: &Claims) -> Result<SessionRole, ApiError> {
    match role(session, claims) {
        Some(role) if role.can_manage() => Ok(role),
        Some(_) => Err(ApiError::forbidden("only the owner or an admin may do this")),
        None => Err(ApiError::forbidden("you are not a member of this session")),
    }
}
