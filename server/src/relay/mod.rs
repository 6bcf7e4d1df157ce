//! The relay between server nodes that share rooms. Each node publishes what its own clients do
//! to a room and receives what the other nodes' clients do, as versioned [`Envelope`]s.
//!
//! Today's implementation is [`local::LocalHub`], which connects the nodes of one process (a single
//! node by default, several in tests); the Redis pub/sub implementation plugs in behind the same
//! trait. Incoming envelopes arrive on the channel the relay was built with and are applied by
//! [`dispatch::run`].

pub mod dispatch;
pub mod local;

pub use protocol::{Envelope, RelayKind};

/// Identifies one server process among those sharing rooms.
pub type NodeId = u64;

pub trait Relay: Send + Sync + 'static {
    fn node_id(&self) -> NodeId;

    /// Tell the other nodes holding `room`. Never blocks and never fails the caller: a relay that
    /// is down loses nothing the room keeps, because nodes resync with sync requests.
    fn publish(&self, kind: RelayKind, room: &str, payload: &[u8]);

    /// Start receiving `room`'s envelopes. Counted: every `subscribe` needs its `unsubscribe`, so
    /// a room evicted and reopened at once stays subscribed.
    fn subscribe(&self, room: &str);

    fn unsubscribe(&self, room: &str);
}

/// A random node id: unique enough among the handful of processes sharing a relay.
pub fn new_node_id() -> NodeId {
    rand::random::<u64>() | 1
}
