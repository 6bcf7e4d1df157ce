//! Response hardening for every route: security headers, CORS for the configured origins, JSON
//! answers for unknown routes and methods.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::ApiError;
use crate::config::Config;
use crate::socket::SocketHandle;

/// JSON needs no sources at all; the docs page loads its viewer from a CDN (see [`super::docs`]).
const CSP_API: &str = "default-src 'none'; frame-ancestors 'none'";
pub const CSP_DOCS_PAGE: &str = "default-src 'none'; script-src https://cdn.jsdelivr.net; \
    style-src 'unsafe-inline' https://fonts.googleapis.com; font-src https://fonts.gstatic.com; \
    img-src data: https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'";

pub async fn headers(config: Arc<Config>, request: Request, next: Next) -> Response {
    // Behind a TLS-terminating proxy the request itself is plain HTTP; only a trusted proxy's
    // word says the client used HTTPS, trusted exactly as for the client's IP.
    let peer = request.extensions().get::<ConnectInfo<SocketHandle>>().and_then(|info| info.0.0.peer_ip());
    let tls = super::proxy::forwarded_https(&config, request.headers(), peer);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-site"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP_API));
    }
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

pub fn cors(config: &Config) -> CorsLayer {
    let origins = if config.cors_origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::RETRY_AFTER,
            header::HeaderName::from_static("ratelimit-limit"),
            header::HeaderName::from_static("ratelimit-remaining"),
            header::HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
