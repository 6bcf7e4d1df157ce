//! Request extractors that answer in the API's error shape: JSON bodies (400 naming the field,
//! 413 over the body limit, 415 without a JSON content type), the signed-in user (401 without a
//! valid token or an existing account, 403 for a disabled one), and the client's IP.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use storage::model::User;

pub use super::rate_limit::ClientIp;
use super::{ApiError, AppState};
use crate::auth::{AccountError, Claims, TokenError};
use crate::socket::SocketHandle;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large("request body is over the size limit"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        // serde's message names the field: "missing field `email`", "unknown field `foo`".
        _ => ApiError::malformed(strip_prefix(&rejection.body_text())),
    }
}

/// axum prefixes serde's message with its own sentence; the client needs only serde's part.
fn strip_prefix(text: &str) -> String {
    text.split_once(": ").map_or(text, |(_, rest)| rest).to_owned()
}

/// The user a valid `Authorization: Bearer <access token>` speaks for, whose account exists and is
/// active. A write (any method but GET, HEAD, OPTIONS) reads the account from the store; a read
/// accepts a recent cached answer (see [`crate::auth::Accounts`]). Either way the site role is the
/// account's, not the token's: a demoted admin is demoted at once for writes.
pub struct AuthUser(pub Claims);

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let claims = verified_claims(parts, state)?;
        let accounts = &state.auth.accounts;
        let role = if parts.method.is_safe() {
            accounts.recently_active(&claims.sub).await
        } else {
            accounts.current(&claims.sub).await.map(|user| user.role)
        }
        .map_err(account_error)?;
        Ok(Self(Claims { role, ..claims }))
    }
}

/// [`AuthUser`] for routes that need the account's record anyway (the profile): always read from
/// the store, once, and handed to the route.
pub struct SignedIn {
    pub claims: Claims,
    pub user: User,
}

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let claims = verified_claims(parts, state)?;
        let user = state.auth.accounts.current(&claims.sub).await.map_err(account_error)?;
        Ok(Self { claims: Claims { role: user.role, ..claims }, user })
    }
}

/// The claims of the request's valid bearer token (checked once, by the rate-limit layer when it
/// ran).
fn verified_claims(parts: &mut Parts, state: &AppState) -> Result<Claims, ApiError> {
    let checked = match parts.extensions.remove::<CheckedToken>() {
        Some(CheckedToken(checked)) => checked,
        None => {
            let token = bearer_token(&parts.headers).ok_or_else(|| {
                ApiError::unauthorized("sign in: send Authorization: Bearer <access token>")
            })?;
            state.auth.tokens.verify(token)
        }
    };
    checked.map_err(|error| match error {
        TokenError::Expired => ApiError::unauthorized("access token expired; refresh it"),
        TokenError::NotYetValid => ApiError::unauthorized("access token not valid yet (check the clocks)"),
        TokenError::Invalid => ApiError::unauthorized("invalid access token"),
    })
}

pub fn account_error(error: AccountError) -> ApiError {
    match error {
        AccountError::Unknown => ApiError::account_not_found(),
        AccountError::Disabled => ApiError::account_disabled(),
        AccountError::Store(error) => error.into(),
    }
}

impl FromRequestParts<Arc<AppState>> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        let peer =
            parts.extensions.get::<axum::extract::ConnectInfo<SocketHandle>>().and_then(|i| i.0.0.peer_ip());
        Ok(Self(super::proxy::client_ip(&state.config, &parts.headers, peer)))
    }
}

pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// The outcome of checking a request's bearer token, kept in its extensions by the rate-limit
/// layer (which needs the user) so that [`AuthUser`] does not verify the signature again.
#[derive(Clone)]
pub struct CheckedToken(pub Result<Claims, TokenError>);
