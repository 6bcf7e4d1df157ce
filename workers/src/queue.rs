//! The job queue seen from the producer (the server). The consumer side is in `delivery.rs`.

use async_trait::async_trait;
use protocol::job::Job;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job queue is closed")]
    Closed,
    #[error("job queue backend: {0}")]
    Backend(String),
    #[error("job dead-lettered: {0}")]
    DeadLettered(String),
    /// The outbox that holds jobs while the broker is away is full.
    #[error("job queue is full: the broker has been unreachable for too long")]
    Full,
    /// A wait on the queue (a barrier) was not answered in time.
    #[error("job queue timed out: {0}")]
    Timeout(String),
}

/// A queue's state as `/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    /// `in_process` or `rabbitmq`.
    pub backend: &'static str,
    /// Whether the broker is reachable (always for the in-process queue).
    pub connected: bool,
    /// Jobs waiting on this process's disk for the broker.
    pub held: u64,
    /// Whether a new job would be taken now: false while the broker is away and the outbox is
    /// full (chat is then refused up front rather than broadcast and not saved).
    pub accepting: bool,
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Hand a job over. Returns once the queue has taken responsibility for it (for a broker: the
    /// publisher confirm), waiting for room when the queue is full rather than dropping it.
    async fn publish(&self, job: Job) -> Result<(), QueueError>;

    /// Hand a job over and return once it is durable, which is when a client may be told it is
    /// saved: for a broker, its publisher confirm (a quorum queue confirms once a majority has
    /// written the message to disk); in-process, once a worker has handled it (the store
    /// committed it: an in-memory channel is not durable). A job dead-lettered in-process fails
    /// with [`QueueError::DeadLettered`].
    async fn persist(&self, job: Job) -> Result<(), QueueError>;

    /// Wait until every job published so far has been handled durably by a worker (in-process) or
    /// confirmed by the broker. Used on shutdown so that no edit is lost.
    async fn flush(&self) -> Result<(), QueueError>;

    /// Returns once every job published before the call that concerns `room` has been handled
    /// (written to the store) by a worker: before a room is loaded from the store (so it is never
    /// served from a snapshot that misses acknowledged updates still in the queue) and before a
    /// deleted session's snapshot is removed. Waiting for everything is a correct default.
    async fn barrier(&self, _room: &str) -> Result<(), QueueError> {
        self.flush().await
    }

    /// How the queue is doing, for `/ready` and the logs.
    fn status(&self) -> QueueStatus {
        QueueStatus { backend: "in_process", connected: true, held: 0, accepting: true }
    }
}
