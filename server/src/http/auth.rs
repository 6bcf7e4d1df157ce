//! `/api/auth`: register, login (email or username), refresh (rotating), logout, profile.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use storage::model::{Preferences, User, UserRole, new_id};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ClientIp, SignedIn};
use super::views::{AuthResponse, TokenPair, UserView};
use super::{ApiError, AppState, validate};
use crate::auth::login_attempts::{LockScope, Locked};
use crate::auth::passwords::{self, Verified};
use crate::auth::{Auth, RefreshError};
use crate::clock::unix_ms;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(profile, update_profile))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3-30 letters, digits or underscores.
    #[schema(example = "ada_l")]
    username: String,
    #[schema(example = "ada@example.com")]
    email: String,
    /// At least 8 characters.
    #[schema(example = "correct horse battery")]
    password: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// Email or username (or send `email` / `username` instead).
    login: Option<String>,
    email: Option<String>,
    username: Option<String>,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdate {
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Merged into the current preferences: send only what changes.
    #[schema(value_type = Object)]
    preferences: Option<serde_json::Value>,
    /// Required to change the password.
    current_password: Option<String>,
    new_password: Option<String>,
}

/// Create an account and sign in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Signed up: the user and its first access and refresh tokens", body = AuthResponse),
        (status = 400, description = "A field is invalid (the message names it)", body = super::ErrorBody),
        (status = 409, description = "Email or username taken", body = super::ErrorBody),
        (status = 413, body = super::ErrorBody), (status = 429, body = super::ErrorBody)))]
async fn register(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    let username = validate::username(&request.username)?;
    let email = validate::email(&request.email)?;
    validate::password("password", &request.password)?;
    let first_name = optional_name("firstName", request.first_name)?;
    let last_name = optional_name("lastName", request.last_name)?;
    let password_hash = hash_off_thread(request.password).await?;
    let now = unix_ms() as i64;
    let user = User {
        id: new_id(),
        username,
        email,
        password_hash,
        first_name,
        last_name,
        role: UserRole::User,
        preferences: Preferences::default(),
        is_active: true,
        email_verified: false,
        last_login_at: Some(now),
        created_at: now,
        updated_at: now,
    };
    state.store.create_user(&user).await?;
    tracing::info!(user = user.id, username = user.username, "registered");
    Ok((StatusCode::CREATED, Json(signed_in(&state.auth, &user).await?)))
}

/// Sign in with email or username and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in: the user and a new access and refresh token", body = AuthResponse),
        (status = 400, body = super::ErrorBody),
        (status = 401, description = "Wrong credentials", body = super::ErrorBody),
        (status = 403, description = "Account disabled", body = super::ErrorBody),
        (status = 429, description = "Too many failed logins for this account or from this address", body = super::ErrorBody)))]
async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    let login = request
        .login
        .or(request.email)
        .or(request.username)
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::missing_field("login", "send your email or username"))?;
    let found = if login.contains('@') {
        state.store.user_by_email(&login.to_lowercase()).await?
    } else {
        state.store.user_by_username(&login).await?
    };
    // Counted before the password is checked; a success gives it back (see LoginAttempts).
    let account = found.as_ref().map_or(login.as_str(), |user| user.id.as_str());
    let attempt =
        state.auth.logins.begin(account, &super::proxy::bucket(ip)).await.map_err(too_many_failures)?;
    let password = request.password;
    let Some(mut user) = found else {
        tokio::task::spawn_blocking(move || passwords::verify_nothing(&password))
            .await
            .map_err(ApiError::internal)?;
        return Err(invalid_credentials());
    };
    let stored = user.password_hash.clone();
    let (verified, password) =
        tokio::task::spawn_blocking(move || (passwords::verify(&password, &stored), password))
            .await
            .map_err(ApiError::internal)?;
    if verified == Verified::No {
        return Err(invalid_credentials());
    }
    if !user.is_active {
        return Err(ApiError::account_disabled());
    }
    attempt.succeeded().await;
    if verified == Verified::YesUpgrade {
        user.password_hash = hash_off_thread(password).await?;
        tracing::info!(user = user.id, "upgraded a bcrypt password hash to argon2id");
    }
    let now = unix_ms() as i64;
    user.last_login_at = Some(now);
    user.updated_at = now;
    state.store.replace_user(&user).await?;
    Ok(Json(signed_in(&state.auth, &user).await?))
}

/// Trade a refresh token for a new access token and a new refresh token. A refresh token works
/// once: presenting one again revokes every token of that sign-in.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and the next refresh token (the one sent is used up)", body = TokenPair),
        (status = 400, body = super::ErrorBody),
        (status = 401, description = "Invalid, expired, revoked or reused; or the account no longer exists", body = super::ErrorBody),
        (status = 403, description = "Account disabled", body = super::ErrorBody),
        (status = 429, body = super::ErrorBody)))]
async fn refresh(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let rotated = state.auth.refresh.rotate(&request.refresh_token).await.map_err(refresh_error)?;
    let user = match state.auth.accounts.current(&rotated.user_id).await {
        Ok(user) => user,
        Err(error) => {
            if !matches!(error, crate::auth::AccountError::Store(_)) {
                state.auth.refresh.revoke(&rotated.token).await.map_err(refresh_error)?;
            }
            return Err(super::extract::account_error(error));
        }
    };
    Ok(Json(token_pair(&state.auth, &user, rotated.token)))
}

