//! The queue against a real broker: the conformance suite check by check, what only a broker does
//! (undecodable messages, the delivery limit, a takeover), and a throughput figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use protocol::job::{Job, SnapshotJob};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::amqp::{AmqpConsumer, AmqpQueue, DeadLetterQueue, RawDeadLetter, Settled, Topology, WorkQueue};
use workers::conformance::{self, DeadLetterInbox, QueueFactory, QueueUnderTest};
use workers::{
    Attempt, DeadLetter, DispatchConfig, Dispatcher, Handled, JobConsumer, JobHandler, JobQueue, QueueError,
    Transient,
};

use crate::{TIMEOUT, config, delete_topology, snapshot};

/// The broker queue as the suite sees it. A broker cannot tell its publisher when a job is
/// handled, so `AmqpQueue::flush` waits for the broker's confirms only; the suite's `flush` waits
/// for the jobs to be settled, which this process knows because it runs the consumer too.
struct SettledFlush {
    queue: AmqpQueue,
    published: AtomicU64,
    settled: Arc<Settled>,
}

#[async_trait]
impl JobQueue for SettledFlush {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        self.published.fetch_add(1, Ordering::AcqRel);
        let published = self.queue.publish(job).await;
        if published.is_err() {
            self.published.fetch_sub(1, Ordering::AcqRel);
        }
        published
    }

    async fn persist(&self, job: Job) -> Result<(), QueueError> {
        self.publish(job).await
    }

    async fn flush(&self) -> Result<(), QueueError> {
        self.queue.flush().await?;
        self.settled.wait_for(self.published.load(Ordering::Acquire)).await;
        Ok(())
    }
}

struct Inbox(DeadLetterQueue);

#[async_trait]
impl DeadLetterInbox for Inbox {
    async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.0.jobs().await.expect("read the dead-letter queue")
    }
}

struct Broker;

