//! Request extractors that answer in the API's error shape, one code per cause: JSON bodies
//! (`malformed_json`, `missing_field`, `unknown_field`, `invalid_field`, 413, 415), query strings
//! (`invalid_query`), path parameters (`invalid_path`), the WebSocket upgrade
//! (`upgrade_required`, `invalid_handshake`), the signed-in user (`unauthorized`,
//! `invalid_token`, `token_expired` without a valid token, 401/403 for a missing or disabled
//! account), and the client's IP. Use these, never axum's own: its rejections are plain text.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
        _ => {
            // serde's message names the field: "missing field `email`", "unknown field `foo`",
            // "invalid type: ... at line 1 column 9"; axum says which kind of failure it was.
            let message = strip_prefix(&rejection.body_text());
            match rejection {
                JsonRejection::JsonDataError(_) if message.contains("missing field `") => {
                    ApiError::with_status(StatusCode::BAD_REQUEST, "missing_field", message)
                }
                JsonRejection::JsonDataError(_) if message.contains("unknown field `") => {
                    ApiError::with_status(StatusCode::BAD_REQUEST, "unknown_field", message)
                }
                JsonRejection::JsonDataError(_) => {
                    ApiError::with_status(StatusCode::BAD_REQUEST, "invalid_field", message)
                }
                JsonRejection::JsonSyntaxError(_) => ApiError::malformed(message),
                // The body could not be read at all (the client went away mid-body).
                _ => ApiError::with_status(StatusCode::BAD_REQUEST, "bad_request", message),
            }
        }
    }
}

/// A query string, deserialized into `T`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            // "page: invalid digit found in string", "duplicate field `token`".
            Err(rejection @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::invalid_query(strip_prefix(&rejection.body_text())))
            }
            Err(other) => Err(ApiError::invalid_query(other.body_text())),
        }
    }
}

/// Path parameters, deserialized into `T`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            // A route and its handler that disagree on the parameters: our bug, not the client's.
            Err(rejection) if rejection.status().is_server_error() => {
                Err(ApiError::internal(rejection.body_text()))
            }
            // "Invalid URL: Invalid UTF-8 in `id`".
            Err(rejection @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::invalid_path(strip_prefix(&rejection.body_text())))
            }
            Err(other) => Err(ApiError::invalid_path(other.body_text())),
        }
    }
}

/// A WebSocket upgrade request (RFC 6455 §4.2.1). Anything else on a WebSocket route is told to
/// upgrade (426, with the `Upgrade` and `Sec-WebSocket-Version` headers RFC 9110 and RFC 6455 ask
/// for), and a broken upgrade is a 400. Checked here rather than by axum's `WebSocketUpgrade`,
/// which hands over a tungstenite stream: the server reads its clients' frames itself
/// ([`crate::socket::inbound`]).
pub struct ApiWebSocket {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for ApiWebSocket {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        if parts.method != Method::GET {
            let message = "a WebSocket upgrade is a GET request";
            return Err(ApiError::with_status(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
                .into_response());
        }
        let header_has = |name, token: &str| {
            parts.headers.get_all(name).iter().any(|value| {
                value
                    .as_bytes()
                    .split(|&b| b == b',')
                    .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        let upgrading = header_has(header::CONNECTION, "upgrade") && header_has(header::UPGRADE, "websocket");
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let (true, true, Some(on_upgrade)) =
            (upgrading, header_has(header::SEC_WEBSOCKET_VERSION, "13"), on_upgrade)
        else {
            return Err(upgrade_required(
                "connect with a WebSocket client: this route needs a WebSocket upgrade (RFC 6455) over HTTP/1.1",
            ));
        };
        // A key is 16 random bytes in base64: 24 characters.
        let key = parts.headers.get(header::SEC_WEBSOCKET_KEY).filter(|key| key.len() == 24).cloned();
        let Some(key) = key else {
            let message = "`Sec-WebSocket-Key` is missing or not 16 bytes in base64";
            return Err(
                ApiError::with_status(StatusCode::BAD_REQUEST, "invalid_handshake", message).into_response()
            );
        };
        Ok(Self { key, on_upgrade })
    }
}

impl ApiWebSocket {
    /// The 101 answer that completes the handshake, and the upgrade it starts: it resolves once
    /// hyper has written the answer and let go of the socket.
    pub fn accept(self) -> (Response, hyper::upgrade::OnUpgrade) {
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
        let accept = derive_accept_key(self.key.as_bytes());
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        (response, self.on_upgrade)
    }
}

/// 426 with the headers that say how to upgrade.
pub fn upgrade_required(message: &str) -> Response {
    let mut response = ApiError::upgrade_required(message).into_response();
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    response
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
        TokenError::Expired => ApiError::token_expired("access token expired; refresh it"),
        TokenError::NotYetValid => ApiError::invalid_token("access token not valid yet (check the clocks)"),
        TokenError::Invalid => ApiError::invalid_token("invalid access token"),
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
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<SocketHandle>>().map(|i| i.0.peer);
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
