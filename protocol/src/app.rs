//! CodeCrafter app messages: the JSON carried by `MSG_APP` (chat, run, presence, errors).
//!
//! Internally tagged (`{"type":"error",...}`) so a browser client can switch on `type`, and so new
//! kinds are new variants: old servers reject an unknown `type` with a clear serde error instead of
//! misreading it. Field names are snake_case on the wire, like the HTTP API.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::lib0::{var_bytes_len, var_uint_len, write_var_string, write_var_uint};
use crate::message::MSG_APP;

/// What a client and the server exchange as app messages. Chat, run and presence variants come
/// later; each is one more variant here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AppMessage {
    /// Something the client sent was refused; `code` is stable, `message` is for humans.
    Error {
        /// Stable snake_case code, e.g. a [`DecodeError::code`].
        code: String,
        /// Human-readable detail.
        message: String,
    },
}

/// Used if serialization ever failed: a fixed, valid error message rather than a panic or an empty
/// frame. Cannot happen for the variants above (strings only), but a future variant with, say, a
/// map keyed by non-strings could fail.
const UNSERIALIZABLE: &str =
    r#"{"type":"error","code":"internal","message":"app message could not be serialized"}"#;

impl AppMessage {
    /// An error message with the given code and text.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Error { code: code.into(), message: message.into() }
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| UNSERIALIZABLE.to_owned())
    }

    /// The complete `MSG_APP` frame: `varUint(100) varString(json)`.
    pub fn to_frame(&self) -> Vec<u8> {
        let json = self.to_json();
        let len = var_uint_len(MSG_APP).saturating_add(var_bytes_len(json.len()));
        let mut out = Vec::with_capacity(len);
        write_var_uint(&mut out, MSG_APP);
        write_var_string(&mut out, &json);
        out
    }

    /// Parses the JSON of a received `Message::App`.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// The app error a client gets for a frame it sent that could not be decoded.
impl From<&DecodeError> for AppMessage {
    fn from(err: &DecodeError) -> Self {
        Self::error(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, decode_frame};

    #[test]
    fn error_json_shape() {
        let msg = AppMessage::error("frame_too_large", "frame exceeds 1 MiB");
        assert_eq!(
            msg.to_json(),
            r#"{"type":"error","code":"frame_too_large","message":"frame exceeds 1 MiB"}"#
        );
    }

    #[test]
    fn frame_decodes_as_app_message() {
        let msg = AppMessage::error("x", "ünïcode \"quoted\"");
        let frame = msg.to_frame();
        assert_eq!(frame.capacity(), frame.len());
        let decoded: Vec<_> = decode_frame(&frame).collect();
        let json = match decoded.as_slice() {
            [Ok((Message::App(json), range))] if *range == (0..frame.len()) => *json,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(AppMessage::from_json(json).ok(), Some(msg));
    }

    #[test]
    fn from_json_rejects_unknown_or_malformed() {
        for bad in [
            r#"{"type":"teleport"}"#,
            r#"{"code":"x","message":"y"}"#,
            r#"{"type":"error","code":"x"}"#,
            "not json",
            "",
        ] {
            assert!(AppMessage::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn from_decode_error() {
        let msg = AppMessage::from(&DecodeError::UnknownMessageType(9));
        assert_eq!(msg, AppMessage::error("unknown_message_type", "unknown message type 9"));
    }

    #[test]
    fn fallback_is_a_valid_error() {
        assert!(matches!(AppMessage::from_json(UNSERIALIZABLE), Ok(AppMessage::Error { .. })));
    }
}
