//! The one suite every [`Relay`] backend must pass: the contract written on the trait, checked
//! over real nodes of one backend. A backend's test calls [`relay_suite`] with a factory that
//! connects fresh nodes (the in-process hub in this crate's tests, a real Redis in
//! `tests/redis.rs`).
//!
//! Nothing here sleeps before asserting. Presence is awaited with a deadline; absence is checked
//! with a sentinel sent after the envelope that must not arrive, relying on the order the trait
//! promises (what one node sends another arrives in the order sent). Subscriptions are awaited
//! the way the trait says they take effect: [`Incoming::Subscribed`] where the backend reports
//! it, at once where it does not; a barrier (subscribing a room of its own and waiting for it)
//! makes sure a node's earlier subscription changes took effect.
//!
//! Compiled only with the `conformance` feature, which only test builds enable.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use protocol::{Envelope, RelayKind};
use tokio::sync::mpsc;
use tokio_util::sync::DropGuard;

use crate::{Incoming, NodeId, Relay};

/// Longest wait for anything a check expects.
const WAIT: Duration = Duration::from_secs(10);

/// One node of the backend under test, as a program sharing rooms would hold it.
pub struct Node {
    pub relay: Arc<dyn Relay>,
    pub incoming: mpsc::Receiver<Incoming>,
    /// Stops the node's tasks when the node is dropped (`None` for a backend without tasks).
    pub stop: Option<DropGuard>,
}

/// The backend under test.
pub struct Backend<F> {
    /// What [`Relay::backend_name`] must answer.
    pub name: &'static str,
    /// Whether the backend reports [`Incoming::Subscribed`] once a subscription takes effect.
    pub reports_subscribed: bool,
    /// Connects `n` fresh nodes to each other, isolated from the nodes of earlier calls.
    pub connect: F,
}

/// What the suite saw that only some backends produce, for their own tests to assert on.
#[derive(Debug, Default)]
pub struct Report {
    /// `Updates` envelopes received (updates a backend coalesced) in the ordering check.
    pub update_batches: usize,
}

/// Run every check on fresh nodes from `backend.connect`; panics with what broke the contract.
pub async fn relay_suite<F, Fut>(mut backend: Backend<F>) -> Report
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Vec<Node>>,
{
    let connect = &mut backend.connect;
    let mut suite = Suite { name: backend.name, reports_subscribed: backend.reports_subscribed, rooms: 0 };
    let peers = suite.connect(connect).await;
    suite.identity_and_connection(peers).await;
    let peers = suite.connect(connect).await;
    suite.publish_reaches_the_other_subscribers_only(peers).await;
    let peers = suite.connect(connect).await;
    suite.subscriptions_are_counted(peers).await;
    let peers = suite.connect(connect).await;
    suite.send_to_node_reaches_that_node_only(peers).await;
    let peers = suite.connect(connect).await;
    let update_batches = suite.a_nodes_envelopes_arrive_in_order(peers).await;
    let peers = suite.connect(connect).await;
    suite.subscribed_is_reported_as_the_backend_says(peers).await;
    Report { update_batches }
}

struct Suite {
    name: &'static str,
    reports_subscribed: bool,
    /// Rooms handed out so far, to keep every room of the run distinct.
    rooms: u64,
}

impl Suite {
    /// `N` fresh nodes.
    async fn connect<const N: usize, F, Fut>(&self, connect: &mut F) -> [Peer; N]
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Vec<Node>>,
    {
        let nodes = connect(N).await;
        let made = nodes.len();
        let nodes: [Node; N] = nodes
            .try_into()
            .unwrap_or_else(|_| panic!("{}: the factory made {made} nodes, not {N}", self.name));
        let mut i = 0;
        nodes.map(|node| {
            i += 1;
            Peer {
                label: format!("{} node {i}", self.name),
                node,
                reports_subscribed: self.reports_subscribed,
                subscriptions: HashMap::new(),
                barriers: 0,
            }
        })
    }

    fn room(&mut self, what: &str) -> String {
        self.rooms += 1;
        format!("conformance-{what}-{}", self.rooms)
    }

    async fn identity_and_connection(&mut self, peers: [Peer; 3]) {
        for peer in &peers {
            peer.wait_connected().await;
            assert_eq!(peer.relay().backend_name(), self.name, "{}: backend name", peer.label);
        }
        let ids: HashSet<NodeId> = peers.iter().map(Peer::id).collect();
        assert_eq!(ids.len(), peers.len(), "{}: node ids are not distinct: {ids:?}", self.name);
    }

