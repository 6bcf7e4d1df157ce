//! The Redis relay: one pub/sub channel per room (`{prefix}room:{id}`), payloads are versioned
//! bincode [`Envelope`]s. A node subscribes to a room's channel while it holds the room, and
//! always to its own channel (`{prefix}node:{id}`) for messages meant for it alone.
//!
//! Two tasks, so that neither waits on the other: the publisher drains everything queued and sends
//! it in one pipelined round trip (many envelopes per syscall under load), folding each room's
//! queued updates into one envelope ([`crate::coalesce`]); the subscriber owns a dedicated pub/sub
//! connection. The publisher's "tick" is the previous round trip (plus an optional batch delay):
//! an idle relay publishes an update at once, a busy one gathers more per publish.
//!
//! Redis going away never blocks a room: publishes that fail are retried, publishes that cannot
//! even be queued are dropped and counted, and once Redis answers again the node resyncs every
//! room (sync requests that ask back), so nothing any node applied meanwhile is missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use metrics::Gauge;
use parking_lot::Mutex;
use protocol::{Envelope, RelayKind};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audience::Audience;
use crate::coalesce::{MAX_COALESCED_BYTES, Outgoing, coalesce};
use crate::{Error, Incoming, NodeId, Relay};

/// Envelopes waiting to be published before new ones are dropped (and counted; resync repairs).
const PUBLISH_QUEUE: usize = 65_536;
/// Envelopes received but not yet applied; beyond it the subscriber waits for the receiver.
const INCOMING_QUEUE: usize = 65_536;
/// Most envelopes sent in one pipelined round trip.
const MAX_BATCH: usize = 512;
/// How often the subscriber checks its connection is alive.
const HEALTH_CHECK: Duration = Duration::from_secs(2);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How the publisher batches.
#[derive(Debug, Clone, Copy)]
pub struct PublishOptions {
    /// Fold a room's queued updates into one `Updates` envelope (off: one publish per update).
    pub coalesce: bool,
    /// Wait this long after the first queued message before publishing, to gather more. Zero
    /// adds no latency: batches then form only while the previous publish is in flight.
    pub batch_delay: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self { coalesce: true, batch_delay: Duration::ZERO }
    }
}

pub struct RedisRelay {
    node: NodeId,
    /// `{prefix}`: room channels are `{prefix}room:{id}`, node channels `{prefix}node:{id}`.
    channel_prefix: String,
    publish_tx: mpsc::Sender<Outgoing>,
    /// Rooms to (re)subscribe: the subscriber reads the wanted state from `subscriptions`.
    control_tx: mpsc::UnboundedSender<String>,
    /// room -> local subscription count
    subscriptions: Arc<Mutex<HashMap<String, usize>>>,
    connected: Arc<AtomicBool>,
    /// Set when an envelope could not even be queued; the publisher resyncs every room once it
    /// has caught up.
    dropped: Arc<AtomicBool>,
    /// Rooms no other node holds: their updates and awareness are not published.
    audience: Arc<Audience>,
}

impl RedisRelay {
    /// Connect and start the publisher and subscriber tasks on `tasks`; they stop on `cancel`.
    pub async fn start(
        client: redis::Client,
        prefix: &str,
        node: NodeId,
        options: PublishOptions,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<(Arc<Self>, mpsc::Receiver<Incoming>), Error> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let publisher = client.get_connection_manager_with_config(config).await?;
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let relay = Arc::new(Self {
            node,
            channel_prefix: prefix.to_owned(),
            publish_tx,
            control_tx,
            subscriptions: Arc::default(),
            connected: Arc::new(AtomicBool::new(false)),
            dropped: Arc::new(AtomicBool::new(false)),
            audience: Arc::default(),
        });
        tasks.spawn(
            Publisher {
                connection: publisher,
                node,
                channel_prefix: relay.channel_prefix.clone(),
                options,
                dropped: relay.dropped.clone(),
                incoming: incoming_tx.clone(),
                audience: relay.audience.clone(),
            }
            .run(publish_rx, cancel.clone()),
        );
        tasks.spawn(
            Subscriber {
                client,
                node,
                channel_prefix: relay.channel_prefix.clone(),
                subscriptions: relay.subscriptions.clone(),
                connected: relay.connected.clone(),
                connected_gauge: crate::metrics::connected_gauge(),
                incoming: incoming_tx,
                audience: relay.audience.clone(),
            }
            .run(control_rx, cancel),
        );
        Ok((relay, incoming_rx))
    }

    fn enqueue(&self, message: Outgoing) {
        if self.publish_tx.try_send(message).is_err() {
            crate::metrics::get().dropped.increment(1);
            self.dropped.store(true, Ordering::Release);
        }
    }
}

