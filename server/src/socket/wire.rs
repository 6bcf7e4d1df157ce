//! The WebSocket framing the fan-out writes itself (RFC 6455 §5.2). Server-to-client frames are
//! unmasked, so one binary message has the same bytes on every connection: its header is built once
//! per fan-out and written, with the shared payload, to each socket.

/// The header of one unfragmented, unmasked binary frame: 2 to 10 bytes, kept inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    bytes: [u8; 10],
    len: u8,
}

/// FIN set, opcode 2 (binary).
const FIN_BINARY: u8 = 0x82;

impl FrameHeader {
    /// The header for a binary frame carrying `payload_len` bytes.
    pub fn binary(payload_len: usize) -> Self {
        let mut bytes = [0u8; 10];
        bytes[0] = FIN_BINARY;
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

    /// No header: for bytes that are already framed (written by hyper or tungstenite).
    pub const NONE: Self = Self { bytes: [0; 10], len: 0 };

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    use super::*;

    /// Our header followed by the payload must be exactly the frame tungstenite (what axum writes
    /// for every other message) produces, at each boundary of the length encoding.
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
}
