//! The HTTP surface: the JSON API (accounts, sessions, collaborators, chat history, execution), the WebSocket gateway,
//! the operations endpoints, the OpenAPI document generated from them, and the browser client
//! embedded in the binary. Every error answers `{"error":{"code","message"}}`.

mod access;
mod auth;
mod collaborators;
mod deadline;
mod docs;
mod document;
mod error;
mod execute;
pub mod extract;
pub mod json_errors;
mod messages;
mod ops;
pub mod proxy;
mod rate_limit;
mod realtime;
mod security;
mod sessions;
mod validate;
mod views;
mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};
pub use proxy::client_ip;

use crate::state::AppState;

fn api_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(auth::router())
        .merge(sessions::router())
        .merge(collaborators::router())
        .merge(messages::router())
        .merge(execute::router())
        .merge(document::router())
}

pub fn router(state: Arc<AppState>) -> Router {
    // The routes and the OpenAPI document (served at `/api-docs`) come from the same annotations.
    let (api, mut document) = api_routes().split_for_parts();
    let (ops, ops_document) = ops::router().split_for_parts();
    document.merge(ops_document);
    let api = api
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit::limit))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let config = state.config.clone();
    // Headers and CORS are for HTTP answers; the WebSocket route stays outside them (CORS does
    // not apply to WebSockets, and every connect would pay for their allocations).
    let http = Router::new()
        .merge(ops)
        .merge(api)
        .merge(docs::router(document))
        .merge(web::router())
        .fallback(security::not_found)
        .method_not_allowed_fallback(security::method_not_allowed)
        .layer(security::cors(&state.config))
        .layer(middleware::from_fn(move |request, next| security::headers(config.clone(), request, next)));
    // Around every route, the WebSocket upgrade included (outermost last): the request timeout,
    // the JSON safety net under any error that is not already JSON, the access log.
    let request_timeout = state.config.http_request_timeout();
    let mut app = Router::new().route("/ws/{*room}", get(realtime::upgrade)).merge(http).with_state(state);
    if let Some(timeout) = request_timeout {
        app = app.layer(middleware::from_fn(move |request, next| deadline::limit(timeout, request, next)));
    }
    app.layer(middleware::from_fn(json_errors::ensure)).layer(middleware::from_fn(access::log))
}
