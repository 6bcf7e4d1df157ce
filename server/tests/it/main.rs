//! The server's integration tests in one binary (one link instead of one per file): a real server
//! on port 0, real sockets, real clients. Tests that need Redis or the MongoDB-wire server are in
//! `tests/services/`.
//!
//! - `ws_sync`, `ws_bad_input`, `ws_permissions`: the WebSocket protocol, bad input, accounts.
//! - `api_auth`, `api_sessions`, `ops`: the HTTP API and the operations endpoints.
//! - `persistence`, `relay`: restart and eviction in process; rooms across in-process nodes.
//! - `binary`: the `codecrafter` process as users run it (signals, flags).
//! - `js_clients`: the real npm `y-websocket` client (scripts in `tests/js/`).
//! - `hostile`: the hostile-input suite, one module per surface.
//! - `app_messages`, `room_output`: app messages from clients, and into rooms on every node.
//! - `saved`: the document durability acknowledgement, and what it promises across SIGKILL.
//! - `chat`: chat messages, their history (socket and HTTP), dedupe and limits.
//! - `run`: run refusals, limits at their edges, the document route, the replay to a joiner mid-run.
//! - `layering`: no import cycle between the server's top-level modules.
//! - `web`: the embedded browser client: the page, its CSP nonce, its assets (caching, gzip).

#[path = "../support/mod.rs"]
mod support;

mod api_auth;
mod api_sessions;
mod app_messages;
mod binary;
mod chat;
mod hostile;
mod js_clients;
mod layering;
mod ops;
mod persistence;
mod relay;
mod room_output;
mod run;
mod saved;
mod web;
mod ws_bad_input;
mod ws_framing;
mod ws_permissions;
mod ws_sync;