#[async_trait]
impl QueueFactory for Broker {
    async fn start(&self, dispatcher: Dispatcher, capacity: usize) -> QueueUnderTest {
        // What waits for the consumer is what is ready in the broker (`max_length`) plus what the
        // consumer has prefetched: the prefetch stays within the capacity.
        let capacity = u32::try_from(capacity).expect("capacity fits the broker's limit");
        let config = config(Some(capacity), u16::try_from(capacity.min(32)).unwrap_or(32));
        let queue = AmqpQueue::connect(&config).await.expect("connect the publisher");
        let consumer =
            AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the consumer");
        let dead = DeadLetterQueue::connect(&config, WorkQueue::SnapshotSave)
            .await
            .expect("connect the dead-letter reader");
        let settled = consumer.settled();
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let stop = cancel.clone();
        tracker.spawn(async move {
            dispatcher.run(consumer, stop).await;
            delete_topology(&config).await;
        });
        let queue = Arc::new(SettledFlush { queue, published: AtomicU64::new(0), settled });
        QueueUnderTest { queue, dead_letters: Arc::new(Inbox(dead)), cancel, tracker }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_each_rooms_order() {
    conformance::ordering_per_room(&Broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_redelivers() {
    conformance::acked_jobs_are_not_seen_again_and_failed_ones_are(&Broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_settlement() {
    conformance::flush_waits_until_everything_is_settled(&Broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_poison_without_blocking() {
    conformance::poison_is_dead_lettered_without_blocking_the_jobs_behind_it(&Broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_a_kind_without_handler() {
    conformance::a_kind_without_handler_is_dead_lettered(&Broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_waits_when_full() {
    conformance::publish_waits_for_room_instead_of_dropping(&Broker).await;
}

/// Poll the dead-letter queue until it holds `n` letters.
async fn wait_for_dead(dead: &DeadLetterQueue, n: usize) -> Vec<RawDeadLetter> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let letters = dead.read_all().await.expect("read the dead-letter queue");
        if letters.len() >= n {
            return letters;
        }
        assert!(Instant::now() < deadline, "{n} dead letters expected, got {letters:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_dead_lettered_at_once() {
    let config = config(None, 16);
    let consumer =
        AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the consumer");
    let dead = DeadLetterQueue::connect(&config, WorkQueue::SnapshotSave)
        .await
        .expect("connect the dead-letter reader");
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    tracker.spawn(Dispatcher::new(DispatchConfig::default()).run(consumer, cancel.clone()));

    // Someone else's bytes on our queue, then a job of a kind this dispatcher has no handler for:
    // it is dead-lettered after the garbage, so once it is there the garbage has been seen.
    let connection = Connection::connect(&config.url, ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let jobs = Topology::new(&config).queue(WorkQueue::SnapshotSave);
    for payload in [b"not a job".to_vec(), snapshot("r", 1).encode()] {
        let confirm = channel
            .basic_publish(
                "".into(),
                jobs.as_str().into(),
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack());
    }
    let letters = wait_for_dead(&dead, 2).await;
    assert!(letters[0].job.is_err(), "the garbage is dead-lettered as it is: {letters:?}");
    assert!(letters[0].reason.starts_with("undecodable job"), "reason: {}", letters[0].reason);
    assert_eq!(letters[0].delivery_count, 1, "dead-lettered at its first delivery");
    assert_eq!(letters[1].job.as_ref().ok(), Some(&snapshot("r", 1)));
    assert!(letters[1].reason.contains("no handler"), "reason: {}", letters[1].reason);

    cancel.cancel();
    tracker.close();
    tokio::time::timeout(TIMEOUT, tracker.wait()).await.expect("the dispatcher stops");
    delete_topology(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeues_are_counted_and_the_delivery_limit_dead_letters() {
    let config = config(None, 16);
    let queue = AmqpQueue::connect(&config).await.expect("connect the publisher");
    let mut consumer =
        AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the consumer");
    let dead = DeadLetterQueue::connect(&config, WorkQueue::SnapshotSave)
        .await
        .expect("connect the dead-letter reader");
    queue.publish(snapshot("r", 7)).await.unwrap();

    // Requeue it each time it comes, until it comes no more: the broker dead-lettered it.
    let mut counts = Vec::new();
    let letters = loop {
        let batch = tokio::select! {
            batch = consumer.next_batch(1) => batch.expect("the consumer is open"),
            letters = wait_for_dead(&dead, 1) => break letters,
        };
        for delivery in batch {
            assert_eq!(delivery.job(), &snapshot("r", 7));
            counts.push(delivery.delivery_count());
            delivery.requeue().await.unwrap();
        }
        assert!(counts.len() <= 10, "the delivery limit (3) never applied: {counts:?}");
    };
    assert_eq!(counts[..3], [1, 2, 3], "x-delivery-count + 1 on each requeue");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].job.as_ref().ok(), Some(&snapshot("r", 7)));
    assert!(letters[0].reason.contains("delivery_limit"), "reason: {}", letters[0].reason);
    consumer.disconnect().await.unwrap();
    delete_topology(&config).await;
}

/// Counts the jobs it is handed.
struct Count(Arc<AtomicUsize>);

#[async_trait]
impl JobHandler for Count {
    type Job = SnapshotJob;

    async fn handle(&self, batch: &[Attempt<'_, SnapshotJob>]) -> Result<Handled, Transient> {
        self.0.fetch_add(batch.len(), Ordering::Relaxed);
        Ok(Handled::all())
    }
}

/// Not a benchmark (BENCHMARKS.md will have the real one): a figure for the report, and a check
/// that many publishes in flight at once all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_publishes_in_flight() {
    const JOBS: u64 = 20_000;
    const IN_FLIGHT: usize = 256;
    let config = config(None, 256);
    let queue = Arc::new(AmqpQueue::connect(&config).await.expect("connect the publisher"));
    let started = Instant::now();
    futures_util::stream::iter(0..JOBS)
        .map(|seq| {
            let queue = queue.clone();
            async move { queue.publish(snapshot("r", seq)).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|published| async move { published.expect("publish") })
        .await;
    queue.flush().await.unwrap();
    let published_in = started.elapsed();
    // One by one, each confirm awaited before the next publish: what a single sequential producer gets.
    const ONE_BY_ONE: u64 = 1_000;
    let started = Instant::now();
    for seq in JOBS..JOBS + ONE_BY_ONE {
        queue.publish(snapshot("r", seq)).await.expect("publish");
    }
    let one_by_one_in = started.elapsed();

    let consumer =
        AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the consumer");
    let settled = consumer.settled();
    let handled = Arc::new(AtomicUsize::new(0));
    let dispatcher = Dispatcher::new(DispatchConfig { batch: 128, ..DispatchConfig::default() })
        .register(Count(handled.clone()));
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    let started = Instant::now();
    tracker.spawn(dispatcher.run(consumer, cancel.clone()));
    let total = JOBS + ONE_BY_ONE;
    tokio::time::timeout(Duration::from_secs(120), settled.wait_for(total)).await.expect("every job handled");
    let consumed_in = started.elapsed();
    assert_eq!(handled.load(Ordering::Relaxed), total as usize);
    eprintln!(
        "{JOBS} persistent jobs published with confirms ({IN_FLIGHT} in flight) at {:.0}/s; {ONE_BY_ONE} one by \
         one at {:.0}/s; {total} consumed and acked (prefetch 256, batches of 128) at {:.0}/s",
        JOBS as f64 / published_in.as_secs_f64(),
        ONE_BY_ONE as f64 / one_by_one_in.as_secs_f64(),
        total as f64 / consumed_in.as_secs_f64()
    );
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(TIMEOUT, tracker.wait()).await.expect("the dispatcher stops");
    delete_topology(&config).await;
}

/// Several workers on the queue keep each room's order: one consumer is active (single active
/// consumer), and the next one takes over where it stopped, its unacked jobs first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_takes_over_in_order() {
    const JOBS: u64 = 10;
    let config = config(None, 16);
    let queue = AmqpQueue::connect(&config).await.expect("connect the publisher");
    let mut first =
        AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the first worker");
    let mut second =
        AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the second worker");
    // Both consume before anything is published: a queue that dealt jobs round-robin would give
    // the second worker every other one.
    for seq in 0..JOBS {
        queue.publish(snapshot("r", seq)).await.unwrap();
    }
    let seqs = |batch: Vec<workers::Delivery>| -> Vec<(u64, workers::Delivery)> {
        batch
            .into_iter()
            .map(|d| match d.job() {
                Job::Snapshot(s) => (s.changes, d),
                other => panic!("only snapshots were published, got {other:?}"),
            })
            .collect()
    };
    let taken = seqs(tokio::time::timeout(TIMEOUT, first.next_batch(4)).await.unwrap().unwrap());
    let mut order: Vec<u64> = Vec::new();
    for (seq, delivery) in taken {
        order.push(seq);
        delivery.ack().await.unwrap();
    }
    // The first worker goes away holding the rest (prefetched, unacked).
    first.disconnect().await.unwrap();
    drop(first);
    while (order.len() as u64) < JOBS {
        let batch =
            tokio::time::timeout(TIMEOUT, second.next_batch(16)).await.expect("the second worker takes over");
        for (seq, delivery) in seqs(batch.expect("the consumer is open")) {
            order.push(seq);
            delivery.ack().await.unwrap();
        }
    }
    assert_eq!(order, (0..JOBS).collect::<Vec<_>>(), "each job once, in publish order, across the takeover");
    second.disconnect().await.unwrap();
    delete_topology(&config).await;
}

/// Handles each job once, after its gate opens; counts per job.
struct Gated {
    seen: Arc<std::sync::Mutex<Vec<u64>>>,
    entered: Arc<tokio::sync::Notify>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
}

#[async_trait]
impl JobHandler for Gated {
    type Job = SnapshotJob;

    async fn handle(&self, batch: &[Attempt<'_, SnapshotJob>]) -> Result<Handled, Transient> {
        self.entered.notify_one();
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        self.seen.lock().unwrap().extend(batch.iter().map(|a| a.job.changes));
        Ok(Handled::all())
    }
}

/// A worker stopped while it holds prefetched jobs handles them before it ends; what it had not
/// taken stays in the queue for the next worker. Nothing is lost or handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_finishes_what_it_holds_and_leaves_the_rest() {
    const JOBS: u64 = 200;
    let config = config(None, 32);
    let queue = AmqpQueue::connect(&config).await.expect("connect the publisher");
    for seq in 0..JOBS {
        queue.publish(snapshot("r", seq)).await.unwrap();
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let entered = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(tokio::sync::watch::Sender::new(false));
    let handler = Gated { seen: seen.clone(), entered: entered.clone(), gate: gate.clone() };
    let dispatcher =
        Dispatcher::new(DispatchConfig { batch: 8, ..DispatchConfig::default() }).register(handler);
    let consumer =
        AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the first worker");
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    tracker.spawn(dispatcher.run(consumer, cancel.clone()));
    tokio::time::timeout(TIMEOUT, entered.notified()).await.expect("the first batch is being handled");
    cancel.cancel();
    gate.send_replace(true);
    tracker.close();
    tokio::time::timeout(TIMEOUT, tracker.wait()).await.expect("the stopped worker ends");
    let first: Vec<u64> = seen.lock().unwrap().clone();
    assert!(
        !first.is_empty() && (first.len() as u64) < JOBS,
        "the first worker handled {} jobs",
        first.len()
    );

    let second =
        AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the second worker");
    let settled = second.settled();
    let dispatcher = Dispatcher::new(DispatchConfig::default()).register(Gated {
        seen: seen.clone(),
        entered: Arc::new(tokio::sync::Notify::new()),
        gate: Arc::new(tokio::sync::watch::Sender::new(true)),
    });
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    tracker.spawn(dispatcher.run(second, cancel.clone()));
    let rest = JOBS - first.len() as u64;
    tokio::time::timeout(TIMEOUT, settled.wait_for(rest)).await.expect("the second worker handles the rest");
    assert_eq!(*seen.lock().unwrap(), (0..JOBS).collect::<Vec<_>>(), "each job once, in order");
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(TIMEOUT, tracker.wait()).await.expect("the second worker ends");
    delete_topology(&config).await;
}
