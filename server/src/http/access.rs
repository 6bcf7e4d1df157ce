//! The access log and the request id: one `info` line per HTTP request (target `access`, so
//! `RUST_LOG=access=off` silences it) with method, matched route template (never the raw path:
//! ids stay out of the log and the line stays groupable), status, latency and request id.
//!
//! The request id is the client's `x-request-id` when it is sane (1 to 64 visible ASCII
//! characters: a proxy's id joins our log to its own), else a fresh random one. It is echoed in
//! the response and is a field of the span every log line of the request is written in.
//! A WebSocket upgrade that succeeds (101) is not logged here: its connection logs it, with the
//! same request id and peer (see `crate::ws` for its events).

use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::socket::SocketHandle;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id honoured.
const MAX_REQUEST_ID: usize = 64;

pub async fn log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|id| is_sane(id.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh_id);
    request.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let method = request.method().clone();
    // Unmatched paths are logged as such: the raw path is whatever a scanner sent.
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let peer = request.extensions().get::<ConnectInfo<SocketHandle>>().map(|info| info.0.peer);
    let id_text = id.to_str().unwrap_or_default().to_owned();
    let span = tracing::info_span!("request", request_id = %id_text);
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    if response.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        // A WebSocket: its connection logs it once, admitted (`websocket connected`) or refused
        // (`websocket refused`), with this request id and peer. A second line per connect would
        // be a tenth of a connect's cost.
        return response;
    }
    tracing::info!(
        target: "access",
        method = %method,
        route = route.as_deref().unwrap_or("(unmatched)"),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %id_text,
        peer = peer.map(tracing::field::display),
        "request"
    );
    response
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

fn fresh_id() -> HeaderValue {
    HeaderValue::from_str(&format!("{:032x}", rand::random::<u128>())).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn only_short_visible_ascii_ids_are_honoured() {
        assert!(is_sane(b"abc-123_XYZ.42"));
        assert!(is_sane(&[b'a'; 64]));
        assert!(!is_sane(&[b'a'; 65]), "too long");
        assert!(!is_sane(b""), "empty");
        assert!(!is_sane(b"has space"), "space");
        assert!(!is_sane(b"tab\there"), "control");
        assert!(!is_sane("caf\u{e9}".as_bytes()), "not ASCII");
    }
}
