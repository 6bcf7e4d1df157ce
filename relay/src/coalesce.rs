//! Coalescing for the Redis relay: the updates of one room that are waiting to be published
//! together go out as one `Updates` envelope, so under load one Redis publish (and one message to
//! every other node) carries many updates.
//!
//! Pure logic: it reorders nothing that matters. Yjs updates commute, so moving a room's later
//! updates up to the position of its first one changes no document; messages of other kinds and
//! other rooms keep their order.

use std::collections::HashMap;

use protocol::{RelayKind, encode_update_batch, update_batch_entry_len};

/// Largest payload a coalesced envelope is allowed to grow to; an update that would take it past
/// this starts a new one. Keeps one envelope from holding up the others on a Redis connection.
pub const MAX_COALESCED_BYTES: usize = 1024 * 1024;

/// One message waiting for the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// One node's own channel, or (`None`) the room's channel.
    pub to: Option<crate::NodeId>,
    pub kind: RelayKind,
    pub room: String,
    pub payload: Vec<u8>,
}

/// What [`coalesce`] did, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Coalesced {
    /// Updates that went out inside an `Updates` envelope rather than alone.
    pub folded: usize,
}

/// Replace runs of `Update`s of the same room in `batch` by `Updates` envelopes of at most
/// `max_bytes` payload each (a lone update stays an `Update`). Order is kept per room for updates
/// and for everything else.
pub fn coalesce(batch: &mut Vec<Outgoing>, max_bytes: usize) -> Coalesced {
    // Index in `out` of the group each room's updates are currently joining.
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::with_capacity(batch.len());
    for message in batch.drain(..) {
        if message.kind != RelayKind::Update || message.to.is_some() {
            groups.push(Group::Single(message));
            continue;
        }
        let entry = update_batch_entry_len(message.payload.len());
        if entry > max_bytes {
            // Too big to share an envelope: alone, leaving the room's open group open.
            groups.push(Group::Single(message));
            continue;
        }
        if let Some(&at) = open.get(&message.room)
            && let Group::Updates { bytes, updates, .. } = &mut groups[at]
            && *bytes + entry <= max_bytes
        {
            *bytes += entry;
            updates.push(message.payload);
            continue;
        }
        open.insert(message.room.clone(), groups.len());
        groups.push(Group::Updates { room: message.room, bytes: entry, updates: vec![message.payload] });
    }
    let mut stats = Coalesced::default();
    batch.extend(groups.into_iter().map(|group| match group {
        Group::Single(message) => message,
        Group::Updates { room, mut updates, .. } if updates.len() == 1 => {
            Outgoing { to: None, kind: RelayKind::Update, room, payload: updates.pop().unwrap_or_default() }
        }
        Group::Updates { room, updates, .. } => {
            stats.folded += updates.len();
            let payload = encode_update_batch(updates.iter().map(Vec::as_slice));
            Outgoing { to: None, kind: RelayKind::Updates, room, payload }
        }
    }));
    stats
}

enum Group {
    Single(Outgoing),
    Updates { room: String, bytes: usize, updates: Vec<Vec<u8>> },
}

#[cfg(test)]
mod tests {
    use protocol::decode_update_batch;

    use super::*;

    fn message(kind: RelayKind, room: &str, payload: &[u8]) -> Outgoing {
        Outgoing { to: None, kind, room: room.into(), payload: payload.to_vec() }
    }

    fn update(room: &str, payload: &[u8]) -> Outgoing {
        message(RelayKind::Update, room, payload)
    }

    #[test]
    fn a_rooms_updates_become_one_envelope_in_order() {
        let mut batch = vec![
            update("a", b"1"),
            update("b", b"x"),
            message(RelayKind::Awareness, "a", b"aw"),
            update("a", b"2"),
            update("a", b"3"),
        ];
        let stats = coalesce(&mut batch, MAX_COALESCED_BYTES);
        assert_eq!(stats.folded, 3);
        assert_eq!(batch.len(), 3);
        assert_eq!((batch[0].kind, batch[0].room.as_str()), (RelayKind::Updates, "a"));
        assert_eq!(decode_update_batch(&batch[0].payload).unwrap(), vec![b"1", b"2", b"3"]);
        assert_eq!(batch[1], update("b", b"x"), "a lone update stays an Update");
        assert_eq!(batch[2], message(RelayKind::Awareness, "a", b"aw"));
    }

    #[test]
    fn other_kinds_are_left_alone() {
        let original = vec![
            message(RelayKind::SyncRequest, "a", b"sv"),
            message(RelayKind::SyncReply, "a", b"d1"),
            message(RelayKind::SyncReply, "a", b"d2"),
            message(RelayKind::Access, "a", b""),
        ];
        let mut batch = original.clone();
        assert_eq!(coalesce(&mut batch, MAX_COALESCED_BYTES), Coalesced::default());
        assert_eq!(batch, original);
    }

    #[test]
    fn a_full_envelope_starts_the_next_one() {
        let big = vec![9u8; 600];
        let mut batch = vec![update("a", &big), update("a", &big), update("a", &big), update("a", b"s")];
        // Two 600-byte updates (602 bytes each with their length) fit in 1206 but not three.
        coalesce(&mut batch, 1206);
        assert_eq!(batch.len(), 2);
        assert_eq!(decode_update_batch(&batch[0].payload).unwrap().len(), 2);
        assert_eq!(decode_update_batch(&batch[1].payload).unwrap(), vec![&big[..], b"s"]);
    }

    #[test]
    fn an_update_larger_than_the_limit_goes_alone() {
        let huge = vec![1u8; 2000];
        let mut batch = vec![update("a", b"1"), update("a", &huge), update("a", b"2")];
        coalesce(&mut batch, 1000);
        assert_eq!(batch.len(), 2);
        assert_eq!(decode_update_batch(&batch[0].payload).unwrap(), vec![b"1", b"2"]);
        assert_eq!(batch[1], update("a", &huge));
    }
}
