//! The fan-out in rounds: what a room sends its clients is written by one thread at a time, outside
//! the room's lock, and what arrives meanwhile is merged into the next round.
//!
//! An idle room pays nothing for this: whoever queues into it when no round is being written
//! becomes the writer and writes at once, right after releasing the lock. Under load, a round of
//! writes to every client takes long enough for more updates to be applied (under the lock, by
//! other threads) and queued; the writer then sends all of them as one round: every document
//! update merged into ONE sync update (Yjs updates merge into one valid update), every awareness
//! update into ONE awareness message (per client id the entry that wins), app messages in their
//! order, and each client all of its frames in ONE `writev`. A delivery then costs a fraction of
//! a syscall, and the harder a room is pushed, the bigger its rounds.
//!
//! Guarantees kept:
//! - Per client order: one writer at a time, rounds in the order queued; a round's merged update
//!   holds its updates in the order the document applied them.
//! - Nothing is skipped: the writer goes on until it finds nothing queued, and clears the writing
//!   mark under the same lock that queueing takes, so no item waits for a writer that left.
//! - A client that joins while a round is queued is sent it too: its own sync already holds those
//!   updates (they were applied before it joined), and applying an update twice changes nothing.
//! - The 1013 rule: each frame of a round counts against the client's queue limit.
//! - The sender does not get its own update back, unless a merged update also carries another
//!   client's (then it gets the whole: Yjs ignores what it already has, as with y-websocket's
//!   server, which echoes every update).

use bytes::Bytes;
use protocol::MessageKind;

use super::{ConnId, Peer, frames};
use crate::socket::wire::FrameHeader;
use crate::telemetry::Metrics;

/// Most items one round takes; what queued past them waits for the next round, and senders wait
/// while that much waits (see [`Rounds::backlogged`]). Bounds a round's merge and frame sizes and
/// the memory a room's queue can take.
pub(super) const ROUND_MAX_ITEMS: usize = 1024;

/// Who a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Audience {
    /// Every client but this one (an update's sender); every client when `None`.
    AllBut(Option<ConnId>),
    /// Every client that asked for app messages.
    App,
    /// One client that asked for app messages.
    AppClient(ConnId),
}

impl Audience {
    fn includes(self, peer: &Peer) -> bool {
        match self {
            Audience::AllBut(origin) => origin != Some(peer.id),
            Audience::App => peer.app,
            Audience::AppClient(conn) => peer.app && peer.id == conn,
        }
    }
}

/// Something a room sends its clients, queued for the next round.
pub(super) enum Item {
    /// A document update as a sync-update frame, whose last `update_len` bytes are the update.
    Update { frame: Bytes, update_len: usize, origin: Option<ConnId> },
    /// An awareness frame, whose last `payload_len` bytes are the awareness update.
    Awareness { frame: Bytes, payload_len: usize },
    /// Any other frame, sent as it is, in its order among the others.
    Other { frame: Bytes, kind: MessageKind, to: Audience },
}

impl Item {
    pub fn update(frame: Bytes, update_len: usize, origin: Option<ConnId>) -> Self {
        debug_assert!(update_len <= frame.len());
        Item::Update { frame, update_len, origin }
    }

    pub fn awareness(frame: Bytes, payload_len: usize) -> Self {
        debug_assert!(payload_len <= frame.len());
        Item::Awareness { frame, payload_len }
    }
}

/// What waits for the next round, and whether a writer is at work.
#[derive(Default)]
pub(super) struct Rounds {
    queued: Vec<Item>,
    writing: bool,
}

impl Rounds {
    /// Queue `item`. True when no round was being written: the caller is now the writer and must
    /// call [`super::Room::write_rounds`] once it has released the room's lock.
    #[must_use]
    pub fn push(&mut self, item: Item) -> bool {
        self.queued.push(item);
        !std::mem::replace(&mut self.writing, true)
    }

    /// The writer takes what queued since its last round, up to [`ROUND_MAX_ITEMS`]; `None` when
    /// nothing did, and then it is the writer no more.
    pub fn take(&mut self) -> Option<Vec<Item>> {
        if self.queued.is_empty() {
            self.writing = false;
            return None;
        }
        if self.queued.len() <= ROUND_MAX_ITEMS {
            return Some(std::mem::take(&mut self.queued));
        }
        Some(self.queued.drain(..ROUND_MAX_ITEMS).collect())
    }

    /// A whole round's worth waits: senders should wait for the writer (see
    /// [`super::Room::round_backlog`]) rather than queue without bound.
    pub fn backlogged(&self) -> bool {
        self.queued.len() >= ROUND_MAX_ITEMS
    }
}

/// One frame of a round.
pub(super) struct Out {
    header: FrameHeader,
    frame: Bytes,
    kind: MessageKind,
    to: Audience,
}

impl Out {
    fn new(frame: Bytes, kind: MessageKind, to: Audience) -> Self {
        Self { header: FrameHeader::binary(frame.len()), frame, kind, to }
    }

