//! The server's side of a broker that may be away: [`OutboxQueue`] publishes straight to the
//! broker while it is reachable and nothing is waiting, and otherwise appends the job to a bounded
//! outbox on disk (`outbox.rs`'s redb file under the data dir) that a replayer task publishes, in
//! order, once the broker is back, reconnecting with backoff meanwhile. So a broker outage never
//! stops the server: edits and chat keep flowing live, what could not be published waits on disk
//! (also across a server restart), `/ready` reports degraded, and the metrics say how much waits.
//!
//! Durability as clients are told it is unchanged: [`JobQueue::persist`] still returns only at the
//! broker's confirm, so a `saved` or `chat_saved` waits for the outage to end (a job on one
//! server's disk is not reachable by the other nodes, which must never serve a room without it).
//! When the outbox is full, `persist` and `publish` fail at once with [`QueueError::Full`]: chat
//! is refused with a clear error, a room's journal keeps its updates in memory and retries.
//!
//! Order: once anything waits in the outbox every new job goes behind it; the replayer publishes
//! it oldest first, a batch at a time with the confirms pipelined. A batch that fails part-way is
//! published again whole: a job may reach the broker twice, which every handler tolerates (CRDT
//! merges, chat written by id).

mod log;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use protocol::job::Job;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::OutboxMetrics;
use crate::queue::{JobQueue, QueueError, QueueStatus};
use log::OutboxLog;

/// The broker as the outbox needs it. Implemented by [`crate::amqp::AmqpQueue`].
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publish `job`; `Ok` at the broker's confirm.
    async fn publish(&self, job: Job) -> Result<(), QueueError>;
    /// Returns once every job published before it on `room`'s queue has been handled.
    async fn barrier(&self, room: &str, timeout: Duration) -> Result<(), QueueError>;
    /// Whether the connection is up, as far as this process knows.
    fn is_connected(&self) -> bool;
}

/// Opens a new connection to the broker.
pub type Connect = Arc<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Broker>, QueueError>> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// The outbox file (`{data_dir}/outbox.redb` in the server).
    pub path: PathBuf,
    /// Bytes of encoded jobs the outbox holds at most.
    pub max_bytes: u64,
    /// Jobs the replayer publishes per round.
    pub replay_batch: usize,
    /// Longest wait between two connection attempts.
    pub max_reconnect_delay: Duration,
    /// How long [`JobQueue::barrier`] waits for the outbox to drain and a worker to answer.
    pub barrier_timeout: Duration,
}

pub struct OutboxQueue {
    inner: Arc<Inner>,
}

struct Inner {
    connect: Connect,
    link: Mutex<Option<Arc<dyn Broker>>>,
    log: Arc<OutboxLog>,
    state: Mutex<State>,
    /// Serializes appends, so the log's order is the order `hold` was called in.
    appending: tokio::sync::Mutex<()>,
    /// Wakes the replayer: something was appended, or the link broke.
    work: Notify,
    /// The outbox became empty.
    drained: Notify,
    /// A link to the broker was made.
    linked: Notify,
    config: OutboxConfig,
    metrics: OutboxMetrics,
    closed: AtomicBool,
}

struct State {
    len: u64,
    bytes: u64,
    next_seq: u64,
    /// `persist` calls waiting for their job to leave the outbox, by its sequence number.
    receipts: BTreeMap<u64, oneshot::Sender<()>>,
}

impl OutboxQueue {
    /// Open the outbox file and start the replayer on `tracker` (it stops at `cancel`; whatever is
    /// still in the outbox then stays on disk for the next start). Connects in the background: the
    /// server starts even while the broker is down.
    pub fn start(
        config: OutboxConfig,
        connect: Connect,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, QueueError> {
        let (log, contents) = OutboxLog::open(&config.path)?;
        if contents.len > 0 {
            tracing::warn!(
                jobs = contents.len,
                bytes = contents.bytes,
                "outbox holds jobs from before: replaying them"
            );
        }
        let inner = Arc::new(Inner {
            connect,
            link: Mutex::new(None),
            log: Arc::new(log),
            state: Mutex::new(State {
                len: contents.len,
                bytes: contents.bytes,
                next_seq: contents.next_seq,
                receipts: BTreeMap::new(),
            }),
            appending: tokio::sync::Mutex::new(()),
            work: Notify::new(),
            drained: Notify::new(),
            linked: Notify::new(),
            config,
            metrics: OutboxMetrics::get(),
            closed: AtomicBool::new(false),
        });
        inner.publish_gauges();
        inner.metrics.max_bytes.set(inner.config.max_bytes as f64);
        tracker.spawn(replay(inner.clone(), cancel));
        Ok(Arc::new(Self { inner }))
    }

    /// Jobs waiting in the outbox.
    pub fn held(&self) -> u64 {
        self.inner.state().len
    }

    /// Whether the broker is reachable and nothing waits: `/ready` is degraded otherwise.
    pub fn is_healthy(&self) -> bool {
        self.held() == 0 && self.inner.current_link().is_some_and(|link| link.is_connected())
    }
}

#[async_trait]
impl JobQueue for OutboxQueue {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        match self.inner.try_direct(&job).await {
            Some(result) => result,
            None => self.inner.hold(&job, false).await.map(drop),
        }
    }

