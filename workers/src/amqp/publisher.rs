//! The producer side: every job a persistent message on a confirm-mode channel, `publish` done at
//! the broker's confirm, sent again while the broker refuses it for want of room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use protocol::job::Job;
use tokio::sync::Notify;

use super::{AmqpConfig, Topology, backend, connect};
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
    /// Publishes started and not yet confirmed (or failed); `flush` waits for zero.
    in_flight: AtomicU64,
    idle: Notify,
}

impl AmqpQueue {
    /// Connect, declare the topology, and open the confirm-mode publishing channel.
    pub async fn connect(config: &AmqpConfig) -> Result<Self, QueueError> {
        let connection = connect(config, "codecrafter-publisher").await?;
        let channel = connection.create_channel().await.map_err(backend("open a channel"))?;
        let topology = Topology::new(&config.prefix);
        topology.declare(&channel, config).await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(backend("enable confirms"))?;
        Ok(Self { connection, channel, topology, in_flight: AtomicU64::new(0), idle: Notify::new() })
    }

    /// Whether the connection is still up.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Placeholder until the barrier lands (the lead merges it): refuses, so a room is never
    /// opened on a guess.
    pub async fn barrier(&self, _room: &str, _timeout: std::time::Duration) -> Result<(), QueueError> {
        Err(QueueError::Backend("barrier not implemented yet".into()))
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Close the channel and the connection; publishes in flight fail.
    pub async fn close(&self) -> Result<(), QueueError> {
        self.connection.close(200, "closing".into()).await.map_err(backend("close the connection"))
    }

    /// Publish until the broker takes the job: `Ok(true)` confirmed, `Ok(false)` refused (full).
    async fn publish_once(&self, payload: &[u8], kind: JobKind) -> Result<bool, QueueError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/octet-stream".into())
            .with_type(kind.as_str().into());
        // `mandatory`: a missing queue comes back as a returned message instead of vanishing.
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = self
            .channel
            .basic_publish("".into(), self.topology.jobs.as_str().into(), options, payload, properties)
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
        let payload = job.encode();
        let kind = JobKind::of(&job);
        let mut backoff = FULL_BACKOFF;
        // A nack here is the reject-publish overflow (or a broker-side failure to store it): the
        // job is not in the queue, so sending it again cannot duplicate it.
        while !self.publish_once(&payload, kind).await? {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_FULL_BACKOFF);
        }
        Ok(())
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
