//! The WebSocket framing the server writes (RFC 6455 §5.2). Server-to-client frames are unmasked,
//! so one binary message has the same bytes on every connection: its header is built once per
//! fan-out and written, with the shared payload, to each socket. The connection's own frames
//! (replies, pings, pongs, its close) use the same headers.

use bytes::{BufMut, Bytes, BytesMut};

/// The header of one unfragmented, unmasked frame: 2 to 10 bytes, kept inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    bytes: [u8; 10],
    len: u8,
}

/// FIN set, and each opcode the server sends.
const FIN_BINARY: u8 = 0x82;
const FIN_CLOSE: u8 = 0x88;
const FIN_PING: u8 = 0x89;
const FIN_PONG: u8 = 0x8A;

impl FrameHeader {
    /// The header for a binary frame carrying `payload_len` bytes.
    pub fn binary(payload_len: usize) -> Self {
        Self::new(FIN_BINARY, payload_len)
    }

    /// A ping with no payload.
    pub fn ping() -> Self {
        Self::new(FIN_PING, 0)
    }

    /// The pong answering a ping of `payload_len` bytes (at most 125: a control frame's limit).
    pub fn pong(payload_len: usize) -> Self {
        Self::new(FIN_PONG, payload_len)
    }

    /// A close frame carrying `payload_len` bytes (see [`close_payload`]).
    pub fn close(payload_len: usize) -> Self {
        Self::new(FIN_CLOSE, payload_len)
    }

    fn new(first: u8, payload_len: usize) -> Self {
        let mut bytes = [0u8; 10];
        bytes[0] = first;
        let len = if payload_len < 126 {
            bytes[1] = payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(payload_len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        };
        Self { bytes, len }
    }

    /// No header: for bytes that are already framed, or not frames (hyper's answers).
    pub const NONE: Self = Self { bytes: [0; 10], len: 0 };

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A close frame's payload: the status code, then the reason cut to the 123 bytes a control frame
/// leaves for it (at a character boundary).
pub fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = BytesMut::with_capacity(2 + end);
    payload.put_u16(code);
    payload.put_slice(&reason.as_bytes()[..end]);
    payload.freeze()
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    use super::*;

    /// Our header followed by the payload must be exactly the frame tungstenite (what most Rust
    /// clients read with) produces, at each boundary of the length encoding.
    #[test]
    fn matches_tungstenite_framing_at_every_length_boundary() {
        for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = vec![7u8; len];
            let mut ours = FrameHeader::binary(len).as_slice().to_vec();
            ours.extend_from_slice(&payload);
            let mut theirs = Vec::new();
            Frame::message(payload, OpCode::Data(Data::Binary), true)
                .format(&mut theirs)
                .expect("formatting into a Vec cannot fail");
            assert_eq!(ours, theirs, "payload length {len}");
        }
    }

    /// The control frames, against tungstenite's encoding of the same.
    #[test]
    fn control_frames_match_tungstenite() {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let encode = |header: FrameHeader, payload: &[u8]| [header.as_slice(), payload].concat();
        let theirs = |frame: Frame| {
            let mut bytes = Vec::new();
            frame.format(&mut bytes).expect("formatting into a Vec cannot fail");
            bytes
        };
        assert_eq!(encode(FrameHeader::ping(), &[]), theirs(Frame::ping(Vec::new())));
        assert_eq!(encode(FrameHeader::pong(3), b"abc"), theirs(Frame::pong(b"abc".to_vec())));
        let close = close_payload(4403, "no access");
        let frame =
            Frame::close(Some(CloseFrame { code: CloseCode::from(4403), reason: "no access".into() }));
        assert_eq!(encode(FrameHeader::close(close.len()), &close), theirs(frame));
    }

    /// A reason longer than a close frame holds is cut at a character boundary, never split.
    #[test]
    fn a_long_close_reason_is_cut_whole_characters() {
        let reason = "é".repeat(100); // 200 bytes
        let payload = close_payload(1002, &reason);
        assert_eq!(payload.len(), 2 + 122, "123 would split a two-byte character");
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(close_payload(1000, "").as_ref(), &[0x03, 0xE8]);
    }
}
