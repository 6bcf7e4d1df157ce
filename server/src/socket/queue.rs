//! What waits to be written to one socket, and the non-blocking writes that move it out.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::net::TcpStream;

use super::wire::FrameHeader;

/// Most chunks handed to one `writev`: far below the kernel's IOV_MAX, and enough to empty a
/// backed-up queue of small frames in a few calls.
const MAX_IOVECS: usize = 64;

/// A frame (or already-framed bytes, with an empty header) waiting for the socket.
struct Chunk {
    header: FrameHeader,
    body: Bytes,
    /// Bytes of `header` then `body` already written.
    written: usize,
}

impl Chunk {
    fn len(&self) -> usize {
        self.header.as_slice().len() + self.body.len()
    }

    /// The unwritten rest, as up to two slices.
    fn remaining(&self) -> [&[u8]; 2] {
        let header = self.header.as_slice();
        if self.written < header.len() {
            [&header[self.written..], &self.body]
        } else {
            [&[], &self.body[self.written - header.len()..]]
        }
    }
}

#[derive(Default)]
pub(super) struct Outgoing {
    queue: VecDeque<Chunk>,
    /// No more fan-out frames are accepted, and why.
    cut: Option<super::Cut>,
    /// A write failed: the peer is gone, nothing more can be written.
    broken: bool,
    /// hyper's writes are queued, not written, until the connection's first drain (see
    /// [`super::Socket::hold_http_answer`]).
    pub held: bool,
}

impl Outgoing {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Chunks the queue's buffer holds room for (tests: an idle socket keeps none).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    pub fn closed(&self) -> bool {
        self.cut.is_some() || self.broken
    }

    pub fn cut_reason(&self) -> Option<super::Cut> {
        self.cut
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The first reason sticks: a client already cut as too slow stays so.
    pub fn cut(&mut self, why: super::Cut) {
        self.cut.get_or_insert(why);
    }

    pub fn push(&mut self, header: FrameHeader, body: Bytes) {
        self.queue.push_back(Chunk { header, body, written: 0 });
    }

    /// With nothing queued: write `header` + `body` now, queueing whatever the socket does not
    /// take. Returns whether all of it was written.
    pub fn write_or_queue(&mut self, tcp: &TcpStream, header: FrameHeader, body: &Bytes) -> io::Result<bool> {
        debug_assert!(self.queue.is_empty(), "writing past queued bytes would reorder the stream");
        let slices = [IoSlice::new(header.as_slice()), IoSlice::new(body)];
        let total = header.as_slice().len() + body.len();
        let written = match tcp.try_write_vectored(&slices) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(self.fail(e)),
        };
        if written == total {
            return Ok(true);
        }
        self.queue.push_back(Chunk { header, body: body.clone(), written });
        Ok(false)
    }

    /// With nothing queued: write several frames in one `writev` (a round of the fan-out that
    /// carries more than one frame for this client), queueing whatever the socket does not take.
    /// Returns whether all of it was written.
    pub fn write_frames_or_queue(
        &mut self,
        tcp: &TcpStream,
        frames: &[(&FrameHeader, &Bytes)],
    ) -> io::Result<bool> {
        debug_assert!(self.queue.is_empty(), "writing past queued bytes would reorder the stream");
        let now = &frames[..frames.len().min(MAX_IOVECS / 2)];
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut total = 0;
        for (i, (header, body)) in now.iter().enumerate() {
            slices[2 * i] = IoSlice::new(header.as_slice());
            slices[2 * i + 1] = IoSlice::new(body);
            total += header.as_slice().len() + body.len();
        }
        let mut written = match tcp.try_write_vectored(&slices[..2 * now.len()]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(self.fail(e)),
        };
        if written == total && now.len() == frames.len() {
            return Ok(true);
        }
        for (header, body) in frames {
            let len = header.as_slice().len() + body.len();
            if written >= len {
                written -= len;
                continue;
            }
            self.queue.push_back(Chunk { header: **header, body: (*body).clone(), written });
            written = 0;
        }
        Ok(false)
    }

    /// With nothing queued: write already-framed `bytes` now, queueing a copy of whatever the
    /// socket does not take. Returns whether all of it was written.
    pub fn write_bytes_or_queue(&mut self, tcp: &TcpStream, bytes: &[u8]) -> io::Result<bool> {
        debug_assert!(self.queue.is_empty(), "writing past queued bytes would reorder the stream");
        let written = match tcp.try_write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(self.fail(e)),
        };
        if written == bytes.len() {
            return Ok(true);
        }
        self.push(FrameHeader::NONE, Bytes::copy_from_slice(&bytes[written..]));
        Ok(false)
    }

    /// Write as much of the queue as the socket takes now. `Ok` once it is empty; `WouldBlock`
    /// when the socket is full (the caller waits for writability and calls again).
    pub fn write_queued(&mut self, tcp: &TcpStream) -> io::Result<()> {
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut used = 0;
            for part in self.queue.iter().flat_map(Chunk::remaining).filter(|part| !part.is_empty()) {
                if used == MAX_IOVECS {
                    break;
                }
                slices[used] = IoSlice::new(part);
                used += 1;
            }
            let written = match tcp.try_write_vectored(&slices[..used]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) => return Err(self.fail(e)),
            };
            self.consume(written);
        }
        // An idle socket keeps no queue buffer: most never need one again (a connection's first
        // send, the 101 with the greeting, goes through the queue), and a burst may have grown it
        // a lot. Queueing is the slow path; one allocation there costs little.
        self.queue = VecDeque::new();
        Ok(())
    }

    fn consume(&mut self, mut written: usize) {
        while let Some(front) = self.queue.front_mut() {
            let left = front.len() - front.written;
            if written < left {
                front.written += written;
                return;
            }
            written -= left;
            self.queue.pop_front();
        }
    }

    fn fail(&mut self, error: io::Error) -> io::Error {
        self.broken = true;
        self.queue = VecDeque::new();
        error
    }
}
