//! The outbox's own rules against a broker that can be switched off at will (an in-memory stand-in:
//! these checks need outages at exact moments; the same behaviour against a real RabbitMQ being
//! restarted is in the server's fault tests), on a real redb file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use protocol::job::{Job, SnapshotJob};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::outbox::{Broker, Connect, OutboxConfig, OutboxQueue};
use workers::{JobQueue, QueueError};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Switchable {
    down: AtomicBool,
    published: Mutex<Vec<u64>>,
}

struct Link(Arc<Switchable>);

#[async_trait]
impl Broker for Link {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        if self.0.down.load(Ordering::SeqCst) {
            return Err(QueueError::Backend("broker down".into()));
        }
        // The tests publish snapshot jobs only, numbered in `changes`.
        #[allow(irrefutable_let_patterns)]
        let Job::Snapshot(job) = job else { panic!("not a snapshot job: {job:?}") };
        self.0.published.lock().unwrap().push(job.changes);
        Ok(())
    }

    async fn barrier(&self, _room: &str, _timeout: Duration) -> Result<(), QueueError> {
        Ok(())
    }

    fn is_connected(&self) -> bool {
        !self.0.down.load(Ordering::SeqCst)
    }
}

fn job(n: u64) -> Job {
    Job::Snapshot(SnapshotJob { room: "r".into(), update: vec![0; 100], changes: n, dirty_since_ms: 0 })
}

struct Setup {
    broker: Arc<Switchable>,
    queue: Arc<OutboxQueue>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

fn start(dir: &std::path::Path, broker: Arc<Switchable>, max_bytes: u64) -> Setup {
    let connect_to = broker.clone();
    let connect: Connect = Arc::new(move || {
        let broker = connect_to.clone();
        Box::pin(async move {
            if broker.down.load(Ordering::SeqCst) {
                return Err(QueueError::Backend("connection refused".into()));
            }
            Ok(Arc::new(Link(broker)) as Arc<dyn Broker>)
        })
    });
    let config = OutboxConfig {
        path: dir.join("outbox.redb"),
        max_bytes,
        replay_batch: 4,
        max_reconnect_delay: Duration::from_millis(20),
        barrier_timeout: Duration::from_secs(5),
    };
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    let queue = OutboxQueue::start(config, connect, &tracker, cancel.clone()).unwrap();
    Setup { broker, queue, cancel, tracker }
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test]
async fn while_the_broker_is_away_jobs_wait_on_disk_and_go_out_in_order_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), Arc::default(), 1 << 20);
    until("connected", || s.queue.is_healthy()).await;
    s.queue.persist(job(0)).await.unwrap();
    assert_eq!(s.queue.held(), 0, "published straight to the broker");

    s.broker.down.store(true, Ordering::SeqCst);
    // The first publish finds out the broker is gone and holds its job; so do the next ones.
    for n in 1..=10 {
        s.queue.publish(job(n)).await.unwrap();
    }
    assert_eq!(s.queue.held(), 10);
    assert!(!s.queue.is_healthy());
    let queue = s.queue.clone();
    let mut persisting = tokio::spawn(async move { queue.persist(job(11)).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut persisting).await.is_err(),
        "persist returned while its job was only on this server's disk"
    );

    s.broker.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(WAIT, persisting).await.unwrap().unwrap().unwrap();
    until("outbox empty", || s.queue.held() == 0).await;
    assert_eq!(*s.broker.published.lock().unwrap(), (0..=11).collect::<Vec<_>>(), "in publish order");
    until("healthy again", || s.queue.is_healthy()).await;
}

#[tokio::test]
async fn a_full_outbox_refuses_instead_of_dropping_or_growing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Switchable { down: AtomicBool::new(true), ..Switchable::default() });
    let one = job(0).encode().len() as u64;
    let s = start(dir.path(), broker, one * 3);
    for n in 0..3 {
        s.queue.publish(job(n)).await.unwrap();
    }
    assert!(matches!(s.queue.publish(job(3)).await, Err(QueueError::Full)));
    assert!(matches!(s.queue.persist(job(3)).await, Err(QueueError::Full)));
    s.broker.down.store(false, Ordering::SeqCst);
    until("drained", || s.queue.held() == 0).await;
    s.queue.persist(job(3)).await.unwrap();
    assert_eq!(*s.broker.published.lock().unwrap(), [0, 1, 2, 3]);
}

#[tokio::test]
async fn what_the_outbox_holds_at_shutdown_is_replayed_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Switchable { down: AtomicBool::new(true), ..Switchable::default() });
    let s = start(dir.path(), broker.clone(), 1 << 20);
    for n in 0..5 {
        s.queue.publish(job(n)).await.unwrap();
    }
    s.cancel.cancel();
    s.tracker.close();
    tokio::time::timeout(WAIT, s.tracker.wait()).await.unwrap();
    drop(s);

    broker.down.store(false, Ordering::SeqCst);
    let s = start(dir.path(), broker, 1 << 20);
    until("replayed", || s.broker.published.lock().unwrap().len() == 5).await;
    assert_eq!(*s.broker.published.lock().unwrap(), [0, 1, 2, 3, 4]);
    until("outbox empty", || s.queue.held() == 0).await;
}

/// A `persist` waiting for the broker when the outbox stops is answered `Closed` (its job stays on
/// disk for the next start) rather than left waiting for ever.
#[tokio::test]
async fn a_persist_waiting_when_the_outbox_stops_is_answered_closed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Switchable { down: AtomicBool::new(true), ..Switchable::default() });
    let s = start(dir.path(), broker, 1 << 20);
    let queue = s.queue.clone();
    let waiting = tokio::spawn(async move { queue.persist(job(0)).await });
    until("held", || s.queue.held() == 1).await;
    s.cancel.cancel();
    let result = tokio::time::timeout(WAIT, waiting).await.expect("answered").unwrap();
    assert!(matches!(result, Err(QueueError::Closed)), "{result:?}");
    assert!(matches!(s.queue.persist(job(1)).await, Err(QueueError::Closed)));
}
