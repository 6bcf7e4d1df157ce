//! The RabbitMQ backend of the job queue (lapin 4): [`AmqpQueue`] publishes, [`AmqpConsumer`]
//! yields deliveries to a [`Dispatcher`](crate::Dispatcher), [`DeadLetterQueue`] reads the dead
//! letters back. Built to RabbitMQ's reliability guide:
//!
//! - **Topology** (declared by [`Topology::declare`], idempotent; names from a prefix, default
//!   `codecrafter`): `{prefix}.jobs`, a durable quorum queue (replicated, fsynced before a confirm)
//!   with `x-delivery-limit`, dead-lettering at-least-once into the fanout exchange
//!   `{prefix}.jobs.dlx`, bound to the durable quorum queue `{prefix}.jobs.dead`.
//! - **Producer**: one channel in confirm mode; every job is a persistent message (delivery mode
//!   2) published `mandatory` to the jobs queue; `publish` returns once the broker confirmed it.
//!   Concurrent `publish` calls pipeline on the channel (the confirms of many in flight arrive
//!   together), which is what makes confirms fast: one by one ~2k msgs/s, in flight together
//!   ~20k (STACK-NOTES). `flush` waits until no publish is in flight: every job is then in the
//!   broker, durably; whether a worker has handled it, a broker cannot tell its publisher (a
//!   process that consumes too can wait on [`Settled`]).
//! - **Back-pressure** (`max_length`): the jobs queue gets `x-max-length` with
//!   `x-overflow = reject-publish`; a publish the broker refuses (a nack) is sent again after a
//!   short backoff, so `publish` waits for room and never drops. Without a length limit the broker's
//!   memory and disk alarms block publishers instead (the same waiting, at the broker's pace).
//! - **Consumer**: manual acks, prefetch `prefetch`. Ack = `basic.ack`; requeue =
//!   `basic.nack(requeue)` (a quorum queue hands returned messages out again before the others,
//!   and counts them: `x-delivery-count` + 1 is [`Delivery::delivery_count`](crate::Delivery));
//!   dead letter = the message published to the dead-letter exchange with its reason in the
//!   `x-codecrafter-reason` header, confirmed, then acked (at least once: a crash in between
//!   leaves a duplicate dead letter, never none). A message that is not a job this build decodes is
//!   dead-lettered the same way at once, never handed to the dispatcher. A message requeued more
//!   than `delivery_limit` times (a job that kills its worker every time) is dead-lettered by the
//!   broker itself, its reason in `x-death`.
//!
//! **Per-room order.** One queue with one consumer delivers in publish order (per publisher), and
//! the dispatcher handles a batch in order, so each room's jobs are handled in publish order; a
//! requeue (on shutdown) puts the jobs back in front, in order. Several consumers on one queue
//! would break that: the broker deals consecutive jobs of one room to different workers, which
//! handle them concurrently. So the jobs queue is declared `x-single-active-consumer`: any number of
//! worker processes may attach, one consumes, and the next takes over when it goes (its unacked
//! jobs are redelivered first). That is correct and highly available, but the throughput is one
//! consumer's (~10k msgs/s with prefetch 200, STACK-NOTES). To scale out, shard by room: N queues
//! `{prefix}.jobs.{n}`, each single-active-consumer, the publisher routing a room to
//! `hash(room) % N` (a direct exchange, or the `rabbitmq_consistent_hash_exchange` plugin hashing
//! the routing key); workers then spread over the shards. Changing N moves rooms between shards,
//! so it must drain the old shards first. Snapshot jobs alone would not need order (the store
//! merges, CRDT), but chat and execution jobs do. Publish order is a room's order when its
//! producer awaits each `publish` before the next (the persister does): concurrent publishes may
//! overtake one another, most visibly when a full queue refuses one and it is sent again.
//!
//! Not yet: reconnecting. A lost connection fails `publish` with [`QueueError::Backend`] and ends
//! the consumer's batches (the dispatcher returns; the broker redelivers what was not acked).

mod barrier;
mod consumer;
mod dead_letters;
mod publisher;
mod topology;

use lapin::{Connection, ConnectionProperties};

pub use barrier::BARRIER_TYPE;
pub use consumer::{AmqpConsumer, Settled};
pub use dead_letters::{DeadLetterQueue, REASON_HEADER, RawDeadLetter};
pub use publisher::AmqpQueue;
pub use topology::{ArgValue, BindingSpec, ExchangeSpec, QueueSpec, Topology, TopologySpec, WorkQueue};

use crate::queue::QueueError;

/// How to reach the broker and shape the queues.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (`amqps://` over rustls with the system roots).
    pub url: String,
    /// Prepended verbatim to every queue and exchange name. Empty by default: the contract's names
    /// (`snapshot_save`...), which `deploy/rabbitmq/definitions.json` declares. Tests use a unique
    /// prefix per test so they never share queues.
    pub prefix: String,
    /// Deliveries a consumer holds unacked at most (`basic.qos`).
    pub prefetch: u16,
    /// Deliveries of one message before the broker dead-letters it (`x-delivery-limit`): catches a
    /// job that kills its worker every time (the dispatcher retries transient failures in place).
    /// Part of the queues' declaration, like `max_length`.
    pub delivery_limit: u32,
    /// Jobs ready in a work queue before `publish` waits (`x-max-length`, reject-publish); `None`:
    /// no limit but the broker's alarms. Part of the queue's declaration: changing it on an
    /// existing queue fails the declaration (`PRECONDITION_FAILED`), and definitions.json holds the
    /// defaults.
    pub max_length: Option<u32>,
}

impl AmqpConfig {
    /// The defaults match `deploy/rabbitmq/definitions.json`.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), prefix: String::new(), prefetch: 256, delivery_limit: 20, max_length: None }
    }
}

/// A connection to `config.url` on the current tokio runtime.
pub async fn connect(config: &AmqpConfig, name: &str) -> Result<Connection, QueueError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(&config.url, properties).await.map_err(backend("connect to the broker"))
}

fn backend(what: &'static str) -> impl Fn(lapin::Error) -> QueueError {
    move |error| QueueError::Backend(format!("{what}: {error}"))
}
