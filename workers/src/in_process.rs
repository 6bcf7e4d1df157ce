//! The embedded-mode queue: a bounded channel into a worker task in the same process, running the
//! same worker code a separate `workers` process would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use protocol::job::Job;
use storage::SnapshotStore;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::queue::{JobQueue, QueueError};
use crate::snapshot::SnapshotWorker;

#[derive(Debug, Clone)]
pub struct InProcessQueueConfig {
    /// Jobs buffered before `publish` waits.
    pub capacity: usize,
    /// Jobs the worker takes per batch (one store transaction).
    pub batch: usize,
    /// First retry delay after a failed store write; doubles up to 30 s.
    pub retry_delay: Duration,
}

impl Default for InProcessQueueConfig {
    fn default() -> Self {
        Self { capacity: 4096, batch: 64, retry_delay: Duration::from_millis(200) }
    }
}

pub struct InProcessQueue {
    tx: mpsc::Sender<Job>,
    /// Published but not yet durably handled; `flush` waits for zero.
    pending: Arc<Pending>,
}

#[derive(Default)]
struct Pending {
    count: AtomicU64,
    drained: Notify,
}

impl InProcessQueue {
    /// Start the worker on `tracker`. It stops after `cancel`, once it has handled what was queued.
    pub fn start(
        store: Arc<dyn SnapshotStore>,
        config: InProcessQueueConfig,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let pending = Arc::new(Pending::default());
        let worker = Worker { rx, snapshots: SnapshotWorker::new(store), pending: pending.clone(), config };
        tracker.spawn(worker.run(cancel));
        Arc::new(Self { tx, pending })
    }
}

#[async_trait]
impl JobQueue for InProcessQueue {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(job).await.is_err() {
            self.pending.done(1);
            return Err(QueueError::Closed);
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), QueueError> {
        loop {
            let drained = self.pending.drained.notified();
            if self.pending.count.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            if self.tx.is_closed() {
                return Err(QueueError::Closed);
            }
            drained.await;
        }
    }
}

impl Pending {
    fn done(&self, n: u64) {
        if self.count.fetch_sub(n, Ordering::AcqRel) == n {
            self.drained.notify_waiters();
        }
    }
}

struct Worker {
    rx: mpsc::Receiver<Job>,
    snapshots: SnapshotWorker,
    pending: Arc<Pending>,
    config: InProcessQueueConfig,
}

impl Worker {
    async fn run(mut self, cancel: CancellationToken) {
        let mut batch = Vec::with_capacity(self.config.batch);
        loop {
            tokio::select! {
                received = self.rx.recv_many(&mut batch, self.config.batch) => {
                    if received == 0 {
                        return; // every sender is gone
                    }
                }
                () = cancel.cancelled() => break,
            }
            self.handle(&mut batch, &cancel).await;
        }
        // Shutting down: handle whatever is still queued, then stop.
        self.rx.close();
        while self.rx.recv_many(&mut batch, self.config.batch).await > 0 {
            self.handle(&mut batch, &CancellationToken::new()).await;
        }
    }

    /// Handle one batch, retrying with backoff until the store takes it: a job is never dropped.
    /// Only cancellation during a retry wait gives up, and then it says so in the log.
    async fn handle(&self, batch: &mut Vec<Job>, cancel: &CancellationToken) {
        let n = batch.len() as u64;
        let mut delay = self.config.retry_delay;
        loop {
            match self.snapshots.handle(batch).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, jobs = n, retry_in = ?delay, "snapshot batch failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cancel.cancelled() => {
                            tracing::error!(jobs = n, "shutdown during store outage: snapshot jobs not written");
                            break;
                        }
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        batch.clear();
        self.pending.done(n);
    }
}
