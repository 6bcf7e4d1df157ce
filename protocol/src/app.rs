//! CodeCrafter app messages: the JSON carried by `MSG_APP` (chat, run, presence, errors).
//!
//! Internally tagged (`{"type":"error",...}`) so a browser client can switch on `type`, and so new
//! kinds are new variants: old servers reject an unknown `type` with a clear serde error instead of
//! misreading it. Field names are snake_case on the wire, like the HTTP API.

use serde::{Deserialize, Serialize};

use crate::chat::ChatPost;
use crate::error::DecodeError;
use crate::lib0::{var_bytes_len, var_uint_len, write_var_string, write_var_uint};
use crate::message::MSG_APP;
use crate::run::{RunExit, RunOutput, RunStarted};

/// What the server sends app clients; a new kind is one more variant here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AppMessage {
    /// Something the client sent was refused; `code` is stable, `message` is for humans.
    Error {
        /// Stable snake_case code, e.g. a [`DecodeError::code`].
        code: String,
        /// Human-readable detail.
        message: String,
        /// The `nonce` of the client message refused, so the client knows which one; absent when
        /// the error answers no message that carried one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Document durability, to an app client: the first `seq` messages carrying document content
    /// it sent on this connection (sync step 2 and sync update, counted together from 1) are
    /// durable, or were refused (a read-only client's edits, answered at once with permission
    /// denied). Sent in order, `seq` only growing; one message may cover several.
    Saved { seq: u64 },
    /// A chat message, to every app client of its room.
    Chat(ChatPost),
    /// To the sender: the chat message `id` (sent with `nonce`) is durable.
    ChatSaved {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// To a client that joins: the room's recent messages, oldest first.
    ChatHistory { messages: Vec<ChatPost> },
    /// To the sender of `run` (with its `nonce`): the job is queued under id `job`.
    RunQueued {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// To the room: a worker started the job.
    RunStarted(RunStarted),
    /// To the room: a chunk of the job's output.
    RunOutput(RunOutput),
    /// To the room: the job is over.
    RunExit(RunExit),
}

/// Longest `nonce` a client may attach to an app message, in bytes.
pub const MAX_NONCE_BYTES: usize = 64;

/// The fields every client app message has, read before its kind is routed (the rest is read by
/// the kind's handler): its `type`, and the `nonce` the answers echo.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppRequestHead {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub nonce: Option<String>,
}

impl AppRequestHead {
    /// Reads the head of a client's app message; any JSON object with a string `type` has one.
    /// Only an object: serde would also read a struct from an array (`["chat"]`).
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        if !s.trim_start().starts_with('{') {
            return Err(serde::de::Error::custom("an app message must be a JSON object"));
        }
        serde_json::from_str(s)
    }
}

/// Used if serialization ever failed: a fixed, valid error message rather than a panic or an empty
/// frame. Cannot happen for the variants above (strings only), but a future variant with, say, a
/// map keyed by non-strings could fail.
const UNSERIALIZABLE: &str =
    r#"{"type":"error","code":"internal","message":"app message could not be serialized"}"#;

