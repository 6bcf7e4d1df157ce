//! Request extractors that answer in the API's error shape: JSON bodies (400 naming the field,
//! 413 over the body limit, 415 without a JSON content type), the signed-in user (401), and the
//! client's IP.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::auth::{Claims, TokenError};

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

/// The user a valid `Authorization: Bearer <access token>` speaks for.
pub struct AuthUser(pub Claims);

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let checked = match parts.extensions.remove::<CheckedToken>() {
            Some(CheckedToken(checked)) => checked,
            None => {
                let token = bearer_token(&parts.headers).ok_or_else(|| {
                    ApiError::unauthorized("sign in: send Authorization: Bearer <access token>")
                })?;
                state.auth.tokens.verify(token)
            }
        };
        match checked {
            Ok(claims) => Ok(Self(claims)),
            Err(TokenError::Expired) => Err(ApiError::unauthorized("access token expired; refresh it")),
            Err(TokenError::Invalid) => Err(ApiError::unauthorized("invalid access token")),
        }
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
