//! The accept loop and the HTTP/1.1 connections it serves, in place of `axum::serve`, which
//! exposes no hyper settings: header-read timeout, write timeout, caps on plain HTTP
//! connections (total and per IP), upgrades to WebSockets, graceful shutdown.
//!
//! What each timeout covers (hyper 1.x, read in its source):
//! - hyper's `header_read_timeout` starts when hyper starts waiting for a request head (at
//!   accept, and again after each response on a kept-alive connection) and stops when the head
//!   is parsed. So one timer closes a connection that sends nothing, one that sends half a head,
//!   and a kept-alive connection idle between requests. It does not run while a body is read or
//!   a response written.
//! - The request timeout (a middleware, `crate::http::deadline`) bounds the rest of a request:
//!   its body (a trickled body gets 408) and its handler (503).
//! - The write timeout ([`io::GuardedIo`]) bounds a response the client does not read.
//!
//! Every connection is served over HTTP/1.1 only: rooms write WebSocket frames straight into the
//! TCP socket, which is right only when the WebSocket owns the whole connection.

mod io;
pub mod limits;

pub use io::code_for_status;
mod refuse;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cidr::Cidr;
use crate::socket::{Socket, SocketHandle, SocketIo, SocketListener};
use crate::telemetry::{HttpTimeout, Metrics};
use limits::{ConnectionLimits, HttpSlot};

/// At shutdown, how long a connection with no request left in flight may still take to flush its
/// last answer and close.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

/// How connections are served; see `Config` for each.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub header_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    /// After shutdown starts, how long a connection may take to finish its request.
    pub shutdown_grace: Duration,
    /// 0 = unlimited.
    pub max_connections: usize,
    /// 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// Peers the per-IP cap does not apply to (trusted reverse proxies).
    pub per_ip_exempt: Vec<Cidr>,
}

/// Serve `app` on `listener` until `shutdown` is cancelled; then stop accepting, let every plain
/// HTTP connection finish its request (within the grace), and return. Upgraded connections are
/// not waited for here: they belong to the WebSocket gateway, which closes them on `shutdown`.
pub async fn serve(
    listener: SocketListener,
    app: Router,
    settings: ServeSettings,
    shutdown: CancellationToken,
) {
    let limits = ConnectionLimits::new(
        settings.max_connections,
        settings.max_connections_per_ip,
        settings.per_ip_exempt.clone(),
    );
    let mut refuser = refuse::Refuser::new();
    let connections = TaskTracker::new();
    let settings = Arc::new(settings);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match limits.admit(peer.ip()) {
            Ok(slot) => {
                let task = connection(tcp, peer, app.clone(), settings.clone(), slot, shutdown.clone());
                connections.spawn(task);
            }
            Err(why) => refuser.refuse(tcp, why),
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// What hyper read past an upgrade request (a client may send its first frames along with it),
/// taken from the upgraded connection, which is then let go: the WebSocket reads and writes the
/// shared [`Socket`] it was handed with the request. `None` if the upgrade is not one of ours.
pub fn read_ahead(upgraded: hyper::upgrade::Upgraded) -> Option<Bytes> {
    upgraded.downcast::<TokioIo<io::GuardedIo>>().ok().map(|parts| parts.read_buf)
}

/// Serve one connection until it closes or upgrades (then the WebSocket task owns the socket).
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    settings: Arc<ServeSettings>,
    slot: HttpSlot,
    shutdown: CancellationToken,
) {
    let socket = Socket::new(tcp);
    let (io, state) = io::GuardedIo::new(SocketIo::new(socket.clone()), settings.write_timeout);
    let handle = SocketHandle { socket, peer: peer.ip() };
    let service = ConnService { app, info: ConnectInfo(handle), state: state.clone() };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(settings.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            // hyper closes the connection now if it is between requests, else after the response
            // it is writing. A connection with no request in flight is dropped at once even if
            // hyper would still wait for a head (silence, or a slow client's half head): those
            // must not hold up the shutdown, which persists rooms only once HTTP is done.
            conn.as_mut().graceful_shutdown();
            let settled = async {
                state.settled().await;
                // The last answer's body is written, maybe not yet flushed: give hyper a moment
                // to flush and close before the connection is dropped.
                let _ = tokio::time::timeout(FLUSH_GRACE, conn.as_mut()).await;
            };
            tokio::select! {
                () = settled => Ok(()),
                () = tokio::time::sleep(settings.shutdown_grace) => Ok(()),
            }
        }
    };
    state.handed_off.store(true, Ordering::Relaxed);
    if let Err(error) = result {
        let timeout = if error.is_timeout() {
            Some(HttpTimeout::Header)
        } else if state.write_timed_out.load(Ordering::Relaxed) {
            Some(HttpTimeout::Write)
        } else {
            None
        };
        match timeout {
            Some(kind) => {
                Metrics::get().http_timeout(kind);
                tracing::debug!(%peer, timeout = kind.label(), "HTTP connection timed out");
            }
            None => tracing::debug!(%peer, %error, "HTTP connection ended with an error"),
        }
    }
    // Closed, or upgraded: either way it no longer counts as a plain HTTP connection.
    drop(slot);
}

/// The router as hyper calls it, with the connection's socket in every request (as
/// `ConnectInfo<SocketHandle>`, which the WebSocket gateway and the rate limits read).
/// Each request is counted as in flight until its response body is written (see
/// [`io::IoState::request`]), so a shutdown waits for answers, not for silent clients.
struct ConnService {
    app: Router,
    info: ConnectInfo<SocketHandle>,
    state: Arc<io::IoState>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let in_flight = self.state.request();
        request.extensions_mut().insert(self.info.clone());
        let response = tower_service::Service::call(&mut self.app.clone(), request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Body::new(Answering { body, _in_flight: in_flight })))
        })
    }
}

/// A response body that keeps its request counted as in flight until it is written or dropped.
struct Answering {
    body: Body,
    _in_flight: io::InFlight,
}

impl http_body::Body for Answering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
