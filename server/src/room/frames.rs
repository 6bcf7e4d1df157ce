//! Encoded frames a room hands to many clients, cached until the room changes, so concurrent
//! joiners share one encoding of the state instead of each recomputing it.

use bytes::Bytes;
use crdt::{AwarenessRegistry, RoomDoc};
use protocol::{Message, SyncMessage};

/// lib0 encoding of an empty state vector: a client that has nothing.
const EMPTY_STATE_VECTOR: &[u8] = &[0];

#[derive(Default)]
pub(super) struct FrameCache {
    step1: Option<Bytes>,
    full_state: Option<Bytes>,
    awareness: Option<Option<Bytes>>,
}

impl FrameCache {
    pub fn invalidate_doc(&mut self) {
        self.step1 = None;
        self.full_state = None;
    }

    pub fn invalidate_awareness(&mut self) {
        self.awareness = None;
    }

    pub fn step1(&mut self, doc: &RoomDoc) -> Result<Bytes, crdt::Error> {
        if let Some(frame) = &self.step1 {
            return Ok(frame.clone());
        }
        let frame = encode(Message::Sync(SyncMessage::Step1(&doc.state_vector()?)));
        Ok(self.step1.insert(frame).clone())
    }

    /// What a client with `state_vector` lacks. Only what the document integrated: updates the
    /// room keeps waiting for their dependencies reach clients once they integrate, so a client
    /// that joins later holds exactly what one connected throughout holds.
    pub fn step2(&mut self, doc: &RoomDoc, state_vector: &[u8]) -> Result<Bytes, crdt::Error> {
        if state_vector == EMPTY_STATE_VECTOR {
            if let Some(frame) = &self.full_state {
                return Ok(frame.clone());
            }
            let frame = encode(Message::Sync(SyncMessage::Step2(&doc.diff(EMPTY_STATE_VECTOR)?)));
            return Ok(self.full_state.insert(frame).clone());
        }
        let diff = doc.diff(state_vector)?;
        Ok(encode(Message::Sync(SyncMessage::Step2(&diff))))
    }

    pub fn awareness(&mut self, registry: &mut AwarenessRegistry) -> Option<Bytes> {
        self.awareness
            .get_or_insert_with(|| registry.encode_all().map(|payload| awareness_frame(&payload)))
            .clone()
    }
}

pub(super) fn awareness_frame(payload: &[u8]) -> Bytes {
    encode(Message::Awareness(payload))
}

pub(super) fn sync_update_frame(update: &[u8]) -> Bytes {
    encode(Message::Sync(SyncMessage::Update(update)))
}

pub(crate) fn encode(message: Message<'_>) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_joiners_share_one_encoded_state_until_the_document_changes() {
        let doc = RoomDoc::new(crdt::Limits::default());
        let mut cache = FrameCache::default();
        let first = cache.step2(&doc, EMPTY_STATE_VECTOR).unwrap();
        let second = cache.step2(&doc, EMPTY_STATE_VECTOR).unwrap();
        assert_eq!(first.as_ptr(), second.as_ptr(), "the same bytes, not a second encoding");
        cache.invalidate_doc();
        let third = cache.step2(&doc, EMPTY_STATE_VECTOR).unwrap();
        assert_ne!(first.as_ptr(), third.as_ptr(), "re-encoded after a change");
        assert_eq!(first, third);
    }
}
