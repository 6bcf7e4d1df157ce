//! The job queue seen from the producer (the server). The consumer side is in `delivery.rs`.

use async_trait::async_trait;
use protocol::job::Job;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job queue is closed")]
    Closed,
    #[error("job queue backend: {0}")]
    Backend(String),
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Hand a job over. Returns once the queue has taken responsibility for it (for a broker: the
    /// publisher confirm), waiting for room when the queue is full rather than dropping it.
    async fn publish(&self, job: Job) -> Result<(), QueueError>;

    /// Wait until every job published so far has been handled durably by a worker (in-process) or
    /// confirmed by the broker. Used on shutdown so that no edit is lost.
    async fn flush(&self) -> Result<(), QueueError>;
}
