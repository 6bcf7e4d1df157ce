//! The WebSocket connection's own reads and writes, once hyper has handed the socket over.
//!
//! Reads go through one buffer per worker thread, not one per socket: a socket waits for
//! readability holding no buffer at all, and only the bytes of a frame cut off by the end of a
//! read stay with it (in its [`Decoder`]). The connection's own frames (replies, pings, pongs, its
//! close) are written through the same queue as the fan-out's, behind whatever waits there.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll, ready};

use bytes::Bytes;

use super::Socket;
use super::inbound::{Decoder, FrameError, Inbound};
use super::wire::FrameHeader;

/// Bytes taken from the kernel per read: a few typical updates, or a large frame's next piece.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Every read lands here first; the decoder copies what it keeps into buffers of its own.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// How a client's stream ended.
#[derive(Debug)]
pub enum ReadEnd {
    /// The client closed the TCP connection, or it broke.
    Gone,
    /// The client's bytes are not WebSocket frames this server takes.
    Broken(FrameError),
}

/// What one read brought: the messages it completed, in order (none while a frame is still
/// arriving), then how the stream ended, if it did.
#[derive(Debug, Default)]
pub struct Received {
    pub messages: Vec<Inbound>,
    pub end: Option<ReadEnd>,
}

impl Received {
    /// Decode bytes read before the socket was handed over (hyper may read past the upgrade
    /// request).
    pub fn decode_early(decoder: &mut Decoder, bytes: &[u8], max_message: usize) -> Self {
        let mut received = Self::default();
        if let Err(error) = decoder.decode(bytes, max_message, &mut received.messages) {
            received.end = Some(ReadEnd::Broken(error));
        }
        received
    }
}

impl Socket {
    /// Wait for the client's next bytes and decode them with `decoder`: returns once they
    /// complete a message or end the stream. Cancel-safe: nothing read is held by the future.
    pub async fn read_frames(&self, decoder: &mut Decoder, max_message: usize) -> Received {
        poll_fn(|cx| self.poll_read_frames(cx, decoder, max_message)).await
    }

    fn poll_read_frames(
        &self,
        cx: &mut Context<'_>,
        decoder: &mut Decoder,
        max_message: usize,
    ) -> Poll<Received> {
        let completed = |bytes: &[u8]| {
            let mut received = Received::default();
            if let Err(error) = decoder.decode(bytes, max_message, &mut received.messages) {
                received.end = Some(ReadEnd::Broken(error));
            }
            (!received.messages.is_empty() || received.end.is_some()).then_some(received)
        };
        self.poll_read_with(cx, completed)
            .map(|read| read.unwrap_or(Received { messages: Vec::new(), end: Some(ReadEnd::Gone) }))
    }

    /// Read and drop whatever the client sends until it hangs up: for a stream that can no
    /// longer be decoded, while our close frame reaches the client. The caller bounds the wait.
    pub async fn discard_until_closed(&self) {
        poll_fn(|cx| self.poll_read_with(cx, |_| None::<()>)).await;
    }

    /// Read into the thread's buffer, handing each read's bytes to `take`, until it makes
    /// something of them (`Some`) or the stream ends (`None`: closed by the client, or broken).
    fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut take: impl FnMut(&[u8]) -> Option<R>,
    ) -> Poll<Option<R>> {
        loop {
            if ready!(self.tcp.poll_read_ready(cx)).is_err() {
                return Poll::Ready(None);
            }
            let read = SCRATCH.with_borrow_mut(|scratch| {
                let n = self.try_read(scratch)?;
                Ok::<_, io::Error>((n > 0).then(|| take(&scratch[..n])))
            });
            match read {
                Ok(None) => return Poll::Ready(None),
                Ok(Some(Some(made))) => return Poll::Ready(Some(made)),
                Ok(Some(None)) => {}
                // Readiness was cleared: the next poll_read_ready registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(None),
            }
        }
    }

    /// Write one of the connection's own frames: after whatever is queued, whole (the rest
    /// queued if the socket does not take it all), and never refused for the queue's length as a
    /// fan-out frame is. Waiting behind the queue is the backpressure on a client that asks for
    /// replies and does not read them; the caller bounds the wait.
    pub async fn send_own(&self, header: FrameHeader, body: &Bytes) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_own(cx, |out, tcp| out.write_or_queue(tcp, header, body))).await
    }

    /// Write out everything queued.
    pub async fn flush(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_drain(cx)).await
    }
}
