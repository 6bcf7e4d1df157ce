//! The in-process relay: nodes in one process share rooms through a hub, with the same semantics
//! as a pub/sub broker (counted subscriptions per node and room, no echo to the origin).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use protocol::{Envelope, RelayKind};
use tokio::sync::mpsc;

use crate::{Incoming, NodeId, Relay};

/// Envelopes a node may have queued before the hub drops new ones for it (and counts the drop:
/// the room's sync requests repair the gap, as after a broker outage).
const NODE_QUEUE: usize = 65_536;

#[derive(Clone, Default)]
pub struct LocalHub {
    inner: Arc<RwLock<HubState>>,
}

#[derive(Default)]
struct HubState {
    nodes: HashMap<NodeId, mpsc::Sender<Incoming>>,
    /// room -> node -> subscription count
    rooms: HashMap<String, HashMap<NodeId, usize>>,
}

impl LocalHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connect a node: its relay, and the channel its incoming envelopes arrive on.
    pub fn join(&self, node: NodeId) -> (Arc<LocalRelay>, mpsc::Receiver<Incoming>) {
        let (tx, rx) = mpsc::channel(NODE_QUEUE);
        self.inner.write().nodes.insert(node, tx);
        (Arc::new(LocalRelay { node, hub: self.clone() }), rx)
    }
}

pub struct LocalRelay {
    node: NodeId,
    hub: LocalHub,
}

impl Relay for LocalRelay {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn publish(&self, kind: RelayKind, room: &str, payload: &[u8]) {
        let state = self.hub.inner.read();
        let Some(subscribers) = state.rooms.get(room) else { return };
        // A single node (the default) has no one to tell: no envelope is even built.
        let mut targets = subscribers.keys().filter(|&&n| n != self.node).peekable();
        if targets.peek().is_none() {
            return;
        }
        let envelope = Envelope { origin: self.node, kind, room: room.to_owned(), payload: payload.to_vec() };
        for node in targets {
            if let Some(tx) = state.nodes.get(node)
                && tx.try_send(Incoming::Envelope(envelope.clone())).is_err()
            {
                crate::metrics::get().dropped.increment(1);
            }
        }
    }

    fn send_to_node(&self, node: NodeId, kind: RelayKind, room: &str, payload: &[u8]) {
        if node == self.node {
            return;
        }
        let envelope = Envelope { origin: self.node, kind, room: room.to_owned(), payload: payload.to_vec() };
        if let Some(tx) = self.hub.inner.read().nodes.get(&node)
            && tx.try_send(Incoming::Envelope(envelope)).is_err()
        {
            crate::metrics::get().dropped.increment(1);
        }
    }

    fn backend_name(&self) -> &'static str {
        "local"
    }

    fn subscribe(&self, room: &str) {
        *self.hub.inner.write().rooms.entry(room.to_owned()).or_default().entry(self.node).or_default() += 1;
    }

    fn unsubscribe(&self, room: &str) {
        let mut state = self.hub.inner.write();
        let Some(nodes) = state.rooms.get_mut(room) else { return };
        if let Some(count) = nodes.get_mut(&self.node) {
            *count -= 1;
            if *count == 0 {
                nodes.remove(&self.node);
            }
        }
        if nodes.is_empty() {
            state.rooms.remove(room);
        }
    }
}

impl Drop for LocalRelay {
    fn drop(&mut self) {
        let mut state = self.hub.inner.write();
        state.nodes.remove(&self.node);
        for nodes in state.rooms.values_mut() {
            nodes.remove(&self.node);
        }
        state.rooms.retain(|_, nodes| !nodes.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_to_other_subscribed_nodes_only() {
        let hub = LocalHub::new();
        let (a, mut a_rx) = hub.join(1);
        let (b, mut b_rx) = hub.join(2);
        let (_c, mut c_rx) = hub.join(3);
        a.subscribe("r");
        b.subscribe("r");
        a.publish(RelayKind::Update, "r", b"u");
        let Incoming::Envelope(got) = b_rx.recv().await.unwrap() else { panic!("an envelope") };
        assert_eq!(
            (got.origin, got.kind, got.room.as_str(), got.payload.as_slice()),
            (1, RelayKind::Update, "r", &b"u"[..])
        );
        assert!(a_rx.try_recv().is_err(), "no echo to the origin");
        assert!(c_rx.try_recv().is_err(), "nothing for a node not subscribed to the room");
    }

    #[tokio::test]
    async fn send_to_node_reaches_that_node_only() {
        let hub = LocalHub::new();
        let (a, mut a_rx) = hub.join(1);
        let (_b, mut b_rx) = hub.join(2);
        let (_c, mut c_rx) = hub.join(3);
        a.send_to_node(2, RelayKind::Access, "r", b"");
        let Incoming::Envelope(got) = b_rx.recv().await.unwrap() else { panic!("an envelope") };
        assert_eq!((got.origin, got.kind, got.room.as_str()), (1, RelayKind::Access, "r"));
        a.send_to_node(1, RelayKind::Access, "r", b"");
        assert!(a_rx.try_recv().is_err() && c_rx.try_recv().is_err(), "no one else, not even itself");
    }

    #[tokio::test]
    async fn subscriptions_are_counted() {
        let hub = LocalHub::new();
        let (a, _a_rx) = hub.join(1);
        let (b, mut b_rx) = hub.join(2);
        b.subscribe("r");
        b.subscribe("r");
        b.unsubscribe("r");
        a.publish(RelayKind::Awareness, "r", b"x");
        assert!(b_rx.recv().await.is_some(), "still subscribed after one of two unsubscribes");
        b.unsubscribe("r");
        a.publish(RelayKind::Awareness, "r", b"y");
        assert!(b_rx.try_recv().is_err(), "unsubscribed after the second");
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        use crate::conformance::{Backend, Node, relay_suite};
        let connect = |n| async move {
            let hub = LocalHub::new();
            (0..n)
                .map(|_| {
                    let (relay, incoming) = hub.join(crate::new_node_id());
                    Node { relay, incoming, stop: None }
                })
                .collect()
        };
        relay_suite(Backend { name: "local", reports_subscribed: false, connect }).await;
    }
}
