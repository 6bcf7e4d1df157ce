//! The one conformance suite every job queue backend must pass (feature `conformance`, tests only).
//! A backend's test target implements [`QueueFactory`] and calls [`queue_suite`], or each check
//! on its own. Each check panics with a message naming the property the queue broke.
//!
//! The checks see a queue only through [`JobQueue`], a [`Dispatcher`] with the suite's own
//! handler, and a [`DeadLetterInbox`], so they run unchanged against a broker. Jobs are snapshot
//! jobs whose `update` bytes tell the probe handler what to do (succeed, fail once, be poison,
//! panic, wait for a gate) and whose `changes` field numbers them.
//!
//! Timing: every wait is for a condition, with a deadline. The two checks that something does
//! *not* happen (a flush or publish still waiting) give it [`ABSENCE_WINDOW`] to wrongly happen:
//! a slow machine can only make them less sensitive, never fail a correct queue. Under
//! `tokio::time::pause` (the in-process runs) that window ends only once every task is idle, and
//! backoff delays take no real time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use protocol::job::{Job, SnapshotJob};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{
    Attempt, DeadLetter, DeadLetters, DispatchConfig, Dispatcher, Handled, JobHandler, JobQueue, Transient,
};

/// Deadline of every wait for something that must happen.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// How long a check gives a queue to do what it must not (see the module doc).
pub const ABSENCE_WINDOW: Duration = Duration::from_millis(300);
/// The dispatchers' first retry delay: a retried job must not come back sooner.
pub const RETRY_DELAY: Duration = Duration::from_millis(50);
/// The reason the probe gives for a poison job.
pub const POISON_REASON: &str = "probe: poison job";

/// A fresh queue under test and the means to stop it.
pub struct QueueUnderTest {
    pub queue: Arc<dyn JobQueue>,
    pub dead_letters: Arc<dyn DeadLetterInbox>,
    /// Stops the consumer side; every task of the queue is on `tracker`.
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

/// Builds queues for the suite.
#[async_trait]
pub trait QueueFactory: Send + Sync {
    /// A new, empty queue holding at most `capacity` jobs that wait for the consumer (publish waits
    /// beyond that), whose consumer side runs `dispatcher` until `cancel`.
    async fn start(&self, dispatcher: Dispatcher, capacity: usize) -> QueueUnderTest;
}

/// Where a backend's dead letters can be read back (in-process: its [`DeadLetters`] sink; a broker:
/// its dead-letter queue).
#[async_trait]
pub trait DeadLetterInbox: Send + Sync {
    /// Every job dead-lettered so far, oldest first.
    async fn dead_letters(&self) -> Vec<DeadLetter>;
}

#[async_trait]
impl DeadLetterInbox for DeadLetters {
    async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.recent()
    }
}

/// Every check, one after the other, each on its own queue.
pub async fn queue_suite(factory: &dyn QueueFactory) {
    ordering_per_room(factory).await;
    acked_jobs_are_not_seen_again_and_failed_ones_are(factory).await;
    flush_waits_until_everything_is_settled(factory).await;
    poison_is_dead_lettered_without_blocking_the_jobs_behind_it(factory).await;
    a_kind_without_handler_is_dead_lettered(factory).await;
    publish_waits_for_room_instead_of_dropping(factory).await;
}

/// Each room's jobs are handled in publish order, across batches and a transient failure.
pub async fn ordering_per_room(factory: &dyn QueueFactory) {
    let probe = Probe::new();
    let q = factory.start(probe.dispatcher(8), 1024).await;
    for seq in 0..30 {
        for room in ["a", "b", "c"] {
            let what = if room == "b" && seq == 10 { FLAKY } else { OK };
            publish(&q, room, seq, what).await;
        }
    }
    flush(&q).await;
    for room in ["a", "b", "c"] {
        assert_eq!(
            probe.done_in(room),
            (0..30).collect::<Vec<_>>(),
            "room {room}: handled once each, in publish order"
        );
    }
    stop(q).await;
}

/// A handled job is not delivered again; a job whose handler failed transiently is, with a higher
/// delivery count, no sooner than the retry delay, and `flush` waits for it.
pub async fn acked_jobs_are_not_seen_again_and_failed_ones_are(factory: &dyn QueueFactory) {
    let probe = Probe::new();
    let q = factory.start(probe.dispatcher(1), 1024).await;
    publish(&q, "r", 0, OK).await;
    publish(&q, "r", 1, FLAKY).await;
    publish(&q, "r", 2, OK).await;
    flush(&q).await;
    assert_eq!(probe.done_in("r"), [0, 1, 2], "flush returned before the retried job was handled");
    let flaky = probe.attempts_of("r", 1);
    let counts: Vec<u32> = flaky.iter().map(|a| a.delivery_count).collect();
    assert_eq!(counts, [1, 2], "a transiently failed job comes again, counted");
    assert!(flaky[1].at - flaky[0].at >= RETRY_DELAY, "retried after {:?}", flaky[1].at - flaky[0].at);

    // A sentinel behind them: once it is handled, an acked job delivered again would have shown.
    publish(&q, "r", 3, OK).await;
    flush(&q).await;
    assert_eq!(probe.done_in("r"), [0, 1, 2, 3]);
    for seq in [0, 2, 3] {
        let counts: Vec<u32> = probe.attempts_of("r", seq).iter().map(|a| a.delivery_count).collect();
        assert_eq!(counts, [1], "job {seq} was acked and must be delivered once");
    }
    stop(q).await;
}

