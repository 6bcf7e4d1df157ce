//! The OpenAPI 3 document, generated from the route annotations: JSON at `/api-docs` (and
//! `/api-docs/openapi.json`), a browsable page at `/api-docs/ui` (Redoc, loaded from its CDN).

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::security::CSP_DOCS_PAGE;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CodeCrafter API",
        description = "Accounts, sessions and permissions of the CodeCrafter collaboration server. \
            Every error is `{\"error\":{\"code\",\"message\"}}` with a matching status. \
            A session is a room: connect a Yjs WebsocketProvider to `/ws/{sessionId}?token=<access token>`.",
    ),
    paths(crate::ws::upgrade),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "sessions", description = "Coding sessions (rooms)"),
        (name = "collaborators", description = "Who may open a session, and with which role"),
        (name = "ops", description = "Health, readiness, metrics"),
        (name = "realtime", description = "The WebSocket gateway"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

pub fn router(document: Document) -> Router<Arc<AppState>> {
    let json = Arc::new(document.to_pretty_json().expect("the OpenAPI document serialises"));
    let serve = move || {
        let json = json.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], json.as_str().to_owned()) }
    };
    Router::new()
        .route("/api-docs", get(serve.clone()))
        .route("/api-docs/openapi.json", get(serve))
        .route("/api-docs/ui", get(page))
}

async fn page() -> impl IntoResponse {
    let mut response = Html(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>CodeCrafter API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/api-docs/openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
</body></html>"#,
    )
    .into_response();
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP_DOCS_PAGE));
    response
}
