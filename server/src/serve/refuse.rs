//! Turning away a connection over a cap, cheaply and clearly: one canned `503` JSON answer
//! written without reading the request, then the socket is closed.
//!
//! Closing a socket whose request is still unread makes the kernel send a reset, and a reset can
//! destroy the answer before the client reads it. So the refused socket first half-closes
//! (the client sees the answer, then end of stream) and drains what the client sent for a moment
//! before closing. That lingering is bounded in time, bytes, and number of sockets at once, so a
//! flood of refused connections cannot hold descriptors for long.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::telemetry::{HttpRefusal, Metrics};

/// Longest a refused socket stays open to drain the client's request.
const LINGER: Duration = Duration::from_millis(500);
/// Most bytes drained from a refused socket.
const LINGER_BYTES: usize = 64 * 1024;
/// Refused sockets lingering at once; past that, refusals close at once.
const MAX_LINGERING: usize = 256;

pub struct Refuser {
    lingering: Arc<Semaphore>,
    /// Refusals not yet logged: a flood is logged once a second, not once a connection (the
    /// metric counts each).
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl Refuser {
    pub fn new() -> Self {
        Self { lingering: Arc::new(Semaphore::new(MAX_LINGERING)), unlogged: 0, last_logged: None }
    }

    pub fn refuse(&mut self, tcp: TcpStream, why: HttpRefusal) {
        Metrics::get().http_refused(why);
        self.unlogged += 1;
        if self.last_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            let peer = tcp.peer_addr().ok().map(tracing::field::display);
            tracing::info!(
                peer,
                reason = why.label(),
                refused = self.unlogged,
                "HTTP connection refused: over a cap"
            );
            (self.unlogged, self.last_logged) = (0, Some(Instant::now()));
        }
        // A fresh socket's send buffer always has room for this: one non-blocking write.
        let _ = tcp.try_write(answer(why));
        let _ = socket2::SockRef::from(&tcp).shutdown(std::net::Shutdown::Write);
        let Ok(permit) = self.lingering.clone().try_acquire_owned() else { return };
        tokio::spawn(async move {
            let mut tcp = tcp;
            let mut scratch = [0u8; 4096];
            let mut drained = 0;
            let _ = tokio::time::timeout(LINGER, async {
                while drained < LINGER_BYTES {
                    match tcp.read(&mut scratch).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => drained += n,
                    }
                }
            })
            .await;
            drop(permit);
        });
    }
}

fn answer(why: HttpRefusal) -> &'static [u8] {
    static TOTAL: LazyLock<Vec<u8>> =
        LazyLock::new(|| canned("the server has too many open connections; try again shortly"));
    static PER_IP: LazyLock<Vec<u8>> =
        LazyLock::new(|| canned("too many open connections from your address; close some and try again"));
    match why {
        HttpRefusal::Total => &TOTAL,
        HttpRefusal::PerIp => &PER_IP,
    }
}

fn canned(message: &str) -> Vec<u8> {
    let body =
        serde_json::json!({ "error": { "code": "too_many_connections", "message": message } }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\nx-content-type-options: nosniff\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
