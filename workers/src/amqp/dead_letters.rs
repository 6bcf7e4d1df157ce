//! Dead letters on the broker: the headers a dead letter carries (why, after how many deliveries),
//! and [`DeadLetterQueue`], which reads them back from a work queue's `{queue}.dead` (tests, an operator's
//! tool).

use std::sync::Mutex;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use protocol::job::Job;

use super::consumer::as_u64;
use super::{AmqpConfig, Topology, WorkQueue, backend, connect};
use crate::delivery::DeadLetter;
use crate::queue::QueueError;

/// Why the job was dead-lettered (a long string), set by the worker that gave up on it.
pub const REASON_HEADER: &str = "x-codecrafter-reason";
/// Its delivery count when it was dead-lettered.
const DELIVERY_COUNT_HEADER: &str = "x-codecrafter-delivery-count";
/// Set by a quorum queue on a redelivered message: earlier deliveries.
const BROKER_DELIVERY_COUNT: &str = "x-delivery-count";

/// 1 on a first delivery: the quorum queue's `x-delivery-count` (absent the first time) plus one.
pub(super) fn delivery_count_of(headers: Option<&FieldTable>) -> u32 {
    let earlier = headers.and_then(|h| h.inner().get(BROKER_DELIVERY_COUNT)).and_then(as_u64).unwrap_or(0);
    u32::try_from(earlier.saturating_add(1)).unwrap_or(u32::MAX)
}

/// A dead letter's properties: persistent, the original headers, the reason and the count.
pub(super) fn dead_letter_properties(
    headers: Option<FieldTable>,
    reason: &str,
    delivery_count: u32,
) -> BasicProperties {
    let mut headers = headers.unwrap_or_default();
    headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
    headers.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongUInt(delivery_count));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/octet-stream".into())
        .with_headers(headers)
}

/// One message of the dead-letter queue, as read back.
#[derive(Debug, Clone)]
pub struct RawDeadLetter {
    /// The job, `Err` with the decode error for a message that was not one.
    pub job: Result<Job, String>,
    pub reason: String,
    pub delivery_count: u32,
}

/// Reads (and removes) the dead-letter queue's messages, keeping every one it took.
pub struct DeadLetterQueue {
    connection: Connection,
    channel: Channel,
    queue: String,
    taken: Mutex<Vec<RawDeadLetter>>,
}

impl DeadLetterQueue {
    /// Read the dead letters of `queue`.
    pub async fn connect(config: &AmqpConfig, queue: WorkQueue) -> Result<Self, QueueError> {
        let connection = connect(config, "codecrafter-dead-letters").await?;
        let channel = connection.create_channel().await.map_err(backend("open a channel"))?;
        let topology = Topology::new(config);
        topology.declare(&channel).await?;
        Ok(Self { connection, channel, queue: topology.dead_queue(queue), taken: Mutex::default() })
    }

    /// Every dead letter taken so far, oldest first, after taking what the queue holds now.
    pub async fn read_all(&self) -> Result<Vec<RawDeadLetter>, QueueError> {
        let mut new = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(ShortString::from(self.queue.as_str()), BasicGetOptions::default())
            .await
            .map_err(backend("read the dead-letter queue"))?
        {
            let delivery = message.delivery;
            new.push(parse(delivery.properties.headers().as_ref(), &delivery.data));
            delivery.acker.ack(BasicAckOptions::default()).await.map_err(backend("ack a dead letter"))?;
        }
        let mut taken = self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        taken.extend(new);
        Ok(taken.clone())
    }

    /// The decodable dead letters among [`DeadLetterQueue::read_all`].
    pub async fn jobs(&self) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self
            .read_all()
            .await?
            .into_iter()
            .filter_map(|raw| {
                let job = raw.job.ok()?;
                Some(DeadLetter { job, reason: raw.reason, delivery_count: raw.delivery_count })
            })
            .collect())
    }

    pub async fn disconnect(&self) -> Result<(), QueueError> {
        self.connection.close(200, "closing".into()).await.map_err(backend("close the connection"))
    }
}

/// A dead letter from its headers: ours, or else the broker's `x-death` (delivery limit).
fn parse(headers: Option<&FieldTable>, data: &[u8]) -> RawDeadLetter {
    let header = |name: &str| headers.and_then(|h| h.inner().get(name));
    let reason = match header(REASON_HEADER) {
        Some(AMQPValue::LongString(reason)) => reason.to_string(),
        _ => match header("x-first-death-reason") {
            Some(AMQPValue::LongString(reason)) => format!("dead-lettered by the broker: {reason}"),
            _ => "dead-lettered by the broker".into(),
        },
    };
    let delivery_count = header(DELIVERY_COUNT_HEADER)
        .and_then(as_u64)
        .map_or_else(|| delivery_count_of(headers), |n| u32::try_from(n).unwrap_or(u32::MAX));
    RawDeadLetter { job: Job::decode(data).map_err(|e| e.to_string()), reason, delivery_count }
}
