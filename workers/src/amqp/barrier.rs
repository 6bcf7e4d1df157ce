//! The barrier on `snapshot_save`: a message that is not a job (its AMQP `type` is
//! [`BARRIER_TYPE`], its body the room id) asking the consumer to answer once every job published
//! before it has been handled. `snapshot_save` is FIFO with one active consumer and the dispatcher
//! asks for its next batch only after settling the previous one, so the consumer answers when it
//! next asks for deliveries after the barrier: everything before it is then handled and durably
//! written. A server reopening a room after a crash waits on it so that it never serves a snapshot
//! missing updates that were acknowledged but still queued.
//!
//! Publisher side ([`Replies`]): an exclusive, auto-deleted, server-named queue per publisher,
//! consumed without acks; answers carry the barrier's `correlation_id`. Consumer side
//! ([`PendingBarrier`]): answer (an empty message to `reply_to`, then ack), or give it back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Acker, BasicProperties, Channel, Connection};
use tokio::sync::oneshot;

use super::backend;
use crate::queue::QueueError;

/// The AMQP `type` property of a barrier message.
pub const BARRIER_TYPE: &str = "codecrafter.barrier";

/// Whether `delivery` is a barrier rather than a job.
pub(super) fn is_barrier(delivery: &lapin::message::Delivery) -> bool {
    delivery.properties.kind().as_ref().is_some_and(|kind| kind.as_str() == BARRIER_TYPE)
}

/// The publisher's reply queue and the barriers waiting for an answer on it.
pub(super) struct Replies {
    queue: String,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl Replies {
    /// Declare the reply queue on its own channel of `connection` and start reading it.
    pub(super) async fn start(connection: &Connection) -> Result<Arc<Self>, QueueError> {
        let channel = connection.create_channel().await.map_err(backend("open the reply channel"))?;
        let options =
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .map_err(backend("declare the reply queue"))?;
        let name = queue.name().to_string();
        let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut consumer = channel
            .basic_consume(name.as_str().into(), "".into(), options, FieldTable::default())
            .await
            .map_err(backend("consume the reply queue"))?;
        let replies = Arc::new(Self { queue: name, next_id: AtomicU64::new(0), waiting: Mutex::default() });
        let weak: Weak<Self> = Arc::downgrade(&replies);
        // Ends with the connection (the stream ends) or with the publisher (nobody to answer).
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let Some(replies) = weak.upgrade() else { break };
                if let Some(id) = delivery.properties.correlation_id() {
                    replies.answer(id.as_str());
                }
            }
        });
        Ok(replies)
    }

    pub(super) fn queue(&self) -> &str {
        &self.queue
    }

    /// A new correlation id and what resolves when its answer arrives.
    pub(super) fn expect(&self) -> (String, oneshot::Receiver<()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let (answered, receiver) = oneshot::channel();
        self.lock().insert(id.clone(), answered);
        (id, receiver)
    }

    /// Stop waiting for `id` (answered, or given up on).
    pub(super) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn answer(&self, id: &str) {
        if let Some(answered) = self.lock().remove(id) {
            let _ = answered.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A barrier the consumer met, to answer once the deliveries before it are settled.
pub(super) struct PendingBarrier {
    acker: Acker,
    room: String,
    reply_to: Option<ShortString>,
    correlation_id: Option<ShortString>,
}

impl PendingBarrier {
    pub(super) fn new(delivery: lapin::message::Delivery) -> Self {
        Self {
            room: String::from_utf8_lossy(&delivery.data).into_owned(),
            reply_to: delivery.properties.reply_to().clone(),
            correlation_id: delivery.properties.correlation_id().clone(),
            acker: delivery.acker,
        }
    }

    /// Everything before the barrier is handled: tell its publisher (an empty message to its
    /// `reply_to`, confirmed), then ack it. A publisher that has gone has no reply queue any more:
    /// the answer is dropped by the broker, which is fine.
    pub(super) async fn answer(self, channel: &Channel) -> Result<(), QueueError> {
        if let Some(reply_to) = self.reply_to {
            let mut properties = BasicProperties::default();
            if let Some(id) = self.correlation_id {
                properties = properties.with_correlation_id(id);
            }
            let confirm = channel
                .basic_publish("".into(), reply_to, BasicPublishOptions::default(), &[], properties)
                .await
                .map_err(backend("answer a barrier"))?;
            confirm.await.map_err(backend("await a barrier answer's confirm"))?;
        }
        tracing::debug!(room = %self.room, "barrier answered");
        self.acker.ack(BasicAckOptions::default()).await.map_err(backend("ack a barrier"))?;
        Ok(())
    }

    /// The deliveries before it may have been given back rather than handled (a stopping worker):
    /// give the barrier back too, behind them, for the next consumer to answer.
    pub(super) async fn give_back(self) -> Result<(), QueueError> {
        let options = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
        self.acker.nack(options).await.map_err(backend("give a barrier back"))?;
        Ok(())
    }
}
