//! The binary format shared by queue jobs and relay envelopes: one version byte, then bincode 2
//! (serde, standard config), decoded with an allocation limit and no trailing bytes allowed.

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// Why bytes are not a value this build understands.
#[derive(Debug, Error)]
pub enum VersionedDecodeError {
    /// No bytes, so not even a version.
    #[error("empty message")]
    Empty,
    /// Written with another format version.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Larger than the limit for this kind of value.
    #[error("{0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The body is not valid bincode for this type.
    #[error("invalid body: {0}")]
    Body(#[from] bincode::error::DecodeError),
    /// A valid value followed by extra bytes: a framing bug upstream, so refuse rather than guess.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// `version` followed by the bincode body.
pub(crate) fn encode<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    // bincode fails only for writers that fill up (a Vec never does), sequences without a known
    // length, or a custom Serialize returning an error; the derived structs of strings, byte
    // vectors and integers used with this never do.
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("derived types of strings, bytes and integers always serialize");
    out.extend_from_slice(&body);
    out
}

/// Parses bytes written by [`encode`] with the same `version`. bincode sizes a buffer from its
/// length prefix before reading it, so `MAX` bounds what a corrupt prefix can make it allocate.
pub(crate) fn decode<T: DeserializeOwned, const MAX: usize>(
    version: u8,
    bytes: &[u8],
) -> Result<T, VersionedDecodeError> {
    let (&found, body) = bytes.split_first().ok_or(VersionedDecodeError::Empty)?;
    if found != version {
        return Err(VersionedDecodeError::UnsupportedVersion(found));
    }
    if bytes.len() > MAX {
        return Err(VersionedDecodeError::TooLarge(bytes.len()));
    }
    let config = bincode::config::standard().with_limit::<MAX>();
    let (value, read) = bincode::serde::decode_from_slice(body, config)?;
    match body.len().saturating_sub(read) {
        0 => Ok(value),
        trailing => Err(VersionedDecodeError::TrailingBytes(trailing)),
    }
}
