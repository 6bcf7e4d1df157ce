//! The embedded-mode queue: a bounded channel into the same [`Dispatcher`] a separate worker
//! process runs, on a task of this process. Its dead letters go to a [`DeadLetters`] sink.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use protocol::job::Job;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dead_letters::DeadLetters;
use crate::delivery::{DeadLetter, Delivery, JobConsumer, Settle};
use crate::dispatcher::Dispatcher;
use crate::queue::{JobQueue, QueueError};

#[derive(Debug, Clone)]
pub struct InProcessQueueConfig {
    /// Jobs buffered before `publish` waits.
    pub capacity: usize,
    /// Dead letters kept in memory for inspection (every one is logged and counted).
    pub dead_letters_kept: usize,
    /// Once a job arrives, how long the consumer waits for more before handing the batch over:
    /// the group commit. Jobs arriving within it share one store transaction (one fsync), which
    /// is most of what a durable write costs; their `persist` returns that much later.
    pub linger: std::time::Duration,
}

impl Default for InProcessQueueConfig {
    fn default() -> Self {
        Self { capacity: 4096, dead_letters_kept: 64, linger: std::time::Duration::ZERO }
    }
}

/// Told once a job published with `persist` is settled: handled (`Ok`) or dead-lettered.
type Receipt = oneshot::Sender<Result<(), QueueError>>;

/// A job in the channel, with the receipt of a `persist`.
type Queued = (Job, Option<Receipt>);

pub struct InProcessQueue {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

/// What the queue, its consumer and the deliveries' settle handles share.
struct Shared {
    /// Published but not settled yet; `flush` waits for zero.
    pending: AtomicU64,
    drained: Notify,
    /// Jobs given back, by their place in the queue, so they come again before anything after
    /// them; with their next delivery count.
    requeued: Mutex<BTreeMap<u64, (Queued, u32)>>,
    requeue_added: Notify,
    dead_letters: Arc<DeadLetters>,
}

impl InProcessQueue {
    /// Start `dispatcher` on `tracker`, consuming this queue. It stops after `cancel`, once it has
    /// handled what was queued.
    pub fn start(
        dispatcher: Dispatcher,
        config: InProcessQueueConfig,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let shared = Arc::new(Shared {
            pending: AtomicU64::new(0),
            drained: Notify::new(),
            requeued: Mutex::new(BTreeMap::new()),
            requeue_added: Notify::new(),
            dead_letters: Arc::new(DeadLetters::new(config.dead_letters_kept)),
        });
        let consumer = InProcessConsumer { rx, shared: shared.clone(), received: 0, linger: config.linger };
        tracker.spawn(dispatcher.run(consumer, cancel));
        Arc::new(Self { tx, shared })
    }

    /// Jobs published and not settled yet: waiting in the channel, or in a handler's hands.
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Where this queue's dead letters go.
    pub fn dead_letters(&self) -> Arc<DeadLetters> {
        self.shared.dead_letters.clone()
    }
}

#[async_trait]
impl JobQueue for InProcessQueue {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        self.send((job, None)).await
    }

    async fn persist(&self, job: Job) -> Result<(), QueueError> {
        let (receipt, settled) = oneshot::channel();
        self.send((job, Some(receipt))).await?;
        // A receipt dropped unanswered means the consumer's task was aborted with the job.
        settled.await.unwrap_or(Err(QueueError::Closed))
    }

    async fn flush(&self) -> Result<(), QueueError> {
        loop {
            let drained = self.shared.drained.notified();
            if self.shared.pending.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            if self.tx.is_closed() {
                return Err(QueueError::Closed);
            }
            drained.await;
        }
    }
}

impl InProcessQueue {
    async fn send(&self, queued: Queued) -> Result<(), QueueError> {
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(queued).await.is_err() {
            self.shared.done();
            return Err(QueueError::Closed);
        }
        Ok(())
    }
}

