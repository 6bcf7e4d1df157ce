//! The job queue seen from the consumer (a worker): deliveries, each settled exactly once by an
//! ack, a requeue or a dead letter, and the [`JobConsumer`] a backend implements to yield them.
//!
//! The shape follows AMQP so a RabbitMQ backend maps onto it one to one: ack = `basic.ack`,
//! requeue = `basic.nack` with requeue, dead letter = to the dead-letter exchange; a delivery
//! dropped unsettled is redelivered when the consumer's channel closes.

use async_trait::async_trait;
use protocol::job::Job;

use crate::queue::QueueError;

/// A backend's handle on one delivery, used once.
#[async_trait]
pub trait Settle: Send + Sync + 'static {
    /// The job is done: never deliver it again.
    async fn ack(self: Box<Self>) -> Result<(), QueueError>;

    /// Give the job back to be delivered again, with its delivery count one higher. `job` is what
    /// was delivered: a broker still holds the message and ignores it.
    async fn requeue(self: Box<Self>, job: Job) -> Result<(), QueueError>;

    /// The job can never succeed: set it aside, with why, where an operator can see it, and never
    /// deliver it again.
    async fn dead_letter(self: Box<Self>, letter: DeadLetter) -> Result<(), QueueError>;
}

/// A job that reached the dead-letter path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub job: Job,
    pub reason: String,
    /// Its delivery count when it was dead-lettered.
    pub delivery_count: u32,
}

/// One job taken from the queue, not settled yet.
pub struct Delivery {
    job: Job,
    delivery_count: u32,
    settle: Box<dyn Settle>,
}

impl Delivery {
    /// For backends: `delivery_count` is 1 on the first delivery (RabbitMQ's `x-delivery-count`
    /// plus one).
    pub fn new(job: Job, delivery_count: u32, settle: Box<dyn Settle>) -> Self {
        Self { job, delivery_count: delivery_count.max(1), settle }
    }

    pub fn job(&self) -> &Job {
        &self.job
    }

    /// How many times the queue has delivered this job, this time included.
    pub fn delivery_count(&self) -> u32 {
        self.delivery_count
    }

    /// Whether the queue delivered this job before.
    pub fn redelivered(&self) -> bool {
        self.delivery_count > 1
    }

    pub async fn ack(self) -> Result<(), QueueError> {
        self.settle.ack().await
    }

    pub async fn requeue(self) -> Result<(), QueueError> {
        self.settle.requeue(self.job).await
    }

    pub async fn dead_letter(self, reason: impl Into<String>) -> Result<(), QueueError> {
        let letter = DeadLetter { job: self.job, reason: reason.into(), delivery_count: self.delivery_count };
        self.settle.dead_letter(letter).await
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("job", &self.job)
            .field("delivery_count", &self.delivery_count)
            .finish()
    }
}

/// The consumer side a queue backend implements; the [`Dispatcher`](crate::Dispatcher) drives it.
#[async_trait]
pub trait JobConsumer: Send + 'static {
    /// Waits for jobs and returns up to `max` of them, in the order they were published (requeued
    /// ones first). `None` once the queue is closed and holds nothing more.
    ///
    /// Must be cancel-safe: the dispatcher stops waiting on it when it is told to stop.
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>>;

    /// Take no new jobs: [`JobConsumer::next_batch`] still returns what the consumer already holds
    /// (the in-process channel's contents; a broker's prefetched deliveries), then `None`.
    fn close(&mut self);
}
