//! A client's WebSocket frames, decoded (RFC 6455 §5) from whatever pieces TCP hands over. Pure
//! logic: bytes in, messages out.
//!
//! Why our own decoder rather than tungstenite's: an idle connection is most of what a server
//! holds, and a decoder between messages holds one null pointer. A frame that arrives whole is
//! copied once, unmasked on the way, into a buffer of exactly its length (so a payload the room
//! keeps for its fan-out pins nothing larger); only a frame cut off by the end of a read leaves
//! state behind, boxed, until its rest arrives.

use bytes::{Bytes, BytesMut};

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Binary(Bytes),
    /// A text message. Its content is dropped unread: the protocol is binary only.
    Text,
    Ping(Bytes),
    Pong,
    /// The client's close frame, with its status code if it sent one.
    Close(Option<u16>),
}

/// Why a client's bytes are not a WebSocket stream this server accepts. Either ends the
/// connection with the close code of [`FrameError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A message longer than the limit (`--max-message-bytes`).
    TooBig,
    /// Broken framing; says what broke.
    Protocol(&'static str),
    /// A close frame whose reason is not UTF-8.
    InvalidUtf8,
}

impl FrameError {
    pub fn close_code(self) -> u16 {
        match self {
            Self::TooBig => 1009,
            Self::Protocol(_) => 1002,
            Self::InvalidUtf8 => 1007,
        }
    }
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// The frames of one connection, decoded as bytes arrive.
#[derive(Default)]
pub struct Decoder {
    /// What a read left unfinished; `None` between frames, which is nearly always.
    pending: Option<Box<Pending>>,
}

#[derive(Default)]
struct Pending {
    /// The first bytes of a header whose rest has not arrived.
    head: [u8; MAX_HEADER],
    head_len: u8,
    /// The frame whose payload is arriving.
    frame: Option<Frame>,
    /// A fragmented data message so far: whether it is text, and its bytes.
    message: Option<(bool, BytesMut)>,
}

struct Frame {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    len: usize,
    /// The payload so far, unmasked.
    body: BytesMut,
}

impl Decoder {
    /// Decode `input`, appending each message it completes to `out`; what it leaves unfinished
    /// waits for the next call. No message may pass `max_message` bytes, however fragmented.
    /// After an error the stream is beyond repair: the connection closes, and the messages
    /// decoded before it stand.
    pub fn decode(
        &mut self,
        input: &[u8],
        max_message: usize,
        out: &mut Vec<Inbound>,
    ) -> Result<(), FrameError> {
        let mut state = self.pending.take().map(|boxed| *boxed).unwrap_or_default();
        state.decode(input, max_message, out)?;
        if !state.is_idle() {
            self.pending = Some(Box::new(state));
        }
        Ok(())
    }
}

impl Pending {
    fn is_idle(&self) -> bool {
        self.head_len == 0 && self.frame.is_none() && self.message.is_none()
    }

    fn decode(&mut self, mut input: &[u8], max: usize, out: &mut Vec<Inbound>) -> Result<(), FrameError> {
        loop {
            if self.frame.is_none() {
                let Some(frame) = self.take_header(&mut input, max)? else { return Ok(()) };
                self.frame = Some(frame);
            }
            let frame = self.frame.as_mut().expect("a frame is being read");
            let take = (frame.len - frame.body.len()).min(input.len());
            // Room for what arrived, not for what the header claims: a client that announces a
            // large frame and sends nothing must not make the server hold the frame's length.
            // A frame that arrived whole gets exactly its length.
            frame.body.reserve(take);
            unmask_onto(&mut frame.body, &input[..take], frame.mask);
            input = &input[take..];
            if frame.body.len() < frame.len {
                return Ok(());
            }
            let frame = self.frame.take().expect("a frame is being read");
            self.finish(frame, out)?;
        }
    }

