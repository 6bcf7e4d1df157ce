//! The request timeout: from a request's parsed head to its response, reading the body
//! included. A body that trickles in (a request that announces a megabyte and sends a byte a
//! second) is the client's fault: 408, and the connection closes, since the rest of that body
//! would otherwise have to be read. A handler that is too slow once the body is in (a backend
//! that hangs) is ours: 503, connection kept.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use super::ApiError;
use crate::telemetry::{HttpTimeout, Metrics};

pub async fn limit(timeout: Duration, request: Request, next: Next) -> Response {
    let received = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        if http_body::Body::is_end_stream(&body) {
            received.store(true, Ordering::Relaxed);
        }
        Body::new(Tracked { inner: body, received: received.clone() })
    });
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if !received.load(Ordering::Relaxed) => {
            Metrics::get().http_timeout(HttpTimeout::Request);
            let message = format!("the request body did not arrive within {} ms", timeout.as_millis());
            let mut response = ApiError::with_status(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
                .into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Err(_) => {
            Metrics::get().http_timeout(HttpTimeout::Request);
            let message = format!("the server did not answer within {} ms; try again", timeout.as_millis());
            ApiError::with_status(StatusCode::SERVICE_UNAVAILABLE, "timeout", message).into_response()
        }
    }
}

/// A request body that says when it has been read to its end.
struct Tracked {
    inner: Body,
    received: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.received.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::{get, post};
    use futures_util::StreamExt as _;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(60)).await }))
            .route("/echo", post(|body: String| async move { body }))
            .route("/quick", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(|r, n| super::limit(Duration::from_millis(100), r, n)))
    }

    async fn code(response: axum::response::Response) -> (u16, String) {
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 10_000).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        (status, json["error"]["code"].as_str().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn a_slow_handler_with_its_body_in_gets_503() {
        let response = app().oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(code(response).await, (503, "timeout".to_owned()));
    }

    #[tokio::test]
    async fn a_body_that_never_ends_gets_408_and_closes() {
        // A body stream that yields one chunk and then nothing, as a stalled client would.
        let stalled = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from("{"))])
            .chain(futures_util::stream::pending());
        let request = Request::post("/echo").body(Body::from_stream(stalled)).unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.headers()["connection"], "close");
        assert_eq!(code(response).await, (408, "request_timeout".to_owned()));
    }

    #[tokio::test]
    async fn a_quick_request_passes_untouched() {
        let response = app().oneshot(Request::get("/quick").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 200);
        let request = Request::post("/echo").body(Body::from("done")).unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(axum::body::to_bytes(response.into_body(), 100).await.unwrap(), "done");
    }
}