impl AppMessage {
    /// An error message with the given code and text.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Error { code: code.into(), message: message.into(), nonce: None }
    }

    /// An error answering the client message that carried `nonce`.
    pub fn error_for(code: impl Into<String>, message: impl Into<String>, nonce: Option<String>) -> Self {
        Self::Error { code: code.into(), message: message.into(), nonce }
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
    fn saved_json_shape() {
        assert_eq!(AppMessage::Saved { seq: 42 }.to_json(), r#"{"type":"saved","seq":42}"#);
        assert_eq!(
            AppMessage::from_json(r#"{"type":"saved","seq":7}"#).ok(),
            Some(AppMessage::Saved { seq: 7 })
        );
    }

    #[test]
    fn error_json_shape() {
        let msg = AppMessage::error("frame_too_large", "frame exceeds 1 MiB");
        assert_eq!(
            msg.to_json(),
            r#"{"type":"error","code":"frame_too_large","message":"frame exceeds 1 MiB"}"#
        );
    }

    #[test]
    fn an_error_echoes_the_nonce_only_when_there_is_one() {
        let msg = AppMessage::error_for("unsupported_app_message", "no", Some("n-1".into()));
        assert_eq!(
            msg.to_json(),
            r#"{"type":"error","code":"unsupported_app_message","message":"no","nonce":"n-1"}"#
        );
        assert_eq!(AppMessage::from_json(&msg.to_json()).ok(), Some(msg));
    }

    #[test]
    fn a_request_head_is_the_type_and_the_nonce() {
        let head = AppRequestHead::from_json(r#"{"type":"chat","text":"hi","nonce":"7"}"#).unwrap();
        assert_eq!(head, AppRequestHead { kind: "chat".into(), nonce: Some("7".into()) });
        let bare = AppRequestHead::from_json(r#"{"type":"run"}"#).unwrap();
        assert_eq!(bare.nonce, None);
        for bad in [r#"{"nonce":"x"}"#, r#"{"type":3}"#, r#"["type"]"#, "chat", r#"{"type":"x","nonce":5}"#] {
            assert!(AppRequestHead::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chat_messages_shapes() {
        let post = ChatPost {
            id: "a".into(),
            room: "r".into(),
            user: crate::chat::ChatUser { id: "u".into(), username: "ann".into() },
            text: "hi".into(),
            ts: 1,
            nonce: Some("n".into()),
        };
        let chat = AppMessage::Chat(post.clone());
        assert_eq!(
            chat.to_json(),
            r#"{"type":"chat","id":"a","room":"r","user":{"id":"u","username":"ann"},"text":"hi","ts":1,"nonce":"n"}"#
        );
        let saved = AppMessage::ChatSaved { id: "a".into(), nonce: Some("n".into()) };
        assert_eq!(saved.to_json(), r#"{"type":"chat_saved","id":"a","nonce":"n"}"#);
        let history = AppMessage::ChatHistory { messages: vec![post] };
        assert!(history.to_json().starts_with(r#"{"type":"chat_history","messages":[{"id":"a""#));
        for message in [chat, saved, history] {
            assert_eq!(AppMessage::from_json(&message.to_json()).ok(), Some(message));
        }
    }

    #[test]
    fn run_messages_shapes() {
        use crate::run::OutputStream;
        let queued = AppMessage::RunQueued { job: "j".into(), nonce: Some("n".into()) };
        assert_eq!(queued.to_json(), r#"{"type":"run_queued","job":"j","nonce":"n"}"#);
        let started = AppMessage::RunStarted(RunStarted {
            job: "j".into(),
            language: "python".into(),
            user: crate::chat::ChatUser { id: "u".into(), username: "ann".into() },
        });
        assert_eq!(
            started.to_json(),
            r#"{"type":"run_started","job":"j","language":"python","user":{"id":"u","username":"ann"}}"#
        );
        let output = AppMessage::RunOutput(RunOutput {
            job: "j".into(),
            seq: 0,
            stream: OutputStream::Stderr,
            data: "é\n".into(),
        });
        assert_eq!(
            output.to_json(),
            r#"{"type":"run_output","job":"j","seq":0,"stream":"stderr","data":"é\n"}"#
        );
        let exit = AppMessage::RunExit(RunExit {
            job: "j".into(),
            exit_code: None,
            duration_ms: 12,
            timed_out: true,
            oom_killed: false,
            output_truncated: false,
            error: None,
        });
        assert_eq!(
            exit.to_json(),
            r#"{"type":"run_exit","job":"j","exit_code":null,"duration_ms":12,"timed_out":true,"oom_killed":false,"output_truncated":false}"#
        );
        for message in [queued, started, output, exit] {
            assert_eq!(AppMessage::from_json(&message.to_json()).ok(), Some(message));
        }
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
