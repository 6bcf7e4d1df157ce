//! Chat over the app channel: what a client sends (`{"type":"chat","text","nonce"}`), what the
//! room receives ([`ChatPost`]), and the pure checks a message passes before it is accepted.

use serde::{Deserialize, Serialize};

/// The fields of a client's `chat` message (its `type` and `nonce` are read by the dispatch).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatRequest {
    pub text: String,
}

/// Who wrote a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUser {
    pub id: String,
    pub username: String,
}

/// One chat message as every app client of the room sees it (`chat`, and each entry of
/// `chat_history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatPost {
    /// 24 hex digits, given by the server.
    pub id: String,
    pub room: String,
    pub user: ChatUser,
    pub text: String,
    /// When the server accepted it (unix ms).
    pub ts: i64,
    /// The sender's nonce; absent in history read back from the store (it is not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Why a chat text is refused; [`TextRefusal::code`] is the error code the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRefusal {
    /// Empty, or only whitespace.
    Empty,
    /// More than the limit, in Unicode scalar values.
    TooLong { max_chars: usize },
}

impl TextRefusal {
    pub fn code(self) -> &'static str {
        match self {
            TextRefusal::Empty => "chat_empty",
            TextRefusal::TooLong { .. } => "chat_too_long",
        }
    }

    pub fn message(self) -> String {
        match self {
            TextRefusal::Empty => "text: a chat message needs some non-whitespace text".to_owned(),
            TextRefusal::TooLong { max_chars } => format!("text: at most {max_chars} characters"),
        }
    }
}

/// Checks a chat text: not blank, and at most `max_chars` Unicode scalar values (0: no limit).
/// The text is kept as sent (not trimmed), so what is stored is what the sender typed.
pub fn check_text(text: &str, max_chars: usize) -> Result<(), TextRefusal> {
    if text.trim().is_empty() {
        return Err(TextRefusal::Empty);
    }
    // Counting stops one past the limit: a huge text costs no more than a long one.
    if max_chars > 0 && text.chars().take(max_chars.saturating_add(1)).count() > max_chars {
        return Err(TextRefusal::TooLong { max_chars });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, max_chars: usize, expected: Result<(), TextRefusal>) {
        assert_eq!(check_text(text, max_chars), expected, "{text:?} with max {max_chars}");
    }

    #[test]
    fn texts_at_and_past_the_edges() {
        let too_long = |max_chars| Err(TextRefusal::TooLong { max_chars });
        check("hi", 2, Ok(()));
        check("hi!", 2, too_long(2));
        // Scalar values, not bytes: two 2-byte and one 4-byte character are three.
        check("éé😀", 3, Ok(()));
        check("éé😀x", 3, too_long(3));
        check(&"x".repeat(10_000), 0, Ok(()));
        check(" padded ", 8, Ok(()));
        for blank in ["", " ", "\n\t ", "\u{3000}"] {
            check(blank, 10, Err(TextRefusal::Empty));
        }
    }

    #[test]
    fn a_post_round_trips_and_omits_a_missing_nonce() {
        let post = ChatPost {
            id: "0".repeat(24),
            room: "r".into(),
            user: ChatUser { id: "u".into(), username: "ann".into() },
            text: "hi".into(),
            ts: 5,
            nonce: None,
        };
        let json = serde_json::to_string(&post).unwrap();
        assert_eq!(
            json,
            r#"{"id":"000000000000000000000000","room":"r","user":{"id":"u","username":"ann"},"text":"hi","ts":5}"#
        );
        assert_eq!(serde_json::from_str::<ChatPost>(&json).unwrap(), post);
    }

    #[test]
    fn a_request_needs_a_string_text() {
        let ok: ChatRequest = serde_json::from_str(r#"{"type":"chat","text":"x","nonce":"n"}"#).unwrap();
        assert_eq!(ok.text, "x");
        for bad in [r#"{"type":"chat"}"#, r#"{"type":"chat","text":5}"#, r#"{"text":null}"#] {
            assert!(serde_json::from_str::<ChatRequest>(bad).is_err(), "{bad}");
        }
    }
}
