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
    /// A [`SyncRequest`] (the origin's encoded state vector, and whether to ask back): peers
    /// answer with a `SyncReply` holding what it lacks.
    SyncRequest,
    /// A Yjs v1 update answering a `SyncRequest`.
    SyncReply,
    /// The room's session changed its permissions or was deleted (payload empty): nodes re-read
    /// it and update their live sockets.
    Access,
    /// Several Yjs v1 updates of one room, coalesced by the origin into one message (see
    /// [`encode_update_batch`]); applied as if each had come in its own `Update`, in order.
    Updates,
}

/// The payload of an [`RelayKind::Updates`] envelope: each update as lib0 var-bytes, back to back.
pub fn encode_update_batch<'a>(updates: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for update in updates {
        crate::lib0::write_var_bytes(&mut out, update);
    }
    out
}

/// Encoded size of a batch holding one update of `len` bytes (to budget a batch before writing it).
pub fn update_batch_entry_len(len: usize) -> usize {
    crate::lib0::var_bytes_len(len)
}

/// The updates of an [`RelayKind::Updates`] payload, borrowed. A truncated or malformed batch is
/// refused whole, so a receiver never applies half of one.
pub fn decode_update_batch(payload: &[u8]) -> Result<Vec<&[u8]>, crate::DecodeError> {
    let mut reader = crate::lib0::Reader::new(payload);
    let mut updates = Vec::new();
    while !reader.is_empty() {
        updates.push(reader.read_var_bytes()?);
    }
    Ok(updates)
}

/// First byte of a [`SyncRequest`] payload that asks the peers to ask back.
pub const SYNC_ASK_BACK: u8 = 1;
/// First byte of a [`SyncRequest`] payload that only wants an answer.
pub const SYNC_ANSWER_ONLY: u8 = 0;

/// The payload of a [`RelayKind::SyncRequest`] envelope: a flag byte, then the requester's encoded
/// state vector. The flag says whether the peers should also ask the requester for what *they*
/// lack (a node coming back from an outage has edits nobody else saw). Answers to a request never
/// ask back, so an exchange ends after one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRequest<'a> {
    pub ask_back: bool,
    pub state_vector: &'a [u8],
}

impl<'a> SyncRequest<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.state_vector.len() + 1);
        payload.push(if self.ask_back { SYNC_ASK_BACK } else { SYNC_ANSWER_ONLY });
        payload.extend_from_slice(self.state_vector);
        payload
    }

    /// Total, as nodes have always read it: only [`SYNC_ASK_BACK`] asks back, any other flag
    /// only wants an answer, and an empty payload asks for everything (an empty state vector).
    /// The state vector itself is checked where it is used, like any other remote input.
    pub fn decode(payload: &'a [u8]) -> Self {
        match payload.split_first() {
            Some((&flag, state_vector)) => Self { ask_back: flag == SYNC_ASK_BACK, state_vector },
            None => Self { ask_back: false, state_vector: &[] },
        }
    }
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
            RelayKind::Updates,
        ] {
            let e = envelope(kind);
            assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        }
    }

    #[test]
    fn update_batches_round_trip_and_refuse_truncation() {
        let updates: [&[u8]; 3] = [b"first", b"", &[7u8; 300]];
        let payload = encode_update_batch(updates);
        let expected: usize = updates.iter().map(|u| update_batch_entry_len(u.len())).sum();
        assert_eq!(payload.len(), expected);
        assert_eq!(decode_update_batch(&payload).unwrap(), updates.to_vec());
        assert!(decode_update_batch(&payload[..payload.len() - 1]).is_err());
        assert_eq!(decode_update_batch(&[]).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn sync_requests_keep_their_wire_bytes() {
        // A flag byte then the state vector as given (here `{ 7: 2 }` as Yjs encodes it: one
        // client, id 7, clock 2). Nodes of two versions must read each other's requests.
        let check = |ask_back, state_vector: &[u8], golden: &[u8]| {
            let request = SyncRequest { ask_back, state_vector };
            assert_eq!(request.encode(), golden);
            assert_eq!(SyncRequest::decode(golden), request);
        };
        check(true, &[1, 7, 2], &[1, 1, 7, 2]);
        check(false, &[1, 7, 2], &[0, 1, 7, 2]);
        check(true, &[], &[1]);
        check(false, &[], &[0]);
    }

    #[test]
    fn sync_requests_decode_whatever_arrives() {
        let check = |payload: &[u8], ask_back, state_vector: &[u8]| {
            assert_eq!(SyncRequest::decode(payload), SyncRequest { ask_back, state_vector }, "{payload:?}");
        };
        check(&[], false, &[]);
        check(&[2, 0], false, &[0]);
        check(&[255], false, &[]);
    }

    #[test]
    fn kinds_keep_their_wire_tags() {
        // bincode tags variants by index: a reordering would make nodes of two versions misread
        // each other, so the tags are pinned.
        let tag = |kind| Envelope { origin: 1, kind, room: String::new(), payload: vec![] }.encode()[2];
        assert_eq!(tag(RelayKind::Update), 0);
        assert_eq!(tag(RelayKind::Access), 5);
        assert_eq!(tag(RelayKind::Updates), 6);
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
