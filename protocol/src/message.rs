//! y-protocols messages as a closed enum, their exact byte encoding, and the frame decoder.
//!
//! Layouts (lib0 primitives, see `lib0.rs`), as y-websocket and y-protocols write them:
//! - sync: `varUint(0) varUint(subtype) varBytes(payload)`, subtype 0 step1 / 1 step2 / 2 update
//! - awareness: `varUint(1) varBytes(awareness update)`
//! - auth: `varUint(2) varUint(0) varString(reason)` (permission denied is the only subtype)
//! - query awareness: `varUint(3)` and nothing else
//! - app (CodeCrafter only): `varUint(100) varString(JSON)`
//!
//! Payloads stay borrowed slices of the frame: the server relays most messages untouched, so
//! decoding must not copy them.

use std::iter::FusedIterator;
use std::ops::Range;

use crate::error::{DecodeError, Result};
use crate::lib0::{Reader, var_bytes_len, var_uint_len, write_var_bytes, write_var_string, write_var_uint};

/// Top-level type of a Yjs document sync message.
pub const MSG_SYNC: u64 = 0;
/// Top-level type of an awareness (presence) update.
pub const MSG_AWARENESS: u64 = 1;
/// Top-level type of an auth message.
pub const MSG_AUTH: u64 = 2;
/// Top-level type of a request for everyone's awareness state.
pub const MSG_QUERY_AWARENESS: u64 = 3;
/// CodeCrafter's app message (JSON text). Sent only to clients that opt in with `?app=1`: stock
/// y-websocket clients log an error on an unknown type. 100 leaves room for future y-protocols types.
pub const MSG_APP: u64 = 100;

/// Sync subtype: "here is my state vector, send me what I lack".
pub const SYNC_STEP1: u64 = 0;
/// Sync subtype: the update answering a step1.
pub const SYNC_STEP2: u64 = 1;
/// Sync subtype: an incremental update.
pub const SYNC_UPDATE: u64 = 2;

/// Auth subtype: the server refused the client's write (reason follows).
pub const AUTH_PERMISSION_DENIED: u64 = 0;
/// Auth subtype (CodeCrafter extension; y-protocols defines only 0): the client's access token,
/// for clients that cannot put it in the URL. Sent as the connection's first message.
pub const AUTH_TOKEN: u64 = 1;

/// One y-protocols message, borrowing its payload from the frame it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Document sync.
    Sync(SyncMessage<'a>),
    /// The awareness update payload (the content of the var-bytes); see `awareness.rs`.
    Awareness(&'a [u8]),
    /// Authorization outcome.
    Auth(AuthMessage<'a>),
    /// Asks the receiver to send every awareness state it knows.
    QueryAwareness,
    /// CodeCrafter app message: JSON text, see `app.rs`.
    App(&'a str),
}

/// The three sync subtypes. Payloads are opaque Yjs bytes (v1 encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMessage<'a> {
    /// An encoded state vector.
    Step1(&'a [u8]),
    /// An update answering a step1.
    Step2(&'a [u8]),
    /// An incremental update.
    Update(&'a [u8]),
}

/// Auth messages: y-protocols' permission denied, and CodeCrafter's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMessage<'a> {
    /// The peer may not do what it tried; `reason` is shown to the user.
    PermissionDenied {
        /// Human-readable explanation.
        reason: &'a str,
    },
    /// Client to server: the access token (a JWT) authenticating this connection.
    Token {
        /// The token text.
        token: &'a str,
    },
}

impl AuthMessage<'_> {
    fn parts(&self) -> (u64, &str) {
        match self {
            Self::PermissionDenied { reason } => (AUTH_PERMISSION_DENIED, reason),
            Self::Token { token } => (AUTH_TOKEN, token),
        }
    }
}

/// A message's kind without its payload: a cheap, bounded metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `Sync(Step1)`.
    SyncStep1,
    /// `Sync(Step2)`.
    SyncStep2,
    /// `Sync(Update)`.
    SyncUpdate,
    /// `Awareness`.
    Awareness,
    /// `Auth`.
    Auth,
    /// `QueryAwareness`.
    QueryAwareness,
    /// `App`.
    App,
}

impl MessageKind {
    /// How many kinds there are: `kind as usize` indexes an array of this length.
    pub const COUNT: usize = 7;
    /// Every kind, in declaration order (so `ALL[k as usize] == k`).
    pub const ALL: [MessageKind; Self::COUNT] = [
        Self::SyncStep1,
        Self::SyncStep2,
        Self::SyncUpdate,
        Self::Awareness,
        Self::Auth,
        Self::QueryAwareness,
        Self::App,
    ];

    /// Stable snake_case label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SyncStep1 => "sync_step1",
            Self::SyncStep2 => "sync_step2",
            Self::SyncUpdate => "update",
            Self::Awareness => "awareness",
            Self::Auth => "auth",
            Self::QueryAwareness => "query_awareness",
            Self::App => "app",
        }
    }
}