    async fn publish_reaches_the_other_subscribers_only(&mut self, [mut a, mut b, mut c, mut d]: [Peer; 4]) {
        let room = self.room("publish");
        for peer in [&mut a, &mut b, &mut c] {
            peer.wait_connected().await;
            peer.subscribe(&room).await;
        }
        d.wait_connected().await;
        a.relay().publish(RelayKind::App, &room, b"hello");
        for peer in [&mut b, &mut c] {
            let got = peer.envelope("the publish").await;
            assert_eq!(got, envelope(a.id(), RelayKind::App, &room, b"hello"), "{}", peer.label);
        }
        // No echo: once b has it, b's answer reaches a after it would have.
        b.relay().publish(RelayKind::App, &room, b"sentinel");
        let got = a.envelope("b's sentinel").await;
        assert_eq!(
            got,
            envelope(b.id(), RelayKind::App, &room, b"sentinel"),
            "{}: its own publish came back",
            a.label
        );
        // A node not subscribed hears nothing of the room: a's next word to it comes first.
        a.relay().send_to_node(d.id(), RelayKind::App, &room, b"sentinel");
        let got = d.envelope("a's sentinel").await;
        assert_eq!(got, envelope(a.id(), RelayKind::App, &room, b"sentinel"), "{}: not subscribed", d.label);
    }

    async fn subscriptions_are_counted(&mut self, [a, mut b]: [Peer; 2]) {
        let room = self.room("counted");
        a.wait_connected().await;
        b.wait_connected().await;
        b.subscribe(&room).await;
        b.subscribe(&room).await;
        b.unsubscribe(&room);
        b.barrier().await;
        a.relay().publish(RelayKind::App, &room, b"still");
        let got = b.envelope("a publish after one of two unsubscribes").await;
        assert_eq!(got, envelope(a.id(), RelayKind::App, &room, b"still"), "{}", b.label);
        b.unsubscribe(&room);
        b.barrier().await;
        a.relay().publish(RelayKind::App, &room, b"gone");
        a.relay().send_to_node(b.id(), RelayKind::App, &room, b"sentinel");
        let got = b.envelope("a's sentinel").await;
        assert_eq!(
            got,
            envelope(a.id(), RelayKind::App, &room, b"sentinel"),
            "{}: still subscribed after the second unsubscribe",
            b.label
        );
    }

    async fn send_to_node_reaches_that_node_only(&mut self, [mut a, mut b, mut c]: [Peer; 3]) {
        let room = self.room("direct");
        for peer in [&mut a, &mut b, &mut c] {
            peer.wait_connected().await;
            peer.subscribe(&room).await;
        }
        // A room b does not hold, and one it does: it gets each once.
        a.relay().send_to_node(b.id(), RelayKind::Access, "conformance-not-held", b"");
        a.relay().send_to_node(b.id(), RelayKind::App, &room, b"direct");
        a.relay().publish(RelayKind::App, &room, b"sentinel");
        let sentinel = envelope(a.id(), RelayKind::App, &room, b"sentinel");
        assert_eq!(
            b.envelope("a room it does not hold").await,
            envelope(a.id(), RelayKind::Access, "conformance-not-held", b"")
        );
        assert_eq!(b.envelope("a room it holds").await, envelope(a.id(), RelayKind::App, &room, b"direct"));
        assert_eq!(b.envelope("a's sentinel").await, sentinel, "{}: a direct message came twice", b.label);
        assert_eq!(
            c.envelope("a's sentinel").await,
            sentinel,
            "{}: got a message sent to another node",
            c.label
        );
        // To itself: nothing. a's word to b, then b's to a, come after it would have.
        a.relay().send_to_node(a.id(), RelayKind::App, &room, b"to itself");
        a.relay().send_to_node(b.id(), RelayKind::App, &room, b"over to you");
        assert_eq!(b.envelope("a's message").await, envelope(a.id(), RelayKind::App, &room, b"over to you"));
        b.relay().send_to_node(a.id(), RelayKind::App, &room, b"sentinel");
        let got = a.envelope("b's sentinel").await;
        assert_eq!(got, envelope(b.id(), RelayKind::App, &room, b"sentinel"), "{}: sent to itself", a.label);
    }