impl Shared {
    /// One published job settled.
    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }

    fn requeued(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (Queued, u32)>> {
        self.requeued.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct InProcessConsumer {
    rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    /// Jobs taken from the channel so far: each one's place in the queue.
    received: u64,
    linger: std::time::Duration,
}

impl InProcessConsumer {
    fn deliver(&self, seq: u64, (job, receipt): Queued, delivery_count: u32) -> Delivery {
        let settle =
            InProcessSettle { seq, delivery_count, receipt, shared: self.shared.clone(), settled: false };
        Delivery::new(job, delivery_count, Box::new(settle))
    }

    /// Up to `max` requeued jobs, first-published first.
    fn take_requeued(&self, max: usize) -> Vec<Delivery> {
        let mut requeued = self.shared.requeued();
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some((seq, (job, count))) = requeued.pop_first() else { break };
            batch.push(self.deliver(seq, job, count));
        }
        batch
    }
}

#[async_trait]
impl JobConsumer for InProcessConsumer {
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Delivery>> {
        let mut jobs = Vec::with_capacity(max);
        loop {
            let requeued = self.take_requeued(max);
            if !requeued.is_empty() {
                return Some(requeued);
            }
            tokio::select! {
                received = self.rx.recv_many(&mut jobs, max) => {
                    if received == 0 {
                        // Closed and empty: only what was requeued meanwhile is left.
                        let requeued = self.take_requeued(max);
                        return (!requeued.is_empty()).then_some(requeued);
                    }
                    self.linger_for_more(&mut jobs, max).await;
                    let first = self.received;
                    self.received += jobs.len() as u64;
                    return Some((first..).zip(jobs).map(|(seq, job)| self.deliver(seq, job, 1)).collect());
                }
                () = self.shared.requeue_added.notified() => {}
            }
        }
    }

    fn close(&mut self) {
        self.rx.close();
    }
}

impl InProcessConsumer {
    /// The group commit: gather what arrives within `linger` of the first job, up to `max`.
    async fn linger_for_more(&mut self, jobs: &mut Vec<Queued>, max: usize) {
        if self.linger.is_zero() || jobs.len() >= max {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.linger;
        while jobs.len() < max {
            match tokio::time::timeout_at(deadline, self.rx.recv_many(jobs, max - jobs.len())).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

struct InProcessSettle {
    seq: u64,
    delivery_count: u32,
    receipt: Option<Receipt>,
    shared: Arc<Shared>,
    settled: bool,
}

#[async_trait]
impl Settle for InProcessSettle {
    async fn ack(mut self: Box<Self>) -> Result<(), QueueError> {
        self.settled = true;
        if let Some(receipt) = self.receipt.take() {
            let _ = receipt.send(Ok(()));
        }
        self.shared.done();
        Ok(())
    }

    async fn requeue(mut self: Box<Self>, job: Job) -> Result<(), QueueError> {
        self.settled = true;
        let queued = (job, self.receipt.take());
        self.shared.requeued().insert(self.seq, (queued, self.delivery_count.saturating_add(1)));
        self.shared.requeue_added.notify_one();
        Ok(())
    }

    async fn dead_letter(mut self: Box<Self>, letter: DeadLetter) -> Result<(), QueueError> {
        self.settled = true;
        if let Some(receipt) = self.receipt.take() {
            let _ = receipt.send(Err(QueueError::DeadLettered(letter.reason.clone())));
        }
        self.shared.dead_letters.push(letter);
        self.shared.done();
        Ok(())
    }
}

impl Drop for InProcessSettle {
    /// A broker would redeliver a delivery dropped unsettled; this queue no longer has the job.
    /// The dispatcher always settles, so this means its task was aborted.
    fn drop(&mut self) {
        if !self.settled {
            tracing::error!(delivery_count = self.delivery_count, "job dropped unsettled: lost");
            self.shared.done();
        }
    }
}