/// The pub/sub channel of `room`.
fn room_channel(prefix: &str, room: &str) -> String {
    format!("{prefix}room:{room}")
}

/// The pub/sub channel only `node` listens to.
fn node_channel(prefix: &str, node: NodeId) -> String {
    format!("{prefix}node:{node}")
}

impl Relay for RedisRelay {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn publish(&self, kind: RelayKind, room: &str, payload: &[u8]) {
        if matches!(kind, RelayKind::Update | RelayKind::Awareness) && self.audience.is_alone(room) {
            crate::metrics::get().unheard.increment(1);
            return;
        }
        self.enqueue(Outgoing { to: None, kind, room: room.to_owned(), payload: payload.to_vec() });
    }

    fn send_to_node(&self, node: NodeId, kind: RelayKind, room: &str, payload: &[u8]) {
        if node != self.node {
            self.enqueue(Outgoing { to: Some(node), kind, room: room.to_owned(), payload: payload.to_vec() });
        }
    }

    fn subscribe(&self, room: &str) {
        let first = {
            let mut subscriptions = self.subscriptions.lock();
            let count = subscriptions.entry(room.to_owned()).or_default();
            *count += 1;
            *count == 1
        };
        if first {
            let _ = self.control_tx.send(room.to_owned());
        }
    }

    fn unsubscribe(&self, room: &str) {
        let last = {
            let mut subscriptions = self.subscriptions.lock();
            match subscriptions.get_mut(room) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    subscriptions.remove(room);
                    true
                }
                None => false,
            }
        };
        if last {
            let _ = self.control_tx.send(room.to_owned());
        }
    }

    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn backend_name(&self) -> &'static str {
        "redis"
    }
}

/// Publishes everything queued, pipelined. A batch that fails is retried (with backoff) until
/// Redis takes it, so a short outage loses nothing that was queued; envelopes dropped because the
/// queue was full meanwhile are repaired by a resync once publishing works again.
struct Publisher {
    connection: ConnectionManager,
    node: NodeId,
    channel_prefix: String,
    options: PublishOptions,
    dropped: Arc<AtomicBool>,
    incoming: mpsc::Sender<Incoming>,
    audience: Arc<Audience>,
}

