//! The consumer side: a manual-ack consumer with a prefetch on one work queue, its deliveries
//! decoded into [`Delivery`]s and settled by ack, nack-requeue, or a confirmed publish to the
//! queue's dead-letter exchange followed by an ack. Barriers (`barrier.rs`) end a batch and are
//! answered at the next `next_batch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, Channel, Connection, Consumer};
use protocol::job::Job;
use tokio::sync::Notify;

use super::barrier::{PendingBarrier, is_barrier};
use super::dead_letters::{dead_letter_properties, delivery_count_of};
use super::{AmqpConfig, Topology, WorkQueue, backend, connect};
use crate::delivery::{DeadLetter, Delivery, JobConsumer, Settle};
use crate::queue::QueueError;

/// How many deliveries a consumer has settled for good (acked or dead-lettered; a requeue does not
/// count): what a process that both publishes and consumes (tests, an all-in-one deployment) can
/// wait on to know its jobs are handled, which a broker cannot tell its publisher.
#[derive(Debug, Default)]
pub struct Settled {
    count: AtomicU64,
    changed: Notify,
}

impl Settled {
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Wait until at least `n` deliveries are settled.
    pub async fn wait_for(&self, n: u64) {
        loop {
            let changed = self.changed.notified();
            if self.count() >= n {
                return;
            }
            changed.await;
        }
    }

    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }
}

pub struct AmqpConsumer {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    /// The dead-letter exchange of the consumed queue.
    dead_exchange: String,
    settled: Arc<Settled>,
    /// A barrier that ended the last batch: answered at the next `next_batch`, once the dispatcher
    /// has settled that batch.
    barrier: Option<PendingBarrier>,
    /// `close` was called: cancel the consumer at the next `next_batch`.
    closing: bool,
    cancelled: bool,
}