impl<'a> Message<'a> {
    /// Appends exactly the bytes y-protocols writes for this message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Sync(sync) => {
                let (subtype, payload) = sync.parts();
                write_var_uint(out, MSG_SYNC);
                write_var_uint(out, subtype);
                write_var_bytes(out, payload);
            }
            Self::Awareness(update) => {
                write_var_uint(out, MSG_AWARENESS);
                write_var_bytes(out, update);
            }
            Self::Auth(auth) => {
                let (subtype, text) = auth.parts();
                write_var_uint(out, MSG_AUTH);
                write_var_uint(out, subtype);
                write_var_string(out, text);
            }
            Self::QueryAwareness => write_var_uint(out, MSG_QUERY_AWARENESS),
            Self::App(json) => {
                write_var_uint(out, MSG_APP);
                write_var_string(out, json);
            }
        }
    }

    /// The encoding in a vector allocated once at its final size.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Exactly how many bytes [`Message::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        // Payloads are in-memory slices (at most isize::MAX bytes), so these sums cannot overflow;
        // saturating keeps that an invariant rather than an assumption.
        match self {
            Self::Sync(sync) => {
                let (subtype, payload) = sync.parts();
                var_uint_len(MSG_SYNC)
                    .saturating_add(var_uint_len(subtype))
                    .saturating_add(var_bytes_len(payload.len()))
            }
            Self::Awareness(update) => {
                var_uint_len(MSG_AWARENESS).saturating_add(var_bytes_len(update.len()))
            }
            Self::Auth(auth) => {
                let (subtype, text) = auth.parts();
                var_uint_len(MSG_AUTH)
                    .saturating_add(var_uint_len(subtype))
                    .saturating_add(var_bytes_len(text.len()))
            }
            Self::QueryAwareness => var_uint_len(MSG_QUERY_AWARENESS),
            Self::App(json) => var_uint_len(MSG_APP).saturating_add(var_bytes_len(json.len())),
        }
    }

    /// The payload-free kind, for metrics and logs.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Sync(SyncMessage::Step1(_)) => MessageKind::SyncStep1,
            Self::Sync(SyncMessage::Step2(_)) => MessageKind::SyncStep2,
            Self::Sync(SyncMessage::Update(_)) => MessageKind::SyncUpdate,
            Self::Awareness(_) => MessageKind::Awareness,
            Self::Auth(_) => MessageKind::Auth,
            Self::QueryAwareness => MessageKind::QueryAwareness,
            Self::App(_) => MessageKind::App,
        }
    }

    /// Reads one message at the reader's position. On error the reader's position is unspecified;
    /// callers stop at the first error (a frame is trusted whole or not at all).
    pub fn read(reader: &mut Reader<'a>) -> Result<Self> {
        match reader.read_var_uint()? {
            MSG_SYNC => {
                let subtype = reader.read_var_uint()?;
                // Check the subtype before reading the payload so the error names the real problem.
                let make = match subtype {
                    SYNC_STEP1 => SyncMessage::Step1,
                    SYNC_STEP2 => SyncMessage::Step2,
                    SYNC_UPDATE => SyncMessage::Update,
                    other => return Err(DecodeError::UnknownSyncType(other)),
                };
                Ok(Self::Sync(make(reader.read_var_bytes()?)))
            }
            MSG_AWARENESS => Ok(Self::Awareness(reader.read_var_bytes()?)),
            MSG_AUTH => match reader.read_var_uint()? {
                AUTH_PERMISSION_DENIED => {
                    Ok(Self::Auth(AuthMessage::PermissionDenied { reason: reader.read_var_string()? }))
                }
                AUTH_TOKEN => Ok(Self::Auth(AuthMessage::Token { token: reader.read_var_string()? })),
                other => Err(DecodeError::UnknownAuthType(other)),
            },
            MSG_QUERY_AWARENESS => Ok(Self::QueryAwareness),
            MSG_APP => Ok(Self::App(reader.read_var_string()?)),
            other => Err(DecodeError::UnknownMessageType(other)),
        }
    }
}

