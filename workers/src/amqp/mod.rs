//! The RabbitMQ backend of the job queue (lapin 4): [`AmqpQueue`] publishes (and waits on
//! barriers), [`AmqpConsumer`] yields one work queue's deliveries to a
//! [`Dispatcher`](crate::Dispatcher), [`DeadLetterQueue`] reads a queue's dead letters back. Built
//! to RabbitMQ's reliability guide:
//!
//! - **Topology** (`topology.rs`: described as data by [`Topology::spec`], declared from it by
//!   [`Topology::declare`], idempotent). Three work queues with the contract's names, each job
//!   routed to its kind's by [`WorkQueue::of`] (the one exhaustive match over
//!   [`JobKind`](crate::JobKind)): `snapshot_save` (snapshots), `message_save` (chat),
//!   `execution_jobs` (code runs). Each is a durable quorum queue
//!   (replicated, fsynced before a confirm) with `x-delivery-limit`, dead-lettering at least once
//!   into its own fanout exchange `{queue}.dlx`, bound to the durable quorum queue `{queue}.dead`.
//!   Names take [`AmqpConfig::prefix`], empty by default; `deploy/rabbitmq/definitions.json`
//!   declares the same objects (a test compares the code, the file and a broker that loaded it).
//! - **Producer**: one channel in confirm mode; every job is a persistent message (delivery mode
//!   2) published `mandatory` to its work queue; `publish` returns once the broker confirmed it.
//!   Concurrent `publish` calls pipeline on the channel (the confirms of many in flight arrive
//!   together), which is what makes confirms fast: one by one ~2k msgs/s, in flight together
//!   ~20k (STACK-NOTES). `flush` waits until no publish is in flight: every job is then in the
//!   broker, durably; whether a worker has handled it, a broker cannot tell its publisher, except
//!   through a barrier.
//! - **Barrier** (`barrier.rs`): [`AmqpQueue::barrier`] sends a message that is not a job (AMQP
//!   `type` [`BARRIER_TYPE`], body the room id, `reply_to` the publisher's exclusive reply queue,
//!   a `correlation_id`) through `snapshot_save`; the consumer ends its batch there and answers at
//!   its next `next_batch`, which the dispatcher calls only once that batch is settled. So the
//!   answer proves every snapshot job published before it is durably handled. A worker that dies
//!   before answering leaves the barrier unacked: the next one answers it. A stopping worker gives
//!   it back instead of answering (its last batch may have been requeued, not handled).
//! - **Back-pressure** (`max_length`): each work queue gets `x-max-length` with
//!   `x-overflow = reject-publish`; a publish the broker refuses (a nack) is sent again after a
//!   short backoff, so `publish` waits for room and never drops. Without a length limit the broker's
//!   memory and disk alarms block publishers instead (the same waiting, at the broker's pace).
//! - **Consumer**: one queue per [`AmqpConsumer`] (the worker binary runs one dispatcher per work
//!   queue), manual acks, prefetch `prefetch`. Ack = `basic.ack`; requeue =
//!   `basic.nack(requeue)` (a quorum queue hands returned messages out again before the others,
//!   and counts them: `x-delivery-count` + 1 is [`Delivery::delivery_count`](crate::Delivery));
//!   dead letter = the message published to the queue's dead-letter exchange with its reason in the
//!   `x-codecrafter-reason` header, confirmed, then acked (at least once: a crash in between
//!   leaves a duplicate dead letter, never none). A message that is not a job this build decodes is
//!   dead-lettered the same way at once, never handed to the dispatcher. A message requeued more
//!   than `delivery_limit` times (a job that kills its worker every time: the dispatcher retries
//!   transient failures in place, with backoff) is dead-lettered by the broker itself, its reason
//!   in `x-death`. After a stop the consumer hands out what it holds, then closes its connection.
//!
//! **Order.** `snapshot_save` is `x-single-active-consumer`: any number of workers attach, one
//! consumes, and the next takes over when it goes (its unacked jobs are redelivered first). One
//! consumer on a queue delivers in publish order (per publisher) and the dispatcher handles a batch
//! in order, so each room's snapshots are handled in publish order, and the barrier works. The
//! throughput is one consumer's (~10k msgs/s with prefetch 200, STACK-NOTES); to scale out, shard
//! by room: N queues `snapshot_save.{n}`, each single-active-consumer, the publisher routing a
//! room to `hash(room) % N` (a barrier then goes to its room's shard). `message_save` and
//! `execution_jobs` need no order (chat writes are idempotent by id), so they have competing
//! consumers: N workers share them. Publish order is a room's order when its producer awaits each
//! `publish` before the next (the persister does): concurrent publishes may overtake one another,
//! most visibly when a full queue refuses one and it is sent again.
//!
//! **Lost connection.** `publish` fails with [`QueueError::Backend`] (no reconnect in the publisher
//! yet); a consumer's batches end (the dispatcher returns; the broker redelivers what was not
//! acked), and the worker binary reconnects with backoff.

mod barrier;
mod broker;
mod consumer;
mod dead_letters;
mod depth;
mod publisher;
mod topology;

use lapin::{Connection, ConnectionProperties};

pub use barrier::BARRIER_TYPE;
pub use broker::connector;
pub use consumer::{AmqpConsumer, Settled};
pub use dead_letters::{DeadLetterQueue, REASON_HEADER, RawDeadLetter};
pub use depth::{UNKNOWN as DEPTH_UNKNOWN, poll_depth};
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
