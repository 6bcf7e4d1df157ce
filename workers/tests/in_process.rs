//! The in-process queue: the conformance suite (on paused time, check by check, and whole on a
//! real multi-thread runtime), then the snapshot and chat handlers behind it on a real embedded
//! store, through a store outage and a shutdown, and the recording `RoomOutput`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use protocol::app::AppMessage;
use protocol::job::{ChatJob, Job, SnapshotJob};
use storage::model::{ChatMessage, MessageCursor};
use storage::{EmbeddedStore, MessageStore, SnapshotStore, SnapshotWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::chat::ChatHandler;
use workers::conformance::{self, QueueFactory, QueueUnderTest};
use workers::snapshot::SnapshotHandler;
use workers::{
    DispatchConfig, Dispatcher, InProcessQueue, InProcessQueueConfig, JobQueue, QueueError, RecordingOutput,
    RoomOutput,
};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact};

struct InProcess;

#[async_trait]
impl QueueFactory for InProcess {
    async fn start(&self, dispatcher: Dispatcher, capacity: usize) -> QueueUnderTest {
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let config = InProcessQueueConfig { capacity, ..InProcessQueueConfig::default() };
        let queue = InProcessQueue::start(dispatcher, config, &tracker, cancel.clone());
        QueueUnderTest { dead_letters: queue.dead_letters(), queue, cancel, tracker }
    }
}

#[tokio::test(start_paused = true)]
async fn keeps_each_rooms_order() {
    conformance::ordering_per_room(&InProcess).await;
}

#[tokio::test(start_paused = true)]
async fn acks_and_redelivers() {
    conformance::acked_jobs_are_not_seen_again_and_failed_ones_are(&InProcess).await;
}

#[tokio::test(start_paused = true)]
async fn flush_waits_for_settlement() {
    conformance::flush_waits_until_everything_is_settled(&InProcess).await;
}

#[tokio::test(start_paused = true)]
async fn dead_letters_poison_without_blocking() {
    conformance::poison_is_dead_lettered_without_blocking_the_jobs_behind_it(&InProcess).await;
}

#[tokio::test(start_paused = true)]
async fn dead_letters_a_kind_without_handler() {
    conformance::a_kind_without_handler_is_dead_lettered(&InProcess).await;
}

#[tokio::test(start_paused = true)]
async fn publish_waits_when_full() {
    conformance::publish_waits_for_room_instead_of_dropping(&InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_whole_suite_on_real_time() {
    conformance::queue_suite(&InProcess).await;
}

/// The real embedded store, made to fail every snapshot write while `down`: a store outage.
struct OutageStore {
    inner: EmbeddedStore,
    down: AtomicBool,
    failed_writes: AtomicUsize,
}

#[async_trait]
impl SnapshotStore for OutageStore {
    async fn load_snapshot(&self, room: &str) -> storage::Result<Option<Vec<u8>>> {
        self.inner.load_snapshot(room).await
    }

    async fn merge_snapshots(
        &self,
        batch: Vec<SnapshotWrite>,
        merge: storage::MergeFn,
    ) -> storage::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            self.failed_writes.fetch_add(1, Ordering::SeqCst);
            return Err(storage::Error::Backend("outage".into()));
        }
        self.inner.merge_snapshots(batch, merge).await
    }

    async fn delete_snapshot(&self, room: &str) -> storage::Result<bool> {
        self.inner.delete_snapshot(room).await
    }
}

#[async_trait]
impl MessageStore for OutageStore {
    async fn save_message(&self, message: &ChatMessage) -> storage::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            self.failed_writes.fetch_add(1, Ordering::SeqCst);
            return Err(storage::Error::Backend("outage".into()));
        }
        self.inner.save_message(message).await
    }

    async fn message(&self, id: &str) -> storage::Result<Option<ChatMessage>> {
        self.inner.message(id).await
    }

    async fn messages(
        &self,
        session_id: &str,
        before: Option<&MessageCursor>,
        limit: u64,
    ) -> storage::Result<Vec<ChatMessage>> {
        self.inner.messages(session_id, before, limit).await
    }
}

struct Setup {
    store: Arc<OutageStore>,
    queue: Arc<InProcessQueue>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

/// The queue as the server wires it, with short retry delays, on a real store.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(OutageStore {
        inner: EmbeddedStore::open(dir.path()).unwrap(),
        down: AtomicBool::new(false),
        failed_writes: AtomicUsize::new(0),
    });
    let config = DispatchConfig {
        retry_delay: Duration::from_millis(5),
        max_retry_delay: Duration::from_millis(20),
        ..DispatchConfig::default()
    };
    let dispatcher = Dispatcher::new(config)
        .register(SnapshotHandler::new(store.clone()))
        .register(ChatHandler::new(store.clone()));
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    let queue = InProcessQueue::start(dispatcher, InProcessQueueConfig::default(), &tracker, cancel.clone());
    Setup { store, queue, cancel, tracker, _dir: dir }
}