impl<'a> SyncMessage<'a> {
    /// The subtype tag and the payload.
    fn parts(&self) -> (u64, &'a [u8]) {
        match *self {
            Self::Step1(state_vector) => (SYNC_STEP1, state_vector),
            Self::Step2(update) => (SYNC_STEP2, update),
            Self::Update(update) => (SYNC_UPDATE, update),
        }
    }
}

/// Decodes the messages of one WebSocket binary frame. y-websocket sends one message per frame;
/// we also accept several back to back, because that costs nothing and other clients batch.
pub fn decode_frame(frame: &[u8]) -> FrameDecoder<'_> {
    FrameDecoder { reader: Reader::new(frame), done: false }
}

/// Iterator over the messages of a frame, each with its byte range inside the frame so the server
/// can re-broadcast `&frame[range]` without re-encoding. Yields `Err` at most once, then `None`:
/// after a malformed message nothing later in the frame can be located reliably.
#[derive(Debug, Clone)]
pub struct FrameDecoder<'a> {
    reader: Reader<'a>,
    done: bool,
}

impl<'a> Iterator for FrameDecoder<'a> {
    type Item = Result<(Message<'a>, Range<usize>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.reader.position();
        if self.reader.is_empty() {
            self.done = true;
            // Only a frame with no bytes at all is an error; running out after a message is the end.
            return (start == 0).then_some(Err(DecodeError::EmptyFrame));
        }
        match Message::read(&mut self.reader) {
            Ok(message) => Some(Ok((message, start..self.reader.position()))),
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

impl FusedIterator for FrameDecoder<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_labels() {
        let cases = [
            (Message::Sync(SyncMessage::Step1(b"")), "sync_step1"),
            (Message::Sync(SyncMessage::Step2(b"")), "sync_step2"),
            (Message::Sync(SyncMessage::Update(b"")), "update"),
            (Message::Awareness(b""), "awareness"),
            (Message::Auth(AuthMessage::PermissionDenied { reason: "" }), "auth"),
            (Message::QueryAwareness, "query_awareness"),
            (Message::App("{}"), "app"),
        ];
        for (message, label) in cases {
            assert_eq!(message.kind().as_str(), label);
        }
    }

    #[test]
    fn encoded_len_matches_encode_across_length_prefix_widths() {
        for len in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
            let payload = vec![b'a'; len];
            let text = std::str::from_utf8(&payload).unwrap_or_default();
            for message in [
                Message::Sync(SyncMessage::Update(&payload)),
                Message::Awareness(&payload),
                Message::Auth(AuthMessage::PermissionDenied { reason: text }),
                Message::Auth(AuthMessage::Token { token: text }),
                Message::App(text),
            ] {
                let bytes = message.encode_to_vec();
                assert_eq!(bytes.len(), message.encoded_len(), "{:?} len {len}", message.kind());
                assert_eq!(bytes.capacity(), bytes.len());
            }
        }
    }

    #[test]
    fn decoder_is_fused_after_error() {
        let mut frames = decode_frame(&[MSG_QUERY_AWARENESS as u8, 0x07, 0x03]);
        assert!(matches!(frames.next(), Some(Ok((Message::QueryAwareness, _)))));
        assert_eq!(frames.next(), Some(Err(DecodeError::UnknownMessageType(7))));
        assert_eq!(frames.next(), None);
        assert_eq!(frames.next(), None);
    }

    #[test]
    fn empty_frame_errors_once() {
        let mut frames = decode_frame(&[]);
        assert_eq!(frames.next(), Some(Err(DecodeError::EmptyFrame)));
        assert_eq!(frames.next(), None);
    }
}
