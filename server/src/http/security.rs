//! Response hardening for every route: security headers, the content security policies of the API
//! and of the pages we serve, CORS for the configured origins, JSON answers for unknown routes and
//! methods.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::ApiError;
use crate::config::Config;
use crate::socket::SocketHandle;

/// JSON needs no sources at all; the docs page loads its viewer from a CDN (see [`super::docs`]):
/// exactly one script, the pinned Redoc file (its URL here must stay `docs::REDOC_URL`, a test
/// checks), which the page also loads with its SRI hash.
const CSP_API: &str = "default-src 'none'; frame-ancestors 'none'";
pub const CSP_DOCS_PAGE: &str = "default-src 'none'; \
    script-src https://cdn.jsdelivr.net/npm/redoc@2.5.4/bundles/redoc.standalone.js; \
    style-src 'unsafe-inline' https://fonts.googleapis.com; font-src https://fonts.gstatic.com; \
    img-src data: https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'";

/// The browser client's page (`super::web`), with the nonce of this one response. Everything it
/// loads comes from this origin; each source below is there for one reason.
pub fn csp_web_page(nonce: &str) -> String {
    // CodeMirror injects one `<style>` element into <head>; it takes the nonce from
    // `<meta name="csp-nonce">`, so that element and nothing else inline is allowed. `'self'` is
    // the bundled stylesheet.
    let style_elements = format!("style-src-elem 'self' 'nonce-{nonce}'");
    let directives = [
        // Whatever is not named below is refused.
        "default-src 'none'",
        // The esbuild bundle under /assets/: no inline script, no eval.
        "script-src 'self'",
        &style_elements,
        // y-codemirror.next colours remote cursors and selections through `style` attributes
        // (attributes cannot carry a nonce; they set style properties, they run no code).
        "style-src-attr 'unsafe-inline'",
        // The JSON API and the WebSocket rooms (`'self'` matches ws: and wss: of this host).
        "connect-src 'self'",
        // Images the bundle ships, and `data:` URIs (the page's empty favicon, inline SVG icons).
        "img-src 'self' data:",
        // Fonts and a web manifest, if the client ever ships them: only its own.
        "font-src 'self'",
        "manifest-src 'self'",
        // No <base> to redirect relative URLs, no form posts anywhere, no framing (clickjacking).
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ];
    directives.join("; ")
}

pub async fn headers(config: Arc<Config>, request: Request, next: Next) -> Response {
    // Behind a TLS-terminating proxy the request itself is plain HTTP; only a trusted proxy's
    // word says the client used HTTPS, trusted exactly as for the client's IP.
    let peer = request.extensions().get::<ConnectInfo<SocketHandle>>().map(|info| info.0.peer);
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
