//! The node-to-node relay envelope: what one server process tells the others about a room it
//! shares with them (a Yjs message carries no room id; the envelope does).

use serde::{Deserialize, Serialize};

use crate::versioned::{self, VersionedDecodeError};

/// The format written by [`Envelope::encode`].
pub const ENVELOPE_FORMAT_VERSION: u8 = 1;

/// Largest encoded envelope accepted (a sync reply may carry a whole document).
pub const MAX_ENVELOPE_LEN: usize = 256 * 1024 * 1024;

/// What an envelope carries. Append new kinds at the end: bincode tags variants by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayKind {
    /// A Yjs v1 update a client of the origin node made.
    Update,
    /// An awareness update payload.
    Awareness,
    /// An app message (JSON text as bytes).
    App,
    /// The origin's encoded state vector: peers answer with a `SyncReply` holding what it lacks.
    SyncRequest,
    /// A Yjs v1 update answering a `SyncRequest`.
    SyncReply,
    /// The room's session changed its permissions or was deleted (payload empty): nodes re-read
    /// it and update their live sockets.
    Access,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that sent it; a node ignores its own envelopes.
    pub origin: u64,
    pub kind: RelayKind,
    pub room: String,
    #[serde(with = "serde_bytes_compat")]
    pub payload: Vec<u8>,
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(ENVELOPE_FORMAT_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, VersionedDecodeError> {
        versioned::decode::<Self, MAX_ENVELOPE_LEN>(ENVELOPE_FORMAT_VERSION, bytes)
    }
}

/// bincode writes a `Vec<u8>` as a length and the bytes either way; this module only keeps the
/// field's serde shape explicit (a byte sequence) for formats that distinguish the two.
mod serde_bytes_compat {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: RelayKind) -> Envelope {
        Envelope { origin: 7, kind, room: "room/é".into(), payload: vec![0, 2, 1, 255] }
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in [
            RelayKind::Update,
            RelayKind::Awareness,
            RelayKind::App,
            RelayKind::SyncRequest,
            RelayKind::SyncReply,
            RelayKind::Access,
        ] {
            let e = envelope(kind);
            assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        }
    }

    #[test]
    fn refuses_other_versions_truncation_and_trailing_bytes() {
        let bytes = envelope(RelayKind::Update).encode();
        assert_eq!(bytes[0], ENVELOPE_FORMAT_VERSION);
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(matches!(Envelope::decode(&other), Err(VersionedDecodeError::UnsupportedVersion(2))));
        assert!(matches!(Envelope::decode(&bytes[..bytes.len() - 1]), Err(VersionedDecodeError::Body(_))));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(Envelope::decode(&longer), Err(VersionedDecodeError::TrailingBytes(1))));
        assert!(matches!(Envelope::decode(&[]), Err(VersionedDecodeError::Empty)));
    }
}