/// A Yjs update from its own client inserting `text` into the shared text "t".
fn edit(client_id: u64, text: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(client_id);
    let shared = doc.get_or_insert_text("t");
    shared.insert(&mut doc.transact_mut(), 0, text);
    doc.transact().encode_state_as_update_v1(&yrs::StateVector::default())
}

fn snapshot(room: &str, update: Vec<u8>) -> Job {
    Job::Snapshot(SnapshotJob { room: room.into(), update, changes: 1, dirty_since_ms: 0 })
}

async fn stored_text(store: &OutageStore, room: &str) -> String {
    let bytes = store.load_snapshot(room).await.unwrap().expect("a stored snapshot");
    let doc = yrs::Doc::new();
    let shared = doc.get_or_insert_text("t");
    doc.transact_mut().apply_update(yrs::Update::decode_v1(&bytes).unwrap()).unwrap();
    shared.get_string(&doc.transact())
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test]
async fn snapshots_are_merged_into_the_store() {
    let s = setup();
    s.queue.publish(snapshot("room", edit(1, "a"))).await.unwrap();
    s.queue.publish(snapshot("room", edit(2, "b"))).await.unwrap();
    s.queue.flush().await.unwrap();
    let text = stored_text(&s.store, "room").await;
    assert!(text.contains('a') && text.contains('b') && text.len() == 2, "both edits merged: {text:?}");
}

#[tokio::test]
async fn a_store_outage_is_retried_never_dead_lettered() {
    let s = setup();
    s.store.down.store(true, Ordering::SeqCst);
    s.queue.publish(snapshot("room", edit(1, "x"))).await.unwrap();
    eventually("several writes failed", || s.store.failed_writes.load(Ordering::SeqCst) >= 5).await;
    s.store.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(20), s.queue.flush()).await.unwrap().unwrap();
    assert_eq!(stored_text(&s.store, "room").await, "x");
    assert_eq!(s.queue.dead_letters().total(), 0, "a store outage is transient");
}

#[tokio::test]
async fn after_cancel_it_drains_what_was_queued_even_through_an_outage() {
    let s = setup();
    s.store.down.store(true, Ordering::SeqCst);
    for (client, room) in [(1, "r1"), (2, "r2"), (3, "r3")] {
        s.queue.publish(snapshot(room, edit(client, room))).await.unwrap();
    }
    eventually("a write failed", || s.store.failed_writes.load(Ordering::SeqCst) >= 1).await;
    s.cancel.cancel();
    s.tracker.close();
    let failed_at_cancel = s.store.failed_writes.load(Ordering::SeqCst);
    eventually("still retrying after cancel", || {
        s.store.failed_writes.load(Ordering::SeqCst) >= failed_at_cancel + 3
    })
    .await;
    assert!(matches!(s.queue.publish(snapshot("late", edit(4, "z"))).await, Err(QueueError::Closed)));
    s.store.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(20), s.tracker.wait())
        .await
        .expect("the worker ends once drained");
    for room in ["r1", "r2", "r3"] {
        assert_eq!(stored_text(&s.store, room).await, room);
    }
    assert_eq!(s.queue.dead_letters().total(), 0);
}

/// `persist` is the durability point clients are told "saved" on: in-process that is the store's
/// commit, so it waits through an outage, and it never returns before the store has the job.
#[tokio::test]
async fn persist_returns_once_the_store_has_the_job() {
    let s = setup();
    s.queue.persist(snapshot("room", edit(1, "a"))).await.unwrap();
    assert_eq!(stored_text(&s.store, "room").await, "a", "persisted means in the store");

    s.store.down.store(true, Ordering::SeqCst);
    let queue = s.queue.clone();
    let mut persisting = tokio::spawn(async move { queue.persist(snapshot("room", edit(2, "b"))).await });
    eventually("several writes failed", || s.store.failed_writes.load(Ordering::SeqCst) >= 3).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut persisting).await.is_err(),
        "persist returned while the store was down"
    );
    s.store.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(20), persisting).await.unwrap().unwrap().unwrap();
    assert_eq!(stored_text(&s.store, "room").await.len(), 2, "both edits stored");
}

