//! The I/O hyper drives for one plain HTTP connection: the shared [`SocketIo`], plus the two
//! things hyper cannot be configured to do.
//!
//! - A write timeout: hyper's header-read timer does not run while a response is being written,
//!   so a client that requests something and never reads would hold the connection forever. The
//!   timer is armed only while a write waits, so a healthy connection never touches the timer
//!   wheel.
//! - JSON for hyper's own error answers: a request hyper cannot parse gets an automatic,
//!   bodyless `400` (`414`, `431`) written by hyper itself, never seen by the router. Every error
//!   the server writes is `{"error":{"code","message"}}`, so that head is rewritten on its way out.
//!
//! Both stop once the connection is handed to a WebSocket (`handed_off`): that path has its own
//! write deadline, and its bytes are frames, not HTTP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

use crate::socket::SocketIo;

/// What the connection task and the I/O share.
#[derive(Default)]
pub struct IoState {
    /// Set once hyper no longer drives the socket (closed, or upgraded to a WebSocket).
    pub handed_off: AtomicBool,
    /// Set when a write waited longer than the write timeout.
    pub write_timed_out: AtomicBool,
    write_timeout: Option<Duration>,
    /// Requests being handled or answered (until their response body is written).
    in_flight: AtomicUsize,
    /// Told when `in_flight` drops to zero.
    settled: Notify,
}

impl IoState {
    /// Count a request until the returned guard (moved into its response body) is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Completes once no request is being handled or answered.
    pub async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One request in flight on this connection.
pub struct InFlight(Arc<IoState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

/// Kept small: after an upgrade it lives as long as the WebSocket, in every idle connection.
pub struct GuardedIo {
    inner: SocketIo,
    /// Armed while a write waits for a client that does not read.
    waiting: Option<Pin<Box<Sleep>>>,
    state: Arc<IoState>,
}

impl GuardedIo {
    pub fn new(inner: SocketIo, write_timeout: Option<Duration>) -> (Self, Arc<IoState>) {
        let state = Arc::new(IoState { write_timeout, ..IoState::default() });
        (Self { inner, waiting: None, state: state.clone() }, state)
    }

    fn http(&self) -> bool {
        !self.state.handed_off.load(Ordering::Relaxed)
    }

    /// Pass `poll` through, timing how long a write has been waiting.
    fn deadline<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(limit) = self.state.write_timeout.filter(|_| self.http()) else {
                    self.waiting = None;
                    return Poll::Pending;
                };
                let timer = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.waiting = None;
                    self.state.write_timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read the response in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = match this.http().then(|| automatic_error_as_json(buf)).flatten() {
            // `SocketIo` takes a whole buffer or nothing, so the longer rewrite is all written
            // when it says so, and hyper is told its own bytes were.
            Some(json) => match Pin::new(&mut this.inner).poll_write(cx, &json) {
                Poll::Ready(Ok(n)) if n == json.len() => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Ok(_)) => Poll::Ready(Err(io::Error::other("short write of an error answer"))),
                other => other,
            },
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        };
        this.deadline(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.deadline(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.deadline(cx, poll)
    }
}

/// hyper's answer to a request it could not parse is a head alone: an error status,
/// `content-length: 0`, no content type. Our own error responses always carry a JSON body, so a
/// buffer that is exactly such a head comes from hyper: give it the JSON body.
fn automatic_error_as_json(buf: &[u8]) -> Option<Vec<u8>> {
    const EMPTY: &[u8] = b"\r\ncontent-length: 0\r\n";
    if !buf.starts_with(b"HTTP/1.") || !buf.ends_with(b"\r\n\r\n") || buf.len() > 512 {
        return None;
    }
    let status = buf.get(9..12).and_then(|s| std::str::from_utf8(s).ok())?.parse::<u16>().ok()?;
    let status = StatusCode::from_u16(status).ok().filter(|s| s.is_client_error() || s.is_server_error())?;
    let at = buf.windows(EMPTY.len()).position(|w| w == EMPTY)?;
    if buf.windows(13).any(|w| w.eq_ignore_ascii_case(b"content-type:")) {
        return None;
    }
    let (code, message) = code_for_status(status);
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut out = Vec::with_capacity(buf.len() + body.len() + 48);
    out.extend_from_slice(&buf[..at + 2]);
    out.extend_from_slice(
        format!("content-type: application/json\r\ncontent-length: {}", body.len()).as_bytes(),
    );
    out.extend_from_slice(&buf[at + EMPTY.len() - 2..]);
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// The code and a default message for an error status, when nothing more specific is known.
pub fn code_for_status(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "the request is malformed"),
        401 => ("unauthorized", "sign in first"),
        403 => ("forbidden", "not allowed"),
        404 => ("not_found", "not found"),
        405 => ("method_not_allowed", "this route does not accept that method"),
        408 => ("request_timeout", "the request did not arrive in time"),
        409 => ("conflict", "conflict with the current state"),
        411 => ("length_required", "send a Content-Length"),
        413 => ("payload_too_large", "the request body is over the size limit"),
        414 => ("uri_too_long", "the request URI is too long"),
        415 => ("unsupported_media_type", "send the body as JSON with Content-Type: application/json"),
        426 => ("upgrade_required", "this route needs a WebSocket upgrade over HTTP/1.1"),
        429 => ("rate_limited", "too many requests, slow down"),
        431 => ("headers_too_large", "the request headers are too large"),
        501 => ("not_implemented", "not implemented"),
        503 => ("unavailable", "temporarily unavailable; try again"),
        505 => ("http_version_not_supported", "use HTTP/1.1"),
        other if (400..500).contains(&other) => ("bad_request", "the request was refused"),
        _ => ("internal", "internal server error"),
    }
}

#[cfg(test)]
mod tests {
    use super::automatic_error_as_json;

    #[test]
    fn hyper_s_bodyless_error_head_gets_the_json_body() {
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(automatic_error_as_json(head).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{out}");
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{out}");
        assert!(head.ends_with("connection: close\r\ndate: x"), "{out}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "bad_request");
    }

    #[test]
    fn everything_else_passes_unchanged() {
        for buf in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 42\r\n\r\n",
            b"\x82\x05hello",
        ] {
            assert!(automatic_error_as_json(buf).is_none(), "{}", String::from_utf8_lossy(buf));
        }
    }
}