impl AmqpConsumer {
    /// Connect, declare the topology, and start consuming `queue` with `config.prefetch`. The
    /// channel is in confirm mode too, for the dead letters and barrier answers it publishes.
    pub async fn connect(config: &AmqpConfig, queue: WorkQueue) -> Result<Self, QueueError> {
        let topology = Topology::new(config);
        // Named after the queue (with its prefix): what an operator sees in the broker's list.
        let connection = connect(config, &format!("codecrafter-worker {}", topology.queue(queue))).await?;
        let channel = connection.create_channel().await.map_err(backend("open a channel"))?;
        topology.declare(&channel).await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(backend("enable confirms"))?;
        channel
            .basic_qos(config.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(backend("set the prefetch"))?;
        let consumer = channel
            .basic_consume(
                topology.queue(queue).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(backend("start consuming"))?;
        Ok(Self {
            connection,
            channel,
            consumer,
            dead_exchange: topology.dead_exchange(queue),
            settled: Arc::default(),
            barrier: None,
            closing: false,
            cancelled: false,
        })
    }

    /// This consumer's count of settled deliveries.
    pub fn settled(&self) -> Arc<Settled> {
        self.settled.clone()
    }

    /// Close the connection: every delivery not settled yet goes back to the queue.
    pub async fn disconnect(&self) -> Result<(), QueueError> {
        self.connection.close(200, "closing".into()).await.map_err(backend("close the connection"))
    }

    /// The job in `delivery`, or `None` after dead-lettering it as undecodable.
    async fn decode(&self, delivery: lapin::message::Delivery) -> Option<Delivery> {
        let delivery_count = delivery_count_of(delivery.properties.headers().as_ref());
        let settle = AmqpSettle {
            channel: self.channel.clone(),
            acker: delivery.acker,
            dead_exchange: self.dead_exchange.clone(),
            headers: delivery.properties.headers().clone(),
            settled: self.settled.clone(),
        };
        match Job::decode(&delivery.data) {
            Ok(job) => Some(Delivery::new(job, delivery_count, Box::new(settle))),
            Err(error) => {
                let reason = format!("undecodable job: {error}");
                tracing::error!(%reason, bytes = delivery.data.len(), "job dead-lettered");
                if let Err(error) = settle.dead_letter_bytes(&delivery.data, &reason, delivery_count).await {
                    tracing::warn!(%error, "could not dead-letter an undecodable job; the queue will deliver it again");
                }
                None
            }
        }
    }
}

#[async_trait]
impl JobConsumer for AmqpConsumer {
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>> {
        // The dispatcher settled the batch the barrier ended before asking again. If this future
        // is dropped midway (a stop), the barrier is neither acked nor given back: the broker
        // returns it when this connection closes, for the next consumer to answer.
        if let Some(barrier) = self.barrier.take() {
            let answered = if self.closing {
                // Stopping: that batch may have been requeued rather than handled.
                barrier.give_back().await
            } else {
                barrier.answer(&self.channel).await
            };
            if let Err(error) = answered {
                tracing::warn!(%error, "could not settle a barrier; the queue will deliver it again");
            }
        }
        if self.closing && !self.cancelled {
            self.cancelled = true;
            // The broker sends `cancel-ok` after its last delivery to this consumer, so once it is
            // here every delivery is in the consumer's buffer.
            let tag = self.consumer.tag();
            if let Err(error) = self.channel.basic_cancel(tag, BasicCancelOptions::default()).await {
                tracing::warn!(%error, "could not cancel the job consumer");
                return None;
            }
        }
        let mut batch = Vec::with_capacity(max);
        while batch.len() < max {
            let next = if self.cancelled || !batch.is_empty() {
                // What is already here only: after a cancel, the buffer is all there is (lapin's
                // stream does not always end after one); with a batch begun, never wait.
                match self.consumer.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            } else {
                // Cancel-safe: only the wait for the first delivery is ever abandoned.
                self.consumer.next().await
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => {
                    // The channel or connection failed: what was not acked is redelivered.
                    tracing::error!(%error, "job consumer failed");
                    break;
                }
                None => break,
            };
            if is_barrier(&delivery) {
                let barrier = PendingBarrier::new(delivery);
                if batch.is_empty() {
                    // Everything before it was settled before this call.
                    if let Err(error) = barrier.answer(&self.channel).await {
                        tracing::warn!(%error, "could not answer a barrier; the queue will deliver it again");
                    }
                    continue;
                }
                self.barrier = Some(barrier);
                break;
            }
            batch.extend(self.decode(delivery).await);
        }
        if batch.is_empty() && self.cancelled {
            // Drained after a stop: every delivery is settled, so close cleanly (a dropped
            // connection would look like a crash to the broker).
            if let Err(error) = self.disconnect().await {
                tracing::debug!(%error, "closing the worker's connection");
            }
        }
        (!batch.is_empty()).then_some(batch)
    }

    fn close(&mut self) {
        self.closing = true;
    }
}

struct AmqpSettle {
    channel: Channel,
    acker: Acker,
    dead_exchange: String,
    /// The delivered message's headers, kept on its dead letter.
    headers: Option<FieldTable>,
    settled: Arc<Settled>,
}

impl AmqpSettle {
    /// Publish `payload` to the dead-letter exchange with `reason`, wait for the confirm, then ack
    /// the delivery.
    async fn dead_letter_bytes(
        self,
        payload: &[u8],
        reason: &str,
        delivery_count: u32,
    ) -> Result<(), QueueError> {
        let properties = dead_letter_properties(self.headers.clone(), reason, delivery_count);
        let confirm = self
            .channel
            .basic_publish(
                self.dead_exchange.as_str().into(),
                "".into(),
                lapin::options::BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await
            .map_err(backend("publish a dead letter"))?;
        let confirmation = confirm.await.map_err(backend("await a dead letter's confirm"))?;
        if !confirmation.is_ack() {
            return Err(QueueError::Backend("the broker refused a dead letter".into()));
        }
        self.acker.ack(BasicAckOptions::default()).await.map_err(backend("ack a dead-lettered job"))?;
        self.settled.add();
        Ok(())
    }
}

#[async_trait]
impl Settle for AmqpSettle {
    async fn ack(self: Box<Self>) -> Result<(), QueueError> {
        self.acker.ack(BasicAckOptions::default()).await.map_err(backend("ack a job"))?;
        self.settled.add();
        Ok(())
    }

    async fn requeue(self: Box<Self>, _job: Job) -> Result<(), QueueError> {
        let options = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
        self.acker.nack(options).await.map_err(backend("requeue a job"))?;
        Ok(())
    }

    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), QueueError> {
        // The delivered bytes are the job's encoding; encoding it again gives the same bytes.
        let payload = letter.job.encode();
        self.dead_letter_bytes(&payload, &letter.reason, letter.delivery_count).await
    }
}

/// `x-delivery-count` as a number, whatever integer type the broker sent it as.
pub(super) fn as_u64(value: &AMQPValue) -> Option<u64> {
    match *value {
        AMQPValue::ShortShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        _ => None,
    }
}
