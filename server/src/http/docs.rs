//! The OpenAPI 3 document, generated from the route annotations: JSON at `/api-docs` (and
//! `/api-docs/openapi.json`), a browsable page at `/api-docs/ui` (Redoc, loaded from its CDN).
//!
//! Redoc is pinned to one exact release and loaded with Subresource Integrity: the browser runs
//! the script only if its SHA-384 matches, so a changed file on the CDN (or a compromised CDN) is
//! refused instead of executed. Pinned rather than served from the binary: a 1.1 MB third-party
//! bundle would double as vendored code in our repository. `tests/it/ops.rs` recomputes the hash
//! from the npm registry's tarball of that version (the file jsDelivr serves for it).

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
        description = "Accounts, sessions, permissions and code execution of the CodeCrafter collaboration server. \
            Every error is `{\"error\":{\"code\",\"message\"}}` with a matching status. \
            A session is a room: connect a Yjs WebsocketProvider to `/ws/{sessionId}?token=<access token>`.",
    ),
    paths(super::realtime::upgrade),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "sessions", description = "Coding sessions (rooms)"),
        (name = "collaborators", description = "Who may open a session, and with which role"),
        (name = "execute", description = "Run a session's code in a sandbox; its output streams into the room"),
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

pub fn router(mut document: Document) -> Router<Arc<AppState>> {
    describe_error_responses(&mut document);
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

/// `sha384-` + base64 of the SHA-384 (SRI) of `bundles/redoc.standalone.js` in npm's redoc 2.5.4.
pub const REDOC_INTEGRITY: &str = "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5";
/// Where jsDelivr serves that exact file (also the only script source the page's CSP allows).
pub const REDOC_URL: &str = "https://cdn.jsdelivr.net/npm/redoc@2.5.4/bundles/redoc.standalone.js";

async fn page() -> impl IntoResponse {
    let mut response = Html(format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>CodeCrafter API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/api-docs/openapi.json"></redoc>
<script src="{REDOC_URL}" integrity="{REDOC_INTEGRITY}" crossorigin="anonymous"></script>
</body></html>"#
    ))
    .into_response();
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP_DOCS_PAGE));
    response
}

/// Every error status means the same thing on every route, so its description is written once
/// here, for each response whose annotation gave none (a route-specific description wins). OpenAPI
/// requires a description on every response; success responses say what they return in their
/// annotation, and `tests/it/ops.rs` names any response still without one.
fn describe_error_responses(document: &mut Document) {
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let utoipa::openapi::RefOr::T(response) = response else { continue };
                if response.description.is_empty()
                    && let Some(description) = error_description(status)
                {
                    response.description = description.to_owned();
                }
            }
        }
    }
}

fn error_description(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "Invalid request: a field, parameter or body is malformed (the message names it)",
        "401" => "No access token, or an invalid or expired one",
        "403" => "Signed in, but not allowed to do this",
        "404" => "No such resource (or not visible to this user)",
        "409" => "Conflicts with the current state (taken name, full session, concurrent change)",
        "413" => "Request body larger than --max-body-bytes",
        "415" => "Body is not `application/json`",
        "429" => "Rate limit exceeded: retry after `Retry-After` seconds",
        "500" => "Internal error (logged by the server; no details in the answer)",
        "503" => "Not ready, shutting down, or a backend is unavailable",
        _ => return None,
    })
}