/// `flush` returns only once every published job is settled, not when the queue is merely empty.
pub async fn flush_waits_until_everything_is_settled(factory: &dyn QueueFactory) {
    let probe = Probe::new();
    let q = factory.start(probe.dispatcher(4), 1024).await;
    publish(&q, "r", 0, GATE).await;
    for seq in 1..6 {
        publish(&q, "r", seq, OK).await;
    }
    probe.wait_until_gate_entered().await;
    let queue = q.queue.clone();
    let mut flushing = tokio::spawn(async move { queue.flush().await });
    assert!(
        tokio::time::timeout(ABSENCE_WINDOW, &mut flushing).await.is_err(),
        "flush returned while a job was still being handled"
    );
    probe.open_gate();
    let flushed = tokio::time::timeout(TIMEOUT, flushing).await.expect("flush returns once the gate opens");
    flushed.expect("flush task").expect("flush succeeds");
    assert_eq!(probe.done_in("r"), [0, 1, 2, 3, 4, 5], "flush returned before every job was settled");
    stop(q).await;
}

/// A poison job and a panicking handler's job reach the dead-letter path with their reasons, are
/// settled (flush returns), and the jobs behind them are handled.
pub async fn poison_is_dead_lettered_without_blocking_the_jobs_behind_it(factory: &dyn QueueFactory) {
    let probe = Probe::new();
    let q = factory.start(probe.dispatcher(8), 1024).await;
    publish(&q, "p", 0, PANIC).await;
    flush(&q).await;
    publish(&q, "r", 1, OK).await;
    publish(&q, "r", 2, POISON).await;
    publish(&q, "r", 3, OK).await;
    flush(&q).await;
    assert_eq!(probe.done_in("r"), [1, 3], "the jobs around a poison job are handled");

    let letters = wait_for_dead_letters(&q, 2).await;
    let reasons: BTreeMap<u64, &str> = letters.iter().map(|l| (seq_of(&l.job), l.reason.as_str())).collect();
    assert!(reasons[&0].contains("panicked"), "a handler panic is dead-lettered: {reasons:?}");
    assert_eq!(reasons[&2], POISON_REASON, "the handler's reason travels with the dead letter");
    assert!(letters.iter().all(|l| l.delivery_count >= 1));
    assert_eq!(letters.len(), 2, "only the poison and the panicking job: {letters:?}");

    publish(&q, "r", 4, OK).await;
    flush(&q).await;
    assert_eq!(probe.done_in("r"), [1, 3, 4], "the queue goes on after dead letters");
    assert_eq!(probe.attempts_of("r", 2).len(), 1, "a dead letter is not delivered again");
    stop(q).await;
}

