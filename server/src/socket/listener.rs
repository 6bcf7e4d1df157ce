//! Accepting TCP connections for the server's own connection loop (`crate::serve`), and handing
//! each request a handle to the shared [`Socket`] it arrived on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::Socket;

/// The server's listening socket.
pub struct SocketListener(pub TcpListener);

impl SocketListener {
    /// The next connection, with TCP_NODELAY set: small fan-out frames must not wait for ACKs
    /// behind Nagle's algorithm. Accept errors are retried, not returned.
    pub async fn accept(&self) -> (TcpStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    return (tcp, addr);
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

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The socket a request arrived on, as `ConnectInfo`: the WebSocket gateway gives it to the room.
#[derive(Clone)]
pub struct SocketHandle {
    pub socket: Arc<Socket>,
    /// The client's address as accept gave it (a proxy's, behind one). Kept here, for the HTTP
    /// connection's life only, rather than in the socket, which every idle WebSocket holds.
    pub peer: std::net::IpAddr,
}
