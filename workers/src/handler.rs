//! What a worker for one job kind implements: handle a batch of that kind's jobs and say what became
//! of them. The [`Dispatcher`](crate::Dispatcher) turns the answer into acks, retries and dead
//! letters; a handler never settles a delivery itself.

use std::fmt;

use async_trait::async_trait;

use crate::kind::JobPayload;

/// One job handed to a handler.
#[derive(Debug)]
pub struct Attempt<'a, J> {
    pub job: &'a J,
    /// How many times the job has been handed to a handler, this time included: 1 the first time;
    /// more after a transient failure here or a redelivery by the queue.
    pub delivery_count: u32,
}

impl<J> Attempt<'_, J> {
    /// Whether the job was handed out before (a handler may have done part of it).
    pub fn redelivered(&self) -> bool {
        self.delivery_count > 1
    }
}

/// Handles the jobs of one kind (`Self::Job`).
///
/// Delivery is at least once: after a transient failure, a crash or a broker redelivery a handler
/// sees a job again, so handling must be idempotent (snapshots are merged, never overwritten).
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    type Job: JobPayload;

    /// Handle `batch`, jobs of one kind in the order they were published (so a room's jobs come in
    /// its order).
    ///
    /// `Ok(handled)`: every job is done and is acked, except those `handled` marks as poison, which
    /// can never succeed and are dead-lettered with their reason. `Err(Transient)`: nothing of the
    /// batch may be counted as done (a store outage, say); the whole batch is handed again after a
    /// backoff, for as long as the worker runs. A panic dead-letters the whole batch.
    async fn handle(&self, batch: &[Attempt<'_, Self::Job>]) -> Result<Handled, Transient>;
}

/// A batch handled: every job done, except the poison ones listed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handled {
    poisoned: Vec<(usize, String)>,
}

impl Handled {
    /// Every job of the batch is done.
    pub fn all() -> Self {
        Self::default()
    }

    /// The job at `index` in the batch can never succeed (malformed, refers to something gone):
    /// it is dead-lettered with `reason` instead of acked.
    pub fn poison(&mut self, index: usize, reason: impl Into<String>) {
        self.poisoned.push((index, reason.into()));
    }

    /// Why the job at `index` was poison, if it was.
    pub fn poison_reason(&self, index: usize) -> Option<&str> {
        self.poisoned.iter().find(|(at, _)| *at == index).map(|(_, reason)| reason.as_str())
    }
}

/// A failure that may pass (the store is down, a service is busy): retry the batch later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transient {
    reason: String,
}

impl Transient {
    pub fn new(reason: impl fmt::Display) -> Self {
        Self { reason: reason.to_string() }
    }
}

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}
