//! The relay between server nodes that share rooms. Each node publishes what its own clients do
//! to a room and receives what the other nodes' clients do, as versioned [`Envelope`]s.
//!
//! Two implementations: [`local::LocalHub`] connects the nodes of one process (a single node by
//! default, several in tests); [`redis::RedisRelay`] (`REDIS_URL`) connects processes through one
//! Redis pub/sub channel per room, coalescing each room's queued updates ([`coalesce`]). Incoming
//! envelopes arrive, as [`Incoming`], on the channel the relay was built with; applying them is
//! the receiving program's business (the server's `cluster` module).
//!
//! Its own crate so that any process can reach the rooms of every node (a worker streaming into
//! a room must not depend on the server): it knows rooms only by name and payloads only as bytes.
//! Both backends pass the one suite in `conformance` (feature `conformance`, tests only).

mod audience;
pub mod coalesce;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod local;
pub mod metrics;
pub mod redis;

pub use local::LocalHub;
pub use protocol::{Envelope, RelayKind};

/// What a relay hands to the program that applies other nodes' envelopes.
#[derive(Debug)]
pub enum Incoming {
    /// Another node's envelope.
    Envelope(Envelope),
    /// The relay may have lost envelopes (it was disconnected): every open room must resync.
    Resync,
    /// The relay now receives this room's envelopes: ask the other nodes for what it lacks.
    Subscribed(String),
}

/// Identifies one server process among those sharing rooms.
pub type NodeId = u64;

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Redis(#[from] ::redis::RedisError),
}

/// How one node reaches the others. The contract every backend keeps (checked by the
/// `conformance` suite):
///
/// - A publish reaches every *other* node subscribed to the room, never the publisher itself nor
///   a node that is not subscribed.
/// - Envelopes from one node reach another in the order they were sent (to a room or to the
///   node), except that a backend may deliver a room's updates earlier than the messages queued
///   between them, folded into one [`RelayKind::Updates`] envelope (Yjs updates commute).
/// - Subscription changes of one node take effect in the order they are made. A backend whose
///   subscriptions take effect later (a broker) reports [`Incoming::Subscribed`] once a room's
///   first subscription does, while connected (one made while disconnected is covered by the
///   [`Incoming::Resync`] that follows the reconnection); only from then on is the room's traffic
///   heard. A backend whose subscriptions take effect at once ([`LocalHub`]) reports nothing.
///   After the last `unsubscribe`, envelopes already on their way may still arrive: the receiver
///   ignores rooms it no longer holds.
/// - Delivery is best-effort: nothing ever blocks or fails the caller. What a backend drops (a
///   full queue, a broker outage) is counted and repaired by the rooms' sync requests; a backend
///   that knows it lost envelopes reports [`Incoming::Resync`] so that every room asks at once.
pub trait Relay: Send + Sync + 'static {
    fn node_id(&self) -> NodeId;

    /// Tell the other nodes holding `room`. Never blocks and never fails the caller: a relay that
    /// is down loses nothing the room keeps, because nodes resync with sync requests. A backend
    /// may skip updates and awareness of a room no other node holds, until another node speaks
    /// in it (a node that opens a room announces itself with a sync request).
    fn publish(&self, kind: RelayKind, room: &str, payload: &[u8]);

    /// Tell one node about `room`, whether or not it holds the room (e.g. a permission change
    /// that concerns one user, sent to the nodes holding that user's sockets). Sending to itself
    /// does nothing. Never blocks or fails the caller, like [`Relay::publish`].
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