fn chat(id: &str, text: &str) -> Job {
    Job::Chat(ChatJob {
        id: id.into(),
        room: "room".into(),
        user_id: storage::model::new_id(),
        username: "ann".into(),
        text: text.into(),
        created_at: 1_700_000_000_000,
    })
}

/// A chat message is in the store once `persist` returns; a redelivery (the same job again)
/// stores nothing new; an outage is retried until the store is back, never dead-lettered.
#[tokio::test]
async fn chat_messages_are_stored_once_by_id_through_an_outage() {
    let s = setup();
    let id = storage::model::new_id();
    s.queue.persist(chat(&id, "hello")).await.unwrap();
    let stored = s.store.messages("room", None, 10).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["hello"]);
    s.queue.persist(chat(&id, "hello")).await.unwrap();
    assert_eq!(s.store.messages("room", None, 10).await.unwrap().len(), 1, "a redelivery stores nothing new");

    s.store.down.store(true, Ordering::SeqCst);
    let queue = s.queue.clone();
    let second = storage::model::new_id();
    let job = chat(&second, "later");
    let persisting = tokio::spawn(async move { queue.persist(job).await });
    eventually("several writes failed", || s.store.failed_writes.load(Ordering::SeqCst) >= 3).await;
    s.store.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(20), persisting).await.unwrap().unwrap().unwrap();
    assert!(s.store.message(&second).await.unwrap().is_some());
    assert_eq!(s.queue.dead_letters().total(), 0, "a store outage is transient");

    let refused = s.queue.persist(chat("not-an-id", "x")).await;
    assert!(matches!(refused, Err(QueueError::DeadLettered(_))), "{refused:?}");
}

/// A job the worker cannot handle is not durable: its `persist` fails instead of reporting it saved.
#[tokio::test]
async fn persist_of_a_dead_lettered_job_fails() {
    let tracker = TaskTracker::new();
    let queue = InProcessQueue::start(
        Dispatcher::new(DispatchConfig::default()),
        InProcessQueueConfig::default(),
        &tracker,
        CancellationToken::new(),
    );
    let result = queue.persist(snapshot("room", edit(1, "a"))).await;
    assert!(matches!(result, Err(QueueError::DeadLettered(_))), "{result:?}");
}

#[tokio::test]
async fn recording_output_keeps_what_was_sent_in_order() {
    let recording = Arc::new(RecordingOutput::default());
    let output: Arc<dyn RoomOutput> = recording.clone();
    let sender = tokio::spawn(async move {
        for n in 0..3 {
            output.send("room", &AppMessage::error("e", format!("#{n}"))).await.unwrap();
        }
    });
    let sent = recording.wait_for(3, Duration::from_secs(20)).await.expect("three messages");
    sender.await.unwrap();
    let texts: Vec<String> = sent
        .into_iter()
        .map(|(room, message)| match message {
            AppMessage::Error { message, .. } => format!("{room}{message}"),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["room#0", "room#1", "room#2"]);
}

/// Records the size of every batch it is handed.
#[derive(Clone, Default)]
struct BatchSizes(Arc<std::sync::Mutex<Vec<usize>>>);

#[async_trait]
impl workers::JobHandler for BatchSizes {
    type Job = SnapshotJob;

    async fn handle(
        &self,
        batch: &[workers::Attempt<'_, SnapshotJob>],
    ) -> Result<workers::Handled, workers::Transient> {
        self.0.lock().unwrap().push(batch.len());
        Ok(workers::Handled::all())
    }
}

/// The group commit: jobs arriving within the linger of the first one are handed over together
/// (one store transaction); one arriving after it starts the next batch.
#[tokio::test(start_paused = true)]
async fn jobs_within_the_linger_share_a_batch() {
    let sizes = BatchSizes::default();
    let config = InProcessQueueConfig { linger: Duration::from_millis(5), ..InProcessQueueConfig::default() };
    let dispatcher = Dispatcher::new(DispatchConfig::default()).register(sizes.clone());
    let queue = InProcessQueue::start(dispatcher, config, &TaskTracker::new(), CancellationToken::new());
    let first = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.persist(snapshot("r", vec![0, 0])).await })
    };
    tokio::time::sleep(Duration::from_millis(2)).await;
    queue.persist(snapshot("r", vec![0, 0])).await.unwrap();
    first.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue.persist(snapshot("r", vec![0, 0])).await.unwrap();
    assert_eq!(*sizes.0.lock().unwrap(), [2, 1], "two within the linger, then one alone");
}