/// A job of a kind with no handler is dead-lettered, never dropped silently.
pub async fn a_kind_without_handler_is_dead_lettered(factory: &dyn QueueFactory) {
    let q = factory.start(Dispatcher::new(dispatch_config(8)), 1024).await;
    publish(&q, "r", 0, OK).await;
    flush(&q).await;
    let letters = wait_for_dead_letters(&q, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(seq_of(&letters[0].job), 0);
    assert!(letters[0].reason.contains("no handler"), "reason: {}", letters[0].reason);
    stop(q).await;
}

/// With the queue full, `publish` waits (neither drops nor fails) and completes once the
/// consumer makes room; nothing published is lost or reordered.
pub async fn publish_waits_for_room_instead_of_dropping(factory: &dyn QueueFactory) {
    const CAPACITY: usize = 2;
    const MORE: u64 = CAPACITY as u64 + 6;
    let probe = Probe::new();
    let q = factory.start(probe.dispatcher(1), CAPACITY).await;
    publish(&q, "r", 0, GATE).await;
    probe.wait_until_gate_entered().await;

    let published = Arc::new(AtomicUsize::new(0));
    let queue = q.queue.clone();
    let progress = published.clone();
    let mut producer = tokio::spawn(async move {
        for seq in 1..=MORE {
            queue.publish(job("r", seq, OK)).await.map_err(|e| format!("publish {seq} failed: {e}"))?;
            progress.fetch_add(1, Ordering::SeqCst);
        }
        Ok::<(), String>(())
    });
    eventually("the queue takes jobs up to its capacity", || published.load(Ordering::SeqCst) >= CAPACITY)
        .await;
    assert!(
        tokio::time::timeout(ABSENCE_WINDOW, &mut producer).await.is_err(),
        "every publish returned while the queue was full (dropped or refused?)"
    );
    assert!(published.load(Ordering::SeqCst) < MORE as usize);

    probe.open_gate();
    let produced =
        tokio::time::timeout(TIMEOUT, producer).await.expect("publish completes once there is room");
    produced.expect("producer task").expect("no publish fails under back-pressure");
    flush(&q).await;
    assert_eq!(probe.done_in("r"), (0..=MORE).collect::<Vec<_>>(), "nothing dropped or reordered");
    stop(q).await;
}

// What the probe does with a job, from its `update` bytes.
const OK: &[u8] = b"ok";
const FLAKY: &[u8] = b"flaky";
const POISON: &[u8] = b"poison";
const PANIC: &[u8] = b"panic";
const GATE: &[u8] = b"gate";

fn job(room: &str, seq: u64, what: &[u8]) -> Job {
    Job::Snapshot(SnapshotJob {
        room: room.to_owned(),
        update: what.to_vec(),
        changes: seq,
        dirty_since_ms: 0,
    })
}

fn seq_of(job: &Job) -> u64 {
    match job {
        Job::Snapshot(snapshot) => snapshot.changes,
        #[allow(unreachable_patterns)]
        _ => u64::MAX,
    }
}

fn dispatch_config(batch: usize) -> DispatchConfig {
    DispatchConfig { batch, retry_delay: RETRY_DELAY, max_retry_delay: RETRY_DELAY * 4 }
}

async fn publish(q: &QueueUnderTest, room: &str, seq: u64, what: &[u8]) {
    let published = tokio::time::timeout(TIMEOUT, q.queue.publish(job(room, seq, what))).await;
    published.expect("publish to a queue with room returns").expect("publish succeeds");
}

async fn flush(q: &QueueUnderTest) {
    let flushed = tokio::time::timeout(TIMEOUT, q.queue.flush()).await;
    flushed.expect("flush returns once every job is settled").expect("flush succeeds");
}

async fn stop(q: QueueUnderTest) {
    q.cancel.cancel();
    q.tracker.close();
    tokio::time::timeout(TIMEOUT, q.tracker.wait()).await.expect("the consumer stops when cancelled");
}

async fn wait_for_dead_letters(q: &QueueUnderTest, n: usize) -> Vec<DeadLetter> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let letters = q.dead_letters.dead_letters().await;
        if letters.len() >= n {
            return letters;
        }
        assert!(Instant::now() < deadline, "{n} dead letters expected, got {letters:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// How often a wait re-checks a condition it cannot be notified of.
const POLL: Duration = Duration::from_millis(5);

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// One time the probe was handed a job.
#[derive(Debug, Clone)]
struct Seen {
    room: String,
    seq: u64,
    delivery_count: u32,
    at: Instant,
}

/// The suite's handler: records what it is handed and what it completes, and behaves as each job's
/// `update` says.
#[derive(Clone)]
struct Probe {
    attempts: Arc<Mutex<Vec<Seen>>>,
    done: Arc<Mutex<Vec<Seen>>>,
    gate_entered: Arc<AtomicUsize>,
    gate: Arc<watch::Sender<bool>>,
}

impl Probe {
    fn new() -> Self {
        Self {
            attempts: Arc::default(),
            done: Arc::default(),
            gate_entered: Arc::default(),
            gate: Arc::new(watch::Sender::new(false)),
        }
    }

    fn dispatcher(&self, batch: usize) -> Dispatcher {
        Dispatcher::new(dispatch_config(batch)).register(self.clone())
    }

    fn done_in(&self, room: &str) -> Vec<u64> {
        lock(&self.done).iter().filter(|s| s.room == room).map(|s| s.seq).collect()
    }

    fn attempts_of(&self, room: &str, seq: u64) -> Vec<Seen> {
        lock(&self.attempts).iter().filter(|s| s.room == room && s.seq == seq).cloned().collect()
    }

    async fn wait_until_gate_entered(&self) {
        eventually("the handler holds the gated job", || self.gate_entered.load(Ordering::SeqCst) > 0).await;
    }

    fn open_gate(&self) {
        self.gate.send_replace(true);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl JobHandler for Probe {
    type Job = SnapshotJob;

    async fn handle(&self, batch: &[Attempt<'_, SnapshotJob>]) -> Result<Handled, Transient> {
        let seen = |a: &Attempt<'_, SnapshotJob>| Seen {
            room: a.job.room.clone(),
            seq: a.job.changes,
            delivery_count: a.delivery_count,
            at: Instant::now(),
        };
        lock(&self.attempts).extend(batch.iter().map(seen));
        let is = |what: &[u8]| batch.iter().any(|a| a.job.update == what);
        if batch.iter().any(|a| a.job.update == FLAKY && !a.redelivered()) {
            return Err(Transient::new("probe: a flaky job's first delivery fails"));
        }
        if is(PANIC) {
            panic!("probe: a panicking job");
        }
        if is(GATE) {
            self.gate_entered.fetch_add(1, Ordering::SeqCst);
            let mut open = self.gate.subscribe();
            let _ = open.wait_for(|open| *open).await;
        }
        let mut handled = Handled::all();
        for (index, attempt) in batch.iter().enumerate() {
            if attempt.job.update == POISON {
                handled.poison(index, POISON_REASON);
            } else {
                lock(&self.done).push(seen(attempt));
            }
        }
        Ok(handled)
    }
}
