//! The relay between server nodes that share rooms. Each node publishes what its own clients do
//! to a room and receives what the other nodes' clients do, as versioned [`Envelope`]s.
//!
//! Two implementations: [`local::LocalHub`] connects the nodes of one process (a single node by
//! default, several in tests); [`redis::RedisRelay`] (`REDIS_URL`) connects processes through one
//! Redis pub/sub channel per room, coalescing each room's queued updates ([`coalesce`]). Incoming
//! envelopes arrive on the channel the relay was built with and are applied by [`dispatch::run`].

mod audience;
pub mod coalesce;
pub mod dispatch;
pub mod local;
pub mod redis;

pub use protocol::{Envelope, RelayKind};

/// What a relay hands to [`dispatch::run`].
#[derive(Debug)]
pub enum Incoming {
    /// Another node's envelope.
    Envelope(Envelope),
    /// The relay may have lost envelopes (it was disconnected): every open room must resync.
    Resync,
    /// The relay now receives this room's envelopes: ask the other nodes for what it lacks.
    Subscribed(String),
}

/// First byte of a sync request's payload: whether the peers should also ask the requester for
/// what *they* lack (a node coming back from an outage has edits nobody else saw). Answers to a
/// request never ask back, so an exchange ends after one round.
pub const SYNC_ASK_BACK: u8 = 1;
pub const SYNC_ANSWER_ONLY: u8 = 0;

/// A sync request's payload: the flag, then the requester's encoded state vector.
pub fn sync_request(ask_back: bool, state_vector: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(state_vector.len() + 1);
    payload.push(if ask_back { SYNC_ASK_BACK } else { SYNC_ANSWER_ONLY });
    payload.extend_from_slice(state_vector);
    payload
}

/// Identifies one server process among those sharing rooms.
pub type NodeId = u64;

pub trait Relay: Send + Sync + 'static {
    fn node_id(&self) -> NodeId;

    /// Tell the other nodes holding `room`. Never blocks and never fails the caller: a relay that
    /// is down loses nothing the room keeps, because nodes resync with sync requests.
    fn publish(&self, kind: RelayKind, room: &str, payload: &[u8]);

    /// Tell one node about `room`, whether or not it holds the room (for a permission change that
    /// concerns one user, sent where [`crate::presence::Presence`] says their sockets are). Never
    /// blocks or fails the caller, like [`Relay::publish`].
    fn send_to_node(&self, node: NodeId, kind: RelayKind, room: &str, payload: &[u8]);

    /// Start receiving `room`'s envelopes. Counted: every `subscribe` needs its `unsubscribe`, so
    /// a room evicted and reopened at once stays subscribed.
    fn subscribe(&self, room: &str);

    fn unsubscribe(&self, room: &str);

    /// Whether the relay currently reaches the other nodes (for `/ready` and metrics).
    fn is_connected(&self) -> bool {
        true
    }

    /// `local` or `redis`.
    fn backend_name(&self) -> &'static str;
}

/// A random node id: unique enough among the handful of processes sharing a relay.
pub fn new_node_id() -> NodeId {
    rand::random::<u64>() | 1
}