impl Publisher {
    async fn run(mut self, mut queue: mpsc::Receiver<Outgoing>, cancel: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = tokio::select! {
                n = queue.recv_many(&mut batch, MAX_BATCH) => n,
                () = cancel.cancelled() => return,
            };
            if received == 0 {
                return;
            }
            if !self.options.batch_delay.is_zero() && batch.len() < MAX_BATCH {
                tokio::time::sleep(self.options.batch_delay).await;
                while batch.len() < MAX_BATCH
                    && let Ok(message) = queue.try_recv()
                {
                    batch.push(message);
                }
            }
            let queued = batch.len();
            if self.options.coalesce {
                let stats = coalesce(&mut batch, MAX_COALESCED_BYTES);
                crate::metrics::get().coalesced.increment(stats.folded as u64);
            }
            let mut pipe = redis::pipe();
            // For each PUBLISH to a room's channel: the room and its `heard` token (see Audience).
            let mut probes = Vec::with_capacity(batch.len());
            for message in batch.drain(..) {
                let channel = match message.to {
                    Some(node) => node_channel(&self.channel_prefix, node),
                    None => room_channel(&self.channel_prefix, &message.room),
                };
                let envelope = Envelope {
                    origin: self.node,
                    kind: message.kind,
                    room: message.room,
                    payload: message.payload,
                };
                pipe.cmd("PUBLISH").arg(channel).arg(envelope.encode());
                probes.push(message.to.is_none().then(|| {
                    let token = self.audience.before_publish(&envelope.room);
                    (envelope.room, token)
                }));
            }
            let Some(receivers) = self.send(&pipe, &cancel).await else { return };
            for (probe, receivers) in probes.into_iter().zip(receivers) {
                if let Some((room, token)) = probe {
                    self.audience.published(&room, token, receivers);
                }
            }
            crate::metrics::get().queued.increment(queued as u64);
            crate::metrics::get().published.increment(pipe.len() as u64);
            if self.dropped.swap(false, Ordering::AcqRel) {
                let _ = self.incoming.send(Incoming::Resync).await;
            }
        }
    }

    /// Send `pipe` until Redis takes it, and return each PUBLISH's receiver count; `None` if
    /// cancelled first.
    async fn send(&mut self, pipe: &redis::Pipeline, cancel: &CancellationToken) -> Option<Vec<u64>> {
        let mut backoff = Duration::from_millis(50);
        let mut failed = false;
        loop {
            match pipe.query_async::<Vec<u64>>(&mut self.connection).await {
                Ok(receivers) => return Some(receivers),
                Err(error) if !failed => {
                    tracing::warn!(%error, "relay publish failed; retrying until Redis answers");
                    failed = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = cancel.cancelled() => return None,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

struct Subscriber {
    client: redis::Client,
    node: NodeId,
    channel_prefix: String,
    subscriptions: Arc<Mutex<HashMap<String, usize>>>,
    connected: Arc<AtomicBool>,
    connected_gauge: Gauge,
    incoming: mpsc::Sender<Incoming>,
    audience: Arc<Audience>,
}

impl Subscriber {
    async fn run(self, mut control: mpsc::UnboundedReceiver<String>, cancel: CancellationToken) {
        const FIRST_RETRY: Duration = Duration::from_millis(50);
        let mut backoff = FIRST_RETRY;
        loop {
            match self.session(&mut control, &cancel).await {
                Ok(Stop::Cancelled) => return,
                Ok(Stop::Lost) => backoff = FIRST_RETRY,
                Err(error) => tracing::debug!(%error, "relay subscriber: Redis unreachable"),
            }
            if self.connected.swap(false, Ordering::AcqRel) {
                tracing::warn!("relay lost Redis; serving local clients, will resync on return");
                self.connected_gauge.set(0.0);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's lifetime: subscribe to every wanted room, ask every room to resync (what
    /// was published while this node was away is gone), then relay messages and subscription
    /// changes until the connection fails.
    async fn session(
        &self,
        control: &mut mpsc::UnboundedReceiver<String>,
        cancel: &CancellationToken,
    ) -> Result<Stop, SessionError> {
        let pubsub = self.client.get_async_pubsub().await?;
        let (mut sink, mut stream) = pubsub.split();
        // Changes queued while disconnected are covered by subscribing to the wanted set now.
        while control.try_recv().is_ok() {}
        self.audience.forget_all();
        let rooms: Vec<String> = self.subscriptions.lock().keys().cloned().collect();
        let mut wanted: Vec<String> = rooms.iter().map(|room| self.channel(room)).collect();
        wanted.push(node_channel(&self.channel_prefix, self.node));
        sink.subscribe(wanted).await?;
        for room in &rooms {
            self.audience.subscribed(room);
        }
        self.connected.store(true, Ordering::Release);
        self.connected_gauge.set(1.0);
        let _ = self.incoming.send(Incoming::Resync).await;
        let mut health = tokio::time::interval(HEALTH_CHECK);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(Stop::Cancelled),
                room = control.recv() => {
                    let Some(room) = room else { return Ok(Stop::Cancelled) };
                    let wanted = self.subscriptions.lock().contains_key(&room);
                    if wanted {
                        sink.subscribe(self.channel(&room)).await?;
                        self.audience.subscribed(&room);
                        // Only now can this node hear answers: ask again (the room's own request,
                        // sent when it opened, may have been answered before we listened).
                        let _ = self.incoming.send(Incoming::Subscribed(room)).await;
                    } else {
                        self.audience.unsubscribed(&room);
                        sink.unsubscribe(self.channel(&room)).await?;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else { return Ok(Stop::Lost) };
                    self.deliver(message.get_payload_bytes()).await;
                }
                _ = health.tick() => {
                    // In subscribed mode the reply is an array, not "PONG": any reply will do.
                    tokio::time::timeout(HEALTH_CHECK, sink.ping::<redis::Value>()).await.map_err(|_| SessionError::Silent)??;
                }
            }
        }
    }

    /// Hand an envelope to the receiver, waiting if it is behind: Redis buffers for us, and if
    /// it gives up on a slow subscriber it disconnects it, which ends in a resync.
    async fn deliver(&self, bytes: &[u8]) {
        match Envelope::decode(bytes) {
            Ok(envelope) if envelope.origin == self.node => {}
            Ok(envelope) => {
                self.audience.heard_from(&envelope.room);
                let _ = self.incoming.send(Incoming::Envelope(envelope)).await;
            }
            Err(error) => {
                crate::metrics::get().rejected.increment(1);
                tracing::warn!(%error, "undecodable relay envelope");
            }
        }
    }

    fn channel(&self, room: &str) -> String {
        room_channel(&self.channel_prefix, room)
    }
}

enum Stop {
    Cancelled,
    Lost,
}

/// Why a subscriber connection failed.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer a health check within {HEALTH_CHECK:?}")]
    Silent,
}