    async fn persist(&self, job: Job) -> Result<(), QueueError> {
        if let Some(result) = self.inner.try_direct(&job).await {
            return result;
        }
        let receipt = self.inner.hold(&job, true).await?;
        match receipt {
            Some(receipt) => receipt.await.map_err(|_| QueueError::Closed),
            None => Ok(()),
        }
    }

    /// What was published went to the broker (confirmed) or is on disk: nothing to wait for. What
    /// the outbox holds at shutdown is replayed at the next start.
    async fn flush(&self) -> Result<(), QueueError> {
        Ok(())
    }

    fn status(&self) -> QueueStatus {
        let connected = self.inner.current_link().is_some_and(|link| link.is_connected());
        let (held, bytes) = {
            let state = self.inner.state();
            (state.len, state.bytes)
        };
        // While jobs are held every new one goes behind them, into the outbox.
        let accepting = (connected && held == 0) || bytes < self.inner.config.max_bytes;
        QueueStatus { backend: "rabbitmq", connected, held, accepting }
    }

    async fn barrier(&self, room: &str) -> Result<(), QueueError> {
        let timeout = self.inner.config.barrier_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let drained = self.inner.drained.notified();
            if self.held() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return Err(QueueError::Backend("the outbox did not drain in time (broker away?)".into()));
            }
        }
        // Just started, or reconnecting: the link may come within the deadline.
        let link = loop {
            let linked = self.inner.linked.notified();
            if let Some(link) = self.inner.current_link() {
                break link;
            }
            if tokio::time::timeout_at(deadline, linked).await.is_err() {
                return Err(QueueError::Timeout("no link to the broker".into()));
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        link.barrier(room, left).await
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current_link(&self) -> Option<Arc<dyn Broker>> {
        self.link.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set_link(&self, link: Option<Arc<dyn Broker>>) {
        self.metrics.connected.set(if link.is_some() { 1.0 } else { 0.0 });
        let up = link.is_some();
        *self.link.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = link;
        if up {
            self.linked.notify_waiters();
        }
    }

    /// The link failed: drop it (unless a newer one replaced it) and let the replayer reconnect.
    fn broken(&self, failed: &Arc<dyn Broker>, error: &QueueError) {
        let mut link = self.link.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if link.as_ref().is_some_and(|current| Arc::ptr_eq(current, failed)) {
            tracing::warn!(%error, "broker link failed: holding jobs in the outbox until it is back");
            *link = None;
            self.metrics.connected.set(0.0);
        }
        drop(link);
        self.work.notify_one();
    }

    /// Publish straight to the broker when it is up and nothing waits in the outbox (which would
    /// have to go first). `None`: hold the job in the outbox instead.
    async fn try_direct(&self, job: &Job) -> Option<Result<(), QueueError>> {
        if self.closed.load(Ordering::Acquire) {
            return Some(Err(QueueError::Closed));
        }
        if self.state().len > 0 {
            return None;
        }
        let link = self.current_link()?;
        match link.publish(job.clone()).await {
            Ok(()) => Some(Ok(())),
            Err(error) => {
                self.broken(&link, &error);
                None
            }
        }
    }

    /// Append `job` to the outbox, durably; with `receipt`, what tells when it reached the broker.
    async fn hold(&self, job: &Job, receipt: bool) -> Result<Option<oneshot::Receiver<()>>, QueueError> {
        let bytes = job.encode();
        let _appending = self.appending.lock().await;
        let seq = {
            let state = self.state();
            if state.bytes + bytes.len() as u64 > self.config.max_bytes {
                self.metrics.refused.increment(1);
                return Err(QueueError::Full);
            }
            state.next_seq
        };
        let log = self.log.clone();
        let len = bytes.len() as u64;
        tokio::task::spawn_blocking(move || log.append(seq, &bytes))
            .await
            .map_err(|error| QueueError::Backend(format!("outbox append: {error}")))??;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            state.next_seq = seq + 1;
            state.len += 1;
            state.bytes += len;
            // Once the replayer has stopped the receipt would never come: dropped, it reads `Closed`.
            if receipt && !self.closed.load(Ordering::Acquire) {
                state.receipts.insert(seq, tx);
            }
        }
        self.publish_gauges();
        self.work.notify_one();
        Ok(receipt.then_some(rx))
    }

    fn publish_gauges(&self) {
        let state = self.state();
        self.metrics.jobs.set(state.len as f64);
        self.metrics.bytes.set(state.bytes as f64);
    }
}

/// The replayer: keeps a link to the broker (reconnecting with backoff) and empties the outbox
/// into it, oldest first.
async fn replay(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let Some(link) = inner.current_link() else {
            match (inner.connect)().await {
                Ok(link) => {
                    tracing::info!("broker link up");
                    inner.set_link(Some(link));
                    delay = Duration::from_millis(100);
                }
                Err(error) => {
                    tracing::warn!(%error, retry_ms = delay.as_millis() as u64, "cannot reach the broker");
                    wait(&cancel, delay).await;
                    delay = (delay * 2).min(inner.config.max_reconnect_delay);
                }
            }
            continue;
        };
        let work = inner.work.notified();
        if inner.state().len == 0 {
            inner.drained.notify_waiters();
            tokio::select! {
                () = work => {}
                () = cancel.cancelled() => break,
                // A link that died with nothing to publish is noticed here.
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if !link.is_connected() {
                        inner.broken(&link, &QueueError::Backend("connection lost".into()));
                    }
                }
            }
            continue;
        }
        if let Err(error) = replay_batch(&inner, &link).await {
            inner.broken(&link, &error);
            wait(&cancel, delay).await;
        }
    }
    inner.closed.store(true, Ordering::Release);
    // Nothing will publish what waits now (it stays on disk for the next start): its `persist`
    // callers get `Closed` instead of waiting for ever.
    inner.state().receipts.clear();
}

