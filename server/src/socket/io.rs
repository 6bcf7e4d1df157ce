//! The socket as hyper sees it: an ordinary async byte stream whose writes go through the same
//! queue as the fan-out's.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Socket;
use super::queue::Outgoing;
use super::wire::FrameHeader;

/// The I/O type of every accepted connection (see [`super::SocketListener`]).
pub struct SocketIo(pub(super) Arc<Socket>);

impl SocketIo {
    pub fn new(socket: Arc<Socket>) -> Self {
        Self(socket)
    }
}

impl Socket {
    /// Write the queue out until it is empty, waiting for writability as needed.
    pub(super) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut out = self.out.lock();
                out.held = false;
                if out.is_broken() {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                match out.write_queued(&self.tcp) {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            // The failed write cleared the cached readiness, so this registers our waker unless
            // the socket became writable in between (then we simply try again).
            ready!(self.tcp.poll_write_ready(cx))?;
        }
    }

    /// Read what the client sent into `buf`, without waiting. A short read emptied the kernel's
    /// buffer (TCP hands over all it holds, up to `buf`'s length), so the socket is marked not
    /// ready at once, as tokio's own `poll_read` does: the next wait goes straight to epoll
    /// instead of through a read that would find nothing (one syscall per received batch).
    /// tokio clears the mark only if no readiness event arrived since, so no wake-up is lost.
    pub(super) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        let mut read = 0;
        let result = self.tcp.try_io(tokio::io::Interest::READABLE, || {
            read = (&*socket2::SockRef::from(&self.tcp)).read(buf)?;
            if read > 0 && read < buf.len() { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(()) }
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && read > 0 => Ok(read),
            other => other.map(|()| read),
        }
    }

    /// Once nothing is queued, `write` (which writes now and queues what the socket does not
    /// take; `false` when it queued): how hyper's bytes and the connection's own frames go out,
    /// never overtaking a fan-out frame.
    pub(super) fn poll_write_own(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&mut Outgoing, &TcpStream) -> io::Result<bool>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        let mut out = self.out.lock();
        if !out.is_empty() {
            // A fan-out queued a frame since the drain: go round again rather than overtake it.
            drop(out);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if !write(&mut out, &self.tcp)? {
            drop(out);
            self.backlog.notify_one();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for SocketIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.tcp.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was cleared: the next poll_read_ready registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SocketIo {
    /// Waits while frames are queued (backpressure on hyper), then takes all of `buf` at once,
    /// queueing what the socket does not take: accepting only part of a buffer would let a
    /// fan-out frame land in its middle.
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        {
            let mut out = self.0.out.lock();
            if out.held {
                out.push(FrameHeader::NONE, bytes::Bytes::copy_from_slice(buf));
                return Poll::Ready(Ok(buf.len()));
            }
        }
        ready!(self.0.poll_write_own(cx, |out, tcp| out.write_bytes_or_queue(tcp, buf)))?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.0.out.lock().held {
            // The held answer is the connection's to write.
            return Poll::Ready(Ok(()));
        }
        self.0.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.0.poll_drain(cx))?;
        // No `&mut TcpStream` here (the socket is shared), so half-close through the descriptor.
        let result = socket2::SockRef::from(&self.0.tcp).shutdown(std::net::Shutdown::Write);
        Poll::Ready(match result {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}
