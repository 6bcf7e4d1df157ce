//! The one error type for decoding client bytes (lib0 primitives, y-protocols frames, awareness updates).
//!
//! Every variant has a stable snake_case [`DecodeError::code`], because the server sends that code to
//! the client (in an app error message or a close reason) and dashboards count by it: renaming a
//! variant must not silently change what clients and metrics see.

use thiserror::Error;

/// Why a frame, message or awareness update could not be decoded.
///
/// Decoding never panics and never allocates in proportion to a length it has not verified against
/// the input, so every malformed input ends here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The WebSocket frame had no bytes at all; y-protocols has no empty message.
    #[error("empty frame")]
    EmptyFrame,
    /// The input ended inside a var-uint, or a length prefix points past the end.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A var-uint needs more than 8 bytes or exceeds 2^53 - 1, which a JS client cannot represent.
    #[error("variable-length integer overflows 53 bits")]
    VarUintOverflow,
    /// A var-uint ends with a zero group (e.g. `80 00`), a second spelling of a smaller number.
    /// lib0 never writes these; rejecting them makes every accepted frame re-encode byte for byte.
    #[error("variable-length integer is not minimally encoded")]
    NonCanonicalVarUint,
    /// A string (auth reason, app JSON, awareness state) is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// The top-level message type is none of sync, awareness, auth, query awareness, app.
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    /// The sync subtype is none of step1, step2, update.
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    /// The auth subtype is not permission denied.
    #[error("unknown auth message type {0}")]
    UnknownAuthType(u64),
    /// An awareness update claims more entries than its bytes could hold (each needs at least 3).
    #[error("awareness update claims {count} entries but has only {remaining} bytes left")]
    AwarenessCountTooLarge {
        /// The entry count the update claims.
        count: u64,
        /// Bytes left after the count.
        remaining: usize,
    },
    /// Bytes are left over after the last awareness entry.
    #[error("{0} trailing bytes after the awareness entries")]
    AwarenessTrailingBytes(usize),
}

impl DecodeError {
    /// A stable, machine-readable code for clients and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyFrame => "empty_frame",
            Self::UnexpectedEof => "unexpected_eof",
            Self::VarUintOverflow => "var_uint_overflow",
            Self::NonCanonicalVarUint => "non_canonical_var_uint",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::UnknownMessageType(_) => "unknown_message_type",
            Self::UnknownSyncType(_) => "unknown_sync_type",
            Self::UnknownAuthType(_) => "unknown_auth_type",
            Self::AwarenessCountTooLarge { .. } => "awareness_count_too_large",
            Self::AwarenessTrailingBytes(_) => "awareness_trailing_bytes",
        }
    }
}

/// Results of this crate's decoders.
pub(crate) type Result<T, E = DecodeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::DecodeError;

    #[test]
    fn codes_are_distinct_snake_case() {
        let all = [
            DecodeError::EmptyFrame,
            DecodeError::UnexpectedEof,
            DecodeError::VarUintOverflow,
            DecodeError::NonCanonicalVarUint,
            DecodeError::InvalidUtf8,
            DecodeError::UnknownMessageType(7),
            DecodeError::UnknownSyncType(7),
            DecodeError::UnknownAuthType(7),
            DecodeError::AwarenessCountTooLarge { count: 9, remaining: 2 },
            DecodeError::AwarenessTrailingBytes(1),
        ];
        let mut codes: Vec<&str> = all.iter().map(DecodeError::code).collect();
        for code in &codes {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{code}");
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn display_names_the_value() {
        assert_eq!(DecodeError::UnknownMessageType(42).to_string(), "unknown message type 42");
        assert_eq!(
            DecodeError::AwarenessTrailingBytes(3).to_string(),
            "3 trailing bytes after the awareness entries"
        );
    }
}