/// Sign out: revoke the refresh token and every token rotated from the same sign-in. Access tokens
/// already issued stay valid until they expire (at most 15 minutes).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Signed out (also for an unknown token)"),
        (status = 400, body = super::ErrorBody), (status = 429, body = super::ErrorBody)))]
async fn logout(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state.auth.refresh.revoke(&request.refresh_token).await.map_err(refresh_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's profile.
#[utoipa::path(get, path = "/api/auth/profile", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The signed-in user", body = UserView), (status = 401, body = super::ErrorBody),
        (status = 403, description = "Account disabled", body = super::ErrorBody), (status = 429, body = super::ErrorBody)))]
async fn profile(SignedIn { user, .. }: SignedIn) -> Json<UserView> {
    Json(UserView::from(&user))
}

/// Change the profile: names, username, email, preferences (merged), password (needs the current one).
#[utoipa::path(put, path = "/api/auth/profile", tag = "auth", security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, description = "The user as changed", body = UserView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, description = "Wrong current password, or account disabled", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
        (status = 413, body = super::ErrorBody), (status = 429, body = super::ErrorBody)))]
async fn update_profile(
    State(state): State<Arc<AppState>>,
    SignedIn { mut user, .. }: SignedIn,
    ApiJson(update): ApiJson<ProfileUpdate>,
) -> Result<Json<UserView>, ApiError> {
    if let Some(username) = update.username {
        user.username = validate::username(&username)?;
    }
    if let Some(email) = update.email {
        user.email = validate::email(&email)?;
    }
    if let Some(first) = update.first_name {
        user.first_name = optional_name("firstName", Some(first))?;
    }
    if let Some(last) = update.last_name {
        user.last_name = optional_name("lastName", Some(last))?;
    }
    if let Some(changes) = update.preferences {
        user.preferences = merge_preferences(&user.preferences, changes)?;
    }
    if let Some(new_password) = update.new_password {
        validate::password("newPassword", &new_password)?;
        let current = update.current_password.ok_or_else(|| {
            ApiError::missing_field("currentPassword", "is required to change the password")
        })?;
        let stored = user.password_hash.clone();
        let verified = tokio::task::spawn_blocking(move || passwords::verify(&current, &stored))
            .await
            .map_err(ApiError::internal)?;
        if verified == Verified::No {
            return Err(ApiError::forbidden("currentPassword is wrong"));
        }
        user.password_hash = hash_off_thread(new_password).await?;
    }
    user.updated_at = unix_ms() as i64;
    if !state.store.replace_user(&user).await? {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(UserView::from(&user)))
}

/// Apply a partial preferences object: unknown keys and wrong types are refused, naming the field.
fn merge_preferences(current: &Preferences, changes: serde_json::Value) -> Result<Preferences, ApiError> {
    fn merge(into: &mut serde_json::Value, from: serde_json::Value, path: &str) -> Result<(), ApiError> {
        let (Some(into_map), serde_json::Value::Object(from_map)) = (into.as_object_mut(), &from) else {
            *into = from;
            return Ok(());
        };
        for (key, value) in from_map.clone() {
            let field = format!("{path}.{key}");
            let slot =
                into_map.get_mut(&key).ok_or_else(|| ApiError::bad_request(&field, "unknown setting"))?;
            merge(slot, value, &field)?;
        }
        Ok(())
    }
    if !changes.is_object() {
        return Err(ApiError::bad_request("preferences", "must be an object"));
    }
    let mut merged = serde_json::to_value(current).map_err(ApiError::internal)?;
    merge(&mut merged, changes, "preferences")?;
    let preferences: Preferences =
        serde_json::from_value(merged).map_err(|e| ApiError::bad_request("preferences", e))?;
    validate::preferences(&preferences)?;
    Ok(preferences)
}

fn optional_name(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    value
        .map(|v| validate::text(field, &v, validate::MAX_NAME_CHARS, true))
        .transpose()
        .map(|v| v.filter(|v| !v.is_empty()))
}

async fn hash_off_thread(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || passwords::hash(&password)).await.map_err(ApiError::internal)
}

async fn signed_in(auth: &Auth, user: &User) -> Result<AuthResponse, ApiError> {
    let refresh_token = auth.refresh.issue(&user.id).await.map_err(refresh_error)?;
    Ok(AuthResponse { user: UserView::from(user), tokens: token_pair(auth, user, refresh_token) })
}

fn token_pair(auth: &Auth, user: &User, refresh_token: String) -> TokenPair {
    TokenPair {
        access_token: auth.tokens.issue(user),
        refresh_token,
        token_type: "Bearer",
        expires_in: auth.tokens.ttl().as_secs(),
    }
}

fn too_many_failures(locked: Locked) -> ApiError {
    let message = match locked.scope {
        LockScope::Account => "too many failed logins for this account; try again later",
        LockScope::Address => "too many failed logins from this address; try again later",
    };
    ApiError::too_many_failed_logins(locked.retry_after, message)
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("wrong email, username or password")
}

fn refresh_error(error: RefreshError) -> ApiError {
    match error {
        RefreshError::Invalid | RefreshError::Reused => ApiError::invalid_token(error.to_string()),
        RefreshError::Cache(e) => ApiError::internal(e),
    }
}