    /// Returns how many `Updates` envelopes arrived.
    async fn a_nodes_envelopes_arrive_in_order(&mut self, [mut a, mut b]: [Peer; 2]) -> usize {
        let rooms = [self.room("order"), self.room("order")];
        for peer in [&mut a, &mut b] {
            peer.wait_connected().await;
            for room in &rooms {
                peer.subscribe(room).await;
            }
        }
        // Updates with other kinds between them, in two rooms, then a sentinel in each.
        // Payloads kept as text, so that a failure prints readably.
        let mut sent: HashMap<&str, Vec<(RelayKind, String)>> = HashMap::new();
        for i in 0..300u32 {
            let room = &rooms[(i % 3 == 0) as usize];
            let message = match i % 10 {
                4 => (RelayKind::Awareness, format!("awareness {i}")),
                7 => (RelayKind::App, format!("app {i}")),
                _ => (RelayKind::Update, format!("update {i}")),
            };
            a.relay().publish(message.0, room, message.1.as_bytes());
            sent.entry(room).or_default().push(message);
        }
        for room in &rooms {
            a.relay().publish(RelayKind::App, room, b"end");
        }
        let mut received: HashMap<String, Vec<(RelayKind, String)>> = HashMap::new();
        let text = |payload: &[u8]| String::from_utf8_lossy(payload).into_owned();
        let (mut ended, mut batches) = (0, 0);
        while ended < rooms.len() {
            let got = b.envelope("the next envelope of the sequence").await;
            assert_eq!(got.origin, a.id(), "{}: an envelope from nowhere", b.label);
            let into = received.entry(got.room.clone()).or_default();
            match got.kind {
                RelayKind::Updates => {
                    batches += 1;
                    let updates = protocol::decode_update_batch(&got.payload)
                        .unwrap_or_else(|error| panic!("{}: a malformed Updates batch: {error}", b.label));
                    into.extend(updates.into_iter().map(|update| (RelayKind::Update, text(update))));
                }
                RelayKind::App if got.payload == b"end" => ended += 1,
                kind => into.push((kind, text(&got.payload))),
            }
        }
        for room in &rooms {
            let (sent, received) = (&sent[room.as_str()], &received[room]);
            // Updates may move ahead of other kinds (folded into an earlier batch); each kind
            // keeps its own order, and nothing is lost or repeated.
            for kinds in [&[RelayKind::Update][..], &[RelayKind::Awareness, RelayKind::App]] {
                let only = |all: &[(RelayKind, String)]| {
                    all.iter().filter(|(kind, _)| kinds.contains(kind)).cloned().collect::<Vec<_>>()
                };
                assert_eq!(only(received), only(sent), "{}: order in {room}", b.label);
            }
        }
        batches
    }

    async fn subscribed_is_reported_as_the_backend_says(&mut self, [mut a, b]: [Peer; 2]) {
        let room = self.room("subscribed");
        a.wait_connected().await;
        b.wait_connected().await;
        a.relay().subscribe(&room);
        if self.reports_subscribed {
            match a.next("Subscribed").await {
                Incoming::Subscribed(got) => assert_eq!(got, room, "{}", a.label),
                other => panic!("{}: {other:?} instead of Subscribed({room})", a.label),
            }
        }
        b.relay().publish(RelayKind::App, &room, b"heard");
        match a.next("b's publish").await {
            Incoming::Envelope(got) => {
                assert_eq!(got, envelope(b.id(), RelayKind::App, &room, b"heard"), "{}", a.label);
            }
            other => panic!("{}: {other:?} (this backend reports no Subscribed)", a.label),
        }
    }
}

/// A node under test, with the subscription counts the suite gave it.
struct Peer {
    label: String,
    node: Node,
    reports_subscribed: bool,
    subscriptions: HashMap<String, usize>,
    barriers: u64,
}

impl Peer {
    fn relay(&self) -> &dyn Relay {
        self.node.relay.as_ref()
    }

    fn id(&self) -> NodeId {
        self.relay().node_id()
    }

    async fn wait_connected(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.relay().is_connected() {
            assert!(tokio::time::Instant::now() < deadline, "{}: not connected within {WAIT:?}", self.label);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Subscribe, and wait until the subscription takes effect.
    async fn subscribe(&mut self, room: &str) {
        self.relay().subscribe(room);
        let count = self.subscriptions.entry(room.to_owned()).or_default();
        *count += 1;
        if *count == 1 && self.reports_subscribed {
            loop {
                match self.next(&format!("Subscribed({room})")).await {
                    Incoming::Subscribed(got) if got == room => break,
                    Incoming::Subscribed(_) => {}
                    Incoming::Envelope(envelope) => {
                        panic!("{}: {envelope:?} while waiting for Subscribed({room})", self.label)
                    }
                    Incoming::Resync => unreachable!("next() skips resyncs"),
                }
            }
        }
    }

    fn unsubscribe(&mut self, room: &str) {
        self.relay().unsubscribe(room);
        if let Some(count) = self.subscriptions.get_mut(room) {
            *count -= 1;
        }
    }

    /// Wait until every subscription change made so far took effect (they take effect in order).
    async fn barrier(&mut self) {
        self.barriers += 1;
        let room = format!("conformance-barrier-{}-{}", self.id(), self.barriers);
        self.subscribe(&room).await;
        self.unsubscribe(&room);
    }

    /// The next thing the relay hands over, resyncs aside (a backend may report one at any time,
    /// e.g. when it connects).
    async fn next(&mut self, what: &str) -> Incoming {
        loop {
            match tokio::time::timeout(WAIT, self.node.incoming.recv()).await {
                Ok(Some(Incoming::Resync)) => {}
                Ok(Some(incoming)) => return incoming,
                Ok(None) => panic!("{}: the relay closed its channel while waiting for {what}", self.label),
                Err(_) => panic!("{}: nothing within {WAIT:?} while waiting for {what}", self.label),
            }
        }
    }

    /// The next envelope (subscription reports aside).
    async fn envelope(&mut self, what: &str) -> Envelope {
        loop {
            if let Incoming::Envelope(envelope) = self.next(what).await {
                return envelope;
            }
        }
    }
}

fn envelope(origin: NodeId, kind: RelayKind, room: &str, payload: &[u8]) -> Envelope {
    Envelope { origin, kind, room: room.to_owned(), payload: payload.to_vec() }
}
