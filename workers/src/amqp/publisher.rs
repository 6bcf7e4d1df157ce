//! The producer side: every job a persistent message on a confirm-mode channel, routed to its
//! kind's work queue, `publish` done at the broker's confirm, sent again while the broker refuses
//! it for want of room; and the [barrier](super::barrier) on `snapshot_save`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use protocol::job::Job;
use tokio::sync::Notify;

use super::barrier::{BARRIER_TYPE, Replies};
use super::{AmqpConfig, Topology, WorkQueue, backend, connect};
use crate::kind::JobKind;
use crate::queue::{JobQueue, QueueError};

/// First wait before publishing a refused job again; doubles up to [`MAX_FULL_BACKOFF`].
const FULL_BACKOFF: Duration = Duration::from_millis(2);
const MAX_FULL_BACKOFF: Duration = Duration::from_millis(100);

/// `basic.properties.delivery_mode` of a message the broker writes to disk.
const PERSISTENT: u8 = 2;

pub struct AmqpQueue {
    connection: Connection,
    channel: Channel,
    topology: Topology,
    /// Where workers answer this publisher's barriers.
    replies: Arc<Replies>,
    /// Publishes started and not yet confirmed (or failed); `flush` waits for zero.
    in_flight: AtomicU64,
    idle: Notify,
}

impl AmqpQueue {
    /// Connect, declare the topology, open the confirm-mode publishing channel and the reply queue
    /// of barriers.
    pub async fn connect(config: &AmqpConfig) -> Result<Self, QueueError> {
        let connection = connect(config, "codecrafter-publisher").await?;
        let channel = connection.create_channel().await.map_err(backend("open a channel"))?;
        let topology = Topology::new(config);
        topology.declare(&channel).await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(backend("enable confirms"))?;
        let replies = Replies::start(&connection).await?;
        Ok(Self { connection, channel, topology, replies, in_flight: AtomicU64::new(0), idle: Notify::new() })
    }

    /// Returns once a worker has handled every snapshot job published before this call (by any
    /// publisher), durably: the barrier goes through `snapshot_save` behind them (FIFO, one active
    /// consumer) and its consumer answers when everything before it is settled. `room` travels
    /// along for the logs. [`QueueError::Timeout`] when no worker answers within `timeout` (none
    /// running, or a backlog longer than that).
    pub async fn barrier(&self, room: &str, timeout: Duration) -> Result<(), QueueError> {
        let (id, answered) = self.replies.expect();
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_type(BARRIER_TYPE.into())
            .with_reply_to(self.replies.queue().into())
            .with_correlation_id(id.as_str().into());
        let waited = tokio::time::timeout(timeout, async {
            self.publish_until_taken(WorkQueue::SnapshotSave, room.as_bytes(), properties).await?;
            answered.await.map_err(|_| QueueError::Closed)
        })
        .await;
        self.replies.forget(&id);
        waited.unwrap_or_else(|_| {
            Err(QueueError::Timeout(format!(
                "no worker answered the barrier of room {room} within {timeout:?}"
            )))
        })
    }

    /// Whether the connection is still up.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Close the channel and the connection; publishes in flight fail.
    pub async fn close(&self) -> Result<(), QueueError> {
        self.connection.close(200, "closing".into()).await.map_err(backend("close the connection"))
    }

    /// Publish to `queue`, sent again after a backoff while the broker refuses it for want of
    /// room. A nack is the reject-publish overflow (or a broker-side failure to store it): the
    /// message is not in the queue, so sending it again cannot duplicate it.
    async fn publish_until_taken(
        &self,
        queue: WorkQueue,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), QueueError> {
        let routing_key = self.topology.queue(queue);
        let mut backoff = FULL_BACKOFF;
        while !self.publish_once(&routing_key, payload, properties.clone()).await? {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_FULL_BACKOFF);
        }
        Ok(())
    }

    /// Publish once: `Ok(true)` confirmed, `Ok(false)` refused (full).
    async fn publish_once(
        &self,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<bool, QueueError> {
        // `mandatory`: a missing queue comes back as a returned message instead of vanishing.
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = self
            .channel
            .basic_publish("".into(), routing_key.into(), options, payload, properties)
            .await
            .map_err(backend("publish"))?;
        match confirm.await.map_err(backend("await the publisher confirm"))? {
            Confirmation::Ack(None) => Ok(true),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(QueueError::Backend(format!(
                    "job returned unroutable: {} ({})",
                    returned.reply_text, returned.reply_code
                )))
            }
            Confirmation::Nack(None) => Ok(false),
            Confirmation::NotRequested => Err(QueueError::Backend("publisher confirms are off".into())),
        }
    }
}

#[async_trait]
impl JobQueue for AmqpQueue {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        let _in_flight = InFlight::start(self);
        let kind = JobKind::of(&job);
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/octet-stream".into())
            .with_type(kind.as_str().into());
        self.publish_until_taken(WorkQueue::of(kind), &job.encode(), properties).await
    }

    /// The broker's confirm is the durability point: a quorum queue confirms once a majority of
    /// its replicas has the message on disk.
    async fn persist(&self, job: Job) -> Result<(), QueueError> {
        self.publish(job).await
    }

    async fn flush(&self) -> Result<(), QueueError> {
        loop {
            let idle = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        // Confirms of publishes whose callers stopped waiting (a dropped `publish` future).
        self.channel.wait_for_confirms().await.map_err(backend("await the publisher confirms"))?;
        Ok(())
    }
}

/// One publish in flight, counted until it ends however it ends (a dropped future included).
struct InFlight<'a>(&'a AmqpQueue);

impl<'a> InFlight<'a> {
    fn start(queue: &'a AmqpQueue) -> Self {
        queue.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(queue)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
