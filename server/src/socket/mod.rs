//! A client's TCP socket, shared by its HTTP/WebSocket stack and the rooms that fan frames out to it.
//!
//! hyper reads from it and writes its answers through [`SocketIo`]; once a request is upgraded to
//! a WebSocket, the connection reads the client's frames itself ([`frames`], decoded by
//! [`inbound`]) and writes its own (replies, pings, pongs, its close) through the same queue. A room's fan-out writes each update straight into the socket with one
//! non-blocking `writev` from the thread that applied it: no channel, no task wake-up, no copy,
//! and the frame header is built once for all receivers ([`wire::FrameHeader`]). That is the whole
//! cost of a delivery when the socket has room, which it has unless the client falls behind.
//!
//! When the kernel buffer is full, frames wait in a bounded queue that the connection's own task
//! drains once the socket is writable again (woken through [`Socket::backlog`]). A client whose
//! queue reaches its limit is cut: the room stops writing to it and the connection closes with
//! 1013, so no update is ever dropped silently.
//!
//! Invariant: every byte written to the socket goes through [`Outgoing`] under its lock, and a
//! frame is either written whole, or its unwritten rest is queued before anything else can be
//! written. Frames from different writers therefore never interleave.

pub mod frames;
pub mod inbound;
mod io;
pub mod listener;
mod queue;
pub mod wire;

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub use io::SocketIo;
pub use listener::{SocketHandle, SocketListener};
use queue::Outgoing;
use wire::FrameHeader;

/// Why a client was cut off its room's fan-out; its connection closes saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its queue was full: it fell too far behind (1013).
    SlowConsumer,
    /// Its room failed and is being reloaded (1011).
    RoomFailed,
}

/// Why a socket refused a fan-out frame. Either way the room forgets the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its queue was full: the client fell too far behind and is being closed with 1013.
    SlowConsumer,
    /// The socket is broken or already cut.
    Gone,
}

pub struct Socket {
    tcp: TcpStream,
    out: Mutex<Outgoing>,
    /// Told whenever frames are queued (the socket was full) or the client is cut, so the
    /// connection task drains or closes.
    backlog: Notify,
}

impl Socket {
    pub fn new(tcp: TcpStream) -> Arc<Self> {
        Arc::new(Self { tcp, out: Mutex::new(Outgoing::default()), backlog: Notify::new() })
    }

    /// Write one binary frame, `header` then `payload`, or queue what the socket cannot take now.
    /// At most `queue_limit` frames may wait: one more cuts the client.
    pub fn send_frame(
        &self,
        header: &FrameHeader,
        payload: &Bytes,
        queue_limit: usize,
    ) -> Result<(), Refused> {
        self.send(
            1,
            queue_limit,
            |out, tcp| out.write_or_queue(tcp, *header, payload),
            |out| out.push(*header, payload.clone()),
        )
    }

    /// Write several frames in one `writev`, or queue what the socket cannot take now, as
    /// [`Self::send_frame`] does for one. Queueing them must keep at most `queue_limit` frames
    /// waiting, or the client is cut.
    pub fn send_frames(&self, frames: &[(&FrameHeader, &Bytes)], queue_limit: usize) -> Result<(), Refused> {
        if let [(header, body)] = frames {
            return self.send_frame(header, body, queue_limit);
        }
        self.send(
            frames.len(),
            queue_limit,
            |out, tcp| out.write_frames_or_queue(tcp, frames),
            |out| frames.iter().for_each(|(header, body)| out.push(**header, (*body).clone())),
        )
    }

    /// `write` the frames now when nothing waits (it queues what the socket does not take), else
    /// `queue` all `count` of them behind what waits, unless that passes `queue_limit`.
    fn send(
        &self,
        count: usize,
        queue_limit: usize,
        write: impl FnOnce(&mut Outgoing, &TcpStream) -> std::io::Result<bool>,
        queue: impl FnOnce(&mut Outgoing),
    ) -> Result<(), Refused> {
        let mut out = self.out.lock();
        if out.closed() {
            return Err(Refused::Gone);
        }
        if out.is_empty() {
            return match write(&mut out, &self.tcp) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    drop(out);
                    self.backlog.notify_one();
                    Ok(())
                }
                Err(_) => Err(Refused::Gone),
            };
        }
        if out.len() + count > queue_limit {
            out.cut(Cut::SlowConsumer);
            drop(out);
            self.backlog.notify_one();
            return Err(Refused::SlowConsumer);
        }
        queue(&mut out);
        Ok(())
    }

    /// Hold what hyper writes next (the 101 that completes a WebSocket upgrade) in the queue
    /// instead of writing it: the connection writes it with the room's greeting, one send where
    /// there were two (a send is most of a connect's cost). The connection must write it out
    /// ([`Self::flush`]) before it waits for anything from the client, which waits for the 101.
    pub fn hold_http_answer(&self) {
        self.out.lock().held = true;
    }

    /// Completes when frames wait for the socket to drain them, or the client was cut.
    pub fn backlog(&self) -> tokio::sync::futures::Notified<'_> {
        self.backlog.notified()
    }

    /// Stop taking fan-out frames and wake the connection, which closes saying `why`.
    pub fn cut(&self, why: Cut) {
        self.out.lock().cut(why);
        self.backlog.notify_one();
    }

    /// Why this client was cut off its room's fan-out, if it was.
    pub fn cut_reason(&self) -> Option<Cut> {
        self.out.lock().cut_reason()
    }
}

#[cfg(test)]
mod tests;
