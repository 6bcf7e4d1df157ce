//! Accepting connections as shared [`Socket`]s, and handing each request a handle to its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::TcpListener;

use super::{Socket, SocketIo};

/// A TCP listener for `axum::serve` whose connections are [`Socket`]s.
pub struct SocketListener(pub TcpListener);

impl Listener for SocketListener {
    type Io = SocketIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    // Small fan-out frames must not wait for ACKs behind Nagle's algorithm.
                    let _ = tcp.set_nodelay(true);
                    return (SocketIo(Socket::new(tcp)), addr);
                }
                Err(error) => {
                    // Out of descriptors or a connection reset before accept: back off briefly
                    // instead of spinning, as axum's own listener does.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The socket a request arrived on, as `ConnectInfo`: the WebSocket gateway gives it to the room.
#[derive(Clone)]
pub struct SocketHandle(pub Arc<Socket>);

impl Connected<IncomingStream<'_, SocketListener>> for SocketHandle {
    fn connect_info(stream: IncomingStream<'_, SocketListener>) -> Self {
        Self(stream.io().0.clone())
    }
}
