//! `AmqpQueue::barrier`: returns once every snapshot job published before it has been handled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use protocol::job::SnapshotJob;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::amqp::{AmqpConsumer, AmqpQueue, WorkQueue};
use workers::{
    Attempt, DispatchConfig, Dispatcher, Handled, JobConsumer, JobHandler, JobQueue, QueueError, Transient,
};

use crate::{TIMEOUT, config, delete_topology, snapshot};

/// Records the `changes` number of every job it handles, a little slowly (so the barrier has
/// something to wait for).
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<u64>>>);

impl Recording {
    fn seen(&self) -> Vec<u64> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl JobHandler for Recording {
    type Job = SnapshotJob;

    async fn handle(&self, batch: &[Attempt<'_, SnapshotJob>]) -> Result<Handled, Transient> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.lock().unwrap().extend(batch.iter().map(|a| a.job.changes));
        Ok(Handled::all())
    }
}

fn start(consumer: AmqpConsumer, handler: Recording) -> (TaskTracker, CancellationToken) {
    let dispatcher =
        Dispatcher::new(DispatchConfig { batch: 8, ..DispatchConfig::default() }).register(handler);
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    tracker.spawn(dispatcher.run(consumer, cancel.clone()));
    (tracker, cancel)
}

async fn stop(tracker: TaskTracker, cancel: CancellationToken) {
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(TIMEOUT, tracker.wait()).await.expect("the dispatcher stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_once_everything_before_it_is_handled() {
    const JOBS: u64 = 300;
    let config = config(None, 64);
    let queue = AmqpQueue::connect(&config).await.expect("connect the publisher");
    let handler = Recording::default();
    let consumer = AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect the worker");
    let (tracker, cancel) = start(consumer, handler.clone());
    for round in 0..3 {
        // Pipelined, as the server publishes: all in flight, confirms in batches.
        let published = (round * JOBS..(round + 1) * JOBS).map(|seq| queue.publish(snapshot("r", seq)));
        for result in futures_util::future::join_all(published).await {
            result.unwrap();
        }
        tokio::time::timeout(TIMEOUT, queue.barrier("r", TIMEOUT))
            .await
            .expect("the barrier returns")
            .expect("a worker answers");
        let seen = handler.seen();
        assert_eq!(seen.len() as u64, (round + 1) * JOBS, "every job before the barrier is handled");
    }
    // A barrier on an idle queue is answered at once.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        queue.barrier("r", TIMEOUT).await.expect("answered on an idle queue");
    }
    eprintln!("a barrier on an idle snapshot_save: {:?} on average", started.elapsed() / 10);
    stop(tracker, cancel).await;
    queue.close().await.unwrap();
    delete_topology(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_out_without_a_worker() {
    let config = config(None, 16);
    let queue = AmqpQueue::connect(&config).await.expect("connect the publisher");
    queue.publish(snapshot("r", 1)).await.unwrap();
    let waited = queue.barrier("r", Duration::from_millis(300)).await;
    assert!(matches!(waited, Err(QueueError::Timeout(_))), "{waited:?}");
    queue.close().await.unwrap();
    delete_topology(&config).await;
}

/// A worker that took the jobs and the barrier goes away without settling them: the next worker
/// handles the jobs again and answers the barrier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_worker_answers_when_one_dies_before_replying() {
    const JOBS: u64 = 20;
    let config = config(None, 64);
    let queue = Arc::new(AmqpQueue::connect(&config).await.expect("connect the publisher"));
    for seq in 0..JOBS {
        queue.publish(snapshot("r", seq)).await.unwrap();
    }
    let barrier = tokio::spawn({
        let queue = queue.clone();
        async move { queue.barrier("r", TIMEOUT).await }
    });

    // The first worker takes every job (and, behind them, the barrier) and dies unsettled.
    let mut first = AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect");
    let mut taken = Vec::new();
    while (taken.len() as u64) < JOBS {
        let batch = tokio::time::timeout(TIMEOUT, first.next_batch(64)).await.expect("jobs").expect("open");
        taken.extend(batch);
    }
    assert!(!barrier.is_finished(), "nothing was handled yet");
    first.disconnect().await.unwrap();
    drop(taken);
    drop(first);

    let handler = Recording::default();
    let second = AmqpConsumer::connect(&config, WorkQueue::SnapshotSave).await.expect("connect");
    let (tracker, cancel) = start(second, handler.clone());
    tokio::time::timeout(TIMEOUT, barrier).await.expect("answered").unwrap().expect("no error");
    assert_eq!(handler.seen(), (0..JOBS).collect::<Vec<_>>(), "the second worker handled them all, in order");
    stop(tracker, cancel).await;
    queue.close().await.unwrap();
    delete_topology(&config).await;
}
