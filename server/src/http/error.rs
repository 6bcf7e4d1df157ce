//! The JSON error every route answers with: `{"error":{"code","message"}}` and a matching status.
//! Internal errors are logged with their cause and answered with a bare 500.
//!
//! Each cause has its own stable `code` (the README lists them all with their statuses): a client
//! can branch on `missing_field` vs `invalid_token` without parsing the message.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

/// The error body, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, one per cause: `malformed_json`, `missing_field`,
    /// `unknown_field`, `invalid_field`, `invalid_query`, `invalid_path`, `bad_request`,
    /// `unauthorized`, `invalid_token`, `token_expired`, `account_not_found`, `account_disabled`,
    /// `forbidden`, `not_found`,
    /// `method_not_allowed`, `request_timeout`, `conflict`, `already_member`, `session_full`,
    /// `busy`, `payload_too_large`, `unsupported_media_type`, `upgrade_required`,
    /// `invalid_handshake`, `rate_limited`, `too_many_failed_logins`, `headers_too_large`,
    /// `uri_too_long`, `internal`,
    /// `unavailable`, `timeout`, `too_many_connections`.
    #[schema(example = "invalid_field")]
    pub code: String,
    /// What went wrong; for a 400 it starts with the offending field.
    #[schema(example = "email: must look like name@example.com")]
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 400 `invalid_field`: a field is present but breaks its rule; the message starts with it.
    pub fn bad_request(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_field", format!("{field}: {message}"))
    }

    /// 400 `missing_field`: a required field is absent or blank.
    pub fn missing_field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "missing_field", format!("{field}: {message}"))
    }

    /// 400 `invalid_query`: the query string does not parse, or a parameter is out of range.
    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    /// 400 `invalid_path`: a path parameter is not valid (not UTF-8, too long).
    pub fn invalid_path(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", message)
    }

    /// 400 `malformed_json`: the body is not JSON at all.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 401 `unauthorized`: no credentials, or wrong ones (login).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 401 `invalid_token`: a token that is not ours, altered, or revoked.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }

    /// 401 `token_expired`: a genuine token past its lifetime; refresh it.
    pub fn token_expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "token_expired", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn too_many_requests(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests, slow down")
        }
    }

    /// 401 for a valid token whose account does not exist (deleted, or never did): sign in again.
    pub fn account_not_found() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "account_not_found",
            "the account this token was issued for does not exist; sign in again",
        )
    }

    /// 403 for an account that exists but is disabled.
    pub fn account_disabled() -> Self {
        Self::new(StatusCode::FORBIDDEN, "account_disabled", "this account is disabled")
    }

    /// 429 after too many failed logins for an account or from an address.
    pub fn too_many_failed_logins(retry_after: Duration, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_failed_logins", message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 426 `upgrade_required`: a WebSocket route asked without a WebSocket upgrade.
    pub fn upgrade_required(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UPGRADE_REQUIRED, "upgrade_required", message)
    }

    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message)
    }

    /// The same error, telling the client when to ask again (`Retry-After`).
    pub fn retry_after(self, after: Duration) -> Self {
        Self { retry_after: Some(after), ..self }
    }

    /// A failure that is ours, not the client's: the cause goes to the log, the client gets a
    /// bare 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<storage::Error> for ApiError {
    fn from(error: storage::Error) -> Self {
        match error {
            storage::Error::Duplicate { field } => {
                Self::conflict("conflict", format!("{field} is already taken"))
            }
            other => Self::internal(other),
        }
    }
}

/// The one place access errors become HTTP answers.
impl From<crate::access::AccessError> for ApiError {
    fn from(error: crate::access::AccessError) -> Self {
        use crate::access::AccessError;
        match error {
            AccessError::SessionNotFound => Self::not_found("session"),
            AccessError::Busy => Self::conflict("busy", "the session kept changing concurrently; try again"),
            AccessError::Store(error) => error.into(),
        }
    }
}

impl From<crate::cache::CacheError> for ApiError {
    fn from(error: crate::cache::CacheError) -> Self {
        Self::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client retrying at once would be refused again.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessError;

    #[test]
    fn access_errors_become_their_http_answers() {
        let answer = |error: AccessError| {
            let api = ApiError::from(error);
            (api.status(), api.code())
        };
        assert_eq!(answer(AccessError::SessionNotFound), (StatusCode::NOT_FOUND, "not_found"));
        assert_eq!(answer(AccessError::Busy), (StatusCode::CONFLICT, "busy"));
        let taken = AccessError::Store(storage::Error::Duplicate { field: "email" });
        assert_eq!(answer(taken), (StatusCode::CONFLICT, "conflict"));
        let down = AccessError::Store(storage::Error::Backend("unreachable".into()));
        assert_eq!(answer(down), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
    }
}