    fn count(&self, delivered: u64) {
        let metrics = Metrics::get();
        metrics.messages_out(self.kind, delivered);
        metrics.bytes_out.increment(delivered * self.frame.len() as u64);
    }
}

/// The frames of a round: the updates merged into one, then the awareness updates merged into
/// one, then the other frames in their order. A merge that fails (it never should: every input
/// was accepted by the document or the awareness registry) sends its inputs one by one instead.
pub(super) fn build(items: Vec<Item>) -> Vec<Out> {
    let mut updates = Vec::new();
    let mut awareness = Vec::new();
    let mut others = Vec::new();
    for item in items {
        match item {
            Item::Update { frame, update_len, origin } => updates.push((frame, update_len, origin)),
            Item::Awareness { frame, payload_len } => awareness.push((frame, payload_len)),
            Item::Other { frame, kind, to } => others.push(Out::new(frame, kind, to)),
        }
    }
    let mut outs = Vec::with_capacity(2 + others.len());
    merge_updates(&updates, &mut outs);
    merge_awareness(&awareness, &mut outs);
    outs.extend(others);
    outs
}

/// Queued updates as (sync-update frame, update length, sender).
type QueuedUpdate = (Bytes, usize, Option<ConnId>);

fn merge_updates(updates: &[QueuedUpdate], outs: &mut Vec<Out>) {
    let one = |(frame, _, origin): &QueuedUpdate| {
        Out::new(frame.clone(), MessageKind::SyncUpdate, Audience::AllBut(*origin))
    };
    match updates {
        [] => return,
        [update] => return outs.push(one(update)),
        _ => {}
    }
    let payloads = updates.iter().map(|(frame, len, _)| &frame[frame.len() - len..]);
    match crdt::merge_updates(payloads) {
        Ok(merged) => {
            Metrics::get().round_merged(MessageKind::SyncUpdate, updates.len() as u64);
            let first = updates[0].2;
            let origin = first.filter(|_| updates.iter().all(|(_, _, origin)| *origin == first));
            let frame = frames::sync_update_frame(&merged);
            outs.push(Out::new(frame, MessageKind::SyncUpdate, Audience::AllBut(origin)));
        }
        Err(error) => {
            tracing::warn!(%error, "merging a round's updates failed: sending them one by one");
            outs.extend(updates.iter().map(one));
        }
    }
}

/// Queued awareness updates as (awareness frame, payload length).
fn merge_awareness(updates: &[(Bytes, usize)], outs: &mut Vec<Out>) {
    let one =
        |(frame, _): &(Bytes, usize)| Out::new(frame.clone(), MessageKind::Awareness, Audience::AllBut(None));
    match updates {
        [] => {}
        [update] => outs.push(one(update)),
        many => {
            let payloads = many.iter().map(|(frame, len)| &frame[frame.len() - len..]);
            match protocol::merge_awareness_updates(payloads) {
                Ok(merged) => {
                    Metrics::get().round_merged(MessageKind::Awareness, many.len() as u64);
                    let frame = frames::awareness_frame(&merged);
                    outs.push(Out::new(frame, MessageKind::Awareness, Audience::AllBut(None)));
                }
                Err(error) => {
                    tracing::warn!(%error, "merging a round's awareness failed: sending them one by one");
                    outs.extend(many.iter().map(one));
                }
            }
        }
    }
}

/// Write a round to `peers`: each client its frames in one `writev`. Returns the clients the room
/// must forget (cut as too slow, or gone).
pub(super) fn write(outs: &[Out], peers: &[Peer]) -> Vec<ConnId> {
    let mut forget = Vec::new();
    if let [out] = outs {
        // The common case, and the whole of an idle room's: one frame, one header for all.
        let mut delivered = 0;
        for peer in peers.iter().filter(|peer| out.to.includes(peer)) {
            if peer.send(&out.header, &out.frame) {
                delivered += 1;
            } else {
                forget.push(peer.id);
            }
        }
        out.count(delivered);
        return forget;
    }
    let mut delivered = vec![0u64; outs.len()];
    let mut mine: Vec<(&FrameHeader, &Bytes)> = Vec::with_capacity(outs.len());
    let mut which: Vec<usize> = Vec::with_capacity(outs.len());
    for peer in peers {
        mine.clear();
        which.clear();
        for (i, out) in outs.iter().enumerate().filter(|(_, out)| out.to.includes(peer)) {
            mine.push((&out.header, &out.frame));
            which.push(i);
        }
        if mine.is_empty() {
            continue;
        }
        if peer.send_frames(&mine) {
            which.iter().for_each(|&i| delivered[i] += 1);
        } else {
            forget.push(peer.id);
        }
    }
    for (out, delivered) in outs.iter().zip(delivered) {
        out.count(delivered);
    }
    forget
}

#[cfg(test)]
mod tests;
