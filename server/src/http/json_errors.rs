//! The safety net under every route: whatever produced an error response (an axum rejection a
//! handler did not map, a tower layer, a panic), the client gets `{"error":{"code","message"}}`.
//! The routes and extractors answer in that shape themselves; this only catches what slips past
//! them, and logs it so the source can be fixed. hyper's own answers to unparsable requests never
//! reach the router; `crate::serve` rewrites those on the wire with the same codes.

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;

use super::ApiError;
use crate::serve::code_for_status;

/// Longest original message kept from a non-JSON error body.
const MAX_MESSAGE_BYTES: usize = 200;

/// Run the request; turn a panic into a 500 and any non-JSON error into the JSON shape.
pub async fn ensure(request: Request, next: Next) -> Response {
    let response = match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        // The panic message was already printed by the panic hook; `internal` logs the event.
        Err(_) => return ApiError::internal("a request handler panicked").into_response(),
    };
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    as_json(response).await
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn as_json(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let (code, default) = code_for_status(parts.status);
    // Keep a short plain-text explanation (axum's rejections have useful ones); drop anything
    // longer or binary.
    let message = match axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await {
        Ok(text) if !text.is_empty() && text.iter().all(|b| b.is_ascii() && !b.is_ascii_control()) => {
            String::from_utf8_lossy(&text).into_owned()
        }
        _ => default.to_owned(),
    };
    tracing::warn!(status = parts.status.as_u16(), code, %message, "a non-JSON error response was rewritten");
    let mut json = ApiError::with_status(parts.status, code, message).into_response();
    for (name, value) in &parts.headers {
        // Everything else (Allow, Retry-After, Upgrade, WWW-Authenticate...) still applies.
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().append(name.clone(), value.clone());
        }
    }
    json.extensions_mut().extend(parts.extensions);
    json
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use tower::ServiceExt;

    async fn call(path: &str) -> (StatusCode, Option<String>, serde_json::Value, axum::http::HeaderMap) {
        let app = Router::new()
            .route(
                "/text",
                get(|| async { (StatusCode::BAD_REQUEST, [(header::ALLOW, "GET")], "plain words") }),
            )
            .route("/empty", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("boom")
                    }
                }),
            )
            .layer(axum::middleware::from_fn(super::ensure));
        let response = app.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 10_000).await.unwrap();
        let content_type = parts.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, content_type, json, parts.headers)
    }

    #[tokio::test]
    async fn a_plain_text_error_becomes_json_with_its_message_and_headers() {
        let (status, content_type, json, headers) = call("/text").await;
        assert_eq!(status, 400);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(json["error"]["code"], "bad_request");
        assert_eq!(json["error"]["message"], "plain words");
        assert_eq!(headers.get(header::ALLOW).unwrap(), "GET");
    }

    #[tokio::test]
    async fn an_empty_error_gets_the_default_message_and_successes_pass() {
        let (status, _, json, _) = call("/empty").await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
        );
        let (status, content_type, _, _) = call("/ok").await;
        assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("text/plain; charset=utf-8")));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500() {
        let (status, content_type, json, _) = call("/panic").await;
        assert_eq!(status, 500);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(json["error"]["code"], "internal");
    }
}