/// Publish the oldest jobs of the outbox, confirms pipelined, then remove them.
async fn replay_batch(inner: &Inner, link: &Arc<dyn Broker>) -> Result<(), QueueError> {
    let log = inner.log.clone();
    let max = inner.config.replay_batch.max(1);
    let entries = tokio::task::spawn_blocking(move || log.oldest(max))
        .await
        .map_err(|error| QueueError::Backend(format!("outbox read: {error}")))??;
    let Some(&(last, _)) = entries.last() else { return Ok(()) };
    let mut freed = 0u64;
    let mut publishes = Vec::with_capacity(entries.len());
    for (seq, bytes) in &entries {
        freed += bytes.len() as u64;
        match Job::decode(bytes) {
            Ok(job) => publishes.push(link.publish(job)),
            // Written by this build's encoder, so only a damaged file gets here: the job is lost,
            // loudly, rather than blocking everything behind it forever.
            Err(error) => tracing::error!(seq, %error, "undecodable job in the outbox: dropped"),
        }
    }
    for result in futures_util::future::join_all(publishes).await {
        result?;
    }
    let log = inner.log.clone();
    tokio::task::spawn_blocking(move || log.remove_through(last))
        .await
        .map_err(|error| QueueError::Backend(format!("outbox trim: {error}")))??;
    let receipts = {
        let mut state = inner.state();
        state.len = state.len.saturating_sub(entries.len() as u64);
        state.bytes = state.bytes.saturating_sub(freed);
        let kept = state.receipts.split_off(&(last + 1));
        std::mem::replace(&mut state.receipts, kept)
    };
    for (_, receipt) in receipts {
        let _ = receipt.send(());
    }
    inner.metrics.replayed.increment(entries.len() as u64);
    inner.publish_gauges();
    Ok(())
}

async fn wait(cancel: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = cancel.cancelled() => {}
    }
}