    /// Gather a header from `input`; once it is whole, check it and start its frame. `None`
    /// when `input` ran out first.
    fn take_header(&mut self, input: &mut &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
        loop {
            let have = usize::from(self.head_len);
            let need = header_len(&self.head[..have]);
            if have == need {
                break;
            }
            if input.is_empty() {
                return Ok(None);
            }
            let n = (need - have).min(input.len());
            self.head[have..have + n].copy_from_slice(&input[..n]);
            self.head_len += n as u8;
            *input = &input[n..];
        }
        let head = &self.head[..usize::from(self.head_len)];
        self.head_len = 0;
        let (first, second) = (head[0], head[1]);
        let (fin, opcode) = (first & 0x80 != 0, first & 0x0F);
        if first & 0x70 != 0 {
            return Err(FrameError::Protocol("reserved bits set, and no extension was agreed"));
        }
        if second & 0x80 == 0 {
            return Err(FrameError::Protocol("a client's frames must be masked"));
        }
        let (len, mask_at) = match second & 0x7F {
            126 => (u64::from(u16::from_be_bytes([head[2], head[3]])), 4),
            127 => (u64::from_be_bytes(head[2..10].try_into().expect("8 bytes")), 10),
            short => (u64::from(short), 2),
        };
        if len >> 63 != 0 {
            return Err(FrameError::Protocol("a frame length with its top bit set"));
        }
        let mask = head[mask_at..mask_at + 4].try_into().expect("4 bytes");
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin {
                    return Err(FrameError::Protocol("a control frame may not be fragmented"));
                }
                if len > 125 {
                    return Err(FrameError::Protocol("a control frame carries at most 125 bytes"));
                }
            }
            OP_CONTINUATION if self.message.is_none() => {
                return Err(FrameError::Protocol("a continuation frame with no message to continue"));
            }
            OP_TEXT | OP_BINARY if self.message.is_some() => {
                return Err(FrameError::Protocol("a new message before the fragmented one ended"));
            }
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {
                let so_far = self.message.as_ref().map_or(0, |(_, bytes)| bytes.len());
                if len > (max - so_far.min(max)) as u64 {
                    return Err(FrameError::TooBig);
                }
            }
            _ => return Err(FrameError::Protocol("unknown opcode")),
        }
        let len = usize::try_from(len).map_err(|_| FrameError::TooBig)?;
        Ok(Some(Frame { opcode, fin, mask, len, body: BytesMut::new() }))
    }

    fn finish(&mut self, frame: Frame, out: &mut Vec<Inbound>) -> Result<(), FrameError> {
        let Frame { opcode, fin, body, .. } = frame;
        let message = match opcode {
            OP_CLOSE => Inbound::Close(close_code(&body)?),
            OP_PING => Inbound::Ping(body.freeze()),
            OP_PONG => Inbound::Pong,
            OP_CONTINUATION => {
                let (_, bytes) = self.message.as_mut().expect("checked with the header");
                bytes.extend_from_slice(&body);
                if !fin {
                    return Ok(());
                }
                let (text, bytes) = self.message.take().expect("checked with the header");
                data(text, bytes)
            }
            _ if !fin => {
                self.message = Some((opcode == OP_TEXT, body));
                return Ok(());
            }
            _ => data(opcode == OP_TEXT, body),
        };
        out.push(message);
        Ok(())
    }
}

fn data(text: bool, bytes: BytesMut) -> Inbound {
    if text { Inbound::Text } else { Inbound::Binary(bytes.freeze()) }
}

/// A close frame's status code, checked as RFC 6455 §7.4 asks: codes that may be sent, a reason
/// in UTF-8, and never a lone byte.
fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("a close frame's status code is two bytes")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(FrameError::Protocol("a close code that may not be sent"));
            }
            std::str::from_utf8(reason).map_err(|_| FrameError::InvalidUtf8)?;
            Ok(Some(code))
        }
    }
}

/// How long the header starting with `head` is: 2 bytes until the second is known.
fn header_len(head: &[u8]) -> usize {
    let Some(second) = head.get(1) else { return 2 };
    let extended = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + extended + if second & 0x80 != 0 { 4 } else { 0 }
}

/// Append `masked` to `body`, unmasking it: byte i of a payload is XORed with byte i mod 4 of
/// the mask, counted from the payload's start (which is `body`'s).
fn unmask_onto(body: &mut BytesMut, masked: &[u8], mask: [u8; 4]) {
    let start = body.len();
    body.extend_from_slice(masked);
    let mut mask = mask;
    mask.rotate_left(start % 4);
    let word = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let (words, rest) = body[start..].as_chunks_mut::<8>();
    for chunk in words {
        *chunk = (u64::from_ne_bytes(*chunk) ^ word).to_ne_bytes();
    }
    // The words covered a multiple of 4 bytes, so the rest starts at mask byte 0.
    for (i, byte) in rest.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests;
