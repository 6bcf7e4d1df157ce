//! The `codecrafter-worker` binary against the test broker and the MongoDB-wire server
//! (`CODECRAFTER_TEST_MONGO_URL`): it handles what `AmqpQueue` publishes, serves its ops
//! endpoints, stops cleanly on SIGTERM, and what is published while no worker runs waits for the
//! next one.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::job::{Job, SnapshotJob};
use storage::SnapshotStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use workers::JobQueue;
use workers::amqp::{AmqpConfig, AmqpQueue};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact};

use crate::{TIMEOUT, config, delete_topology, unique_prefix, wait_until, wait_within};

fn mongo_url() -> String {
    std::env::var("CODECRAFTER_TEST_MONGO_URL").unwrap_or_else(|_| {
        panic!("CODECRAFTER_TEST_MONGO_URL is not set: start the MongoDB-wire server with `source scripts/services.sh && services_start`")
    })
}

/// A Yjs update from its own client inserting `text` into the shared text "t".
fn edit(client_id: u64, text: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(client_id);
    let shared = doc.get_or_insert_text("t");
    shared.insert(&mut doc.transact_mut(), 0, text);
    doc.transact().encode_state_as_update_v1(&yrs::StateVector::default())
}

fn job(room: &str, client_id: u64, text: &str) -> Job {
    Job::Snapshot(SnapshotJob {
        room: room.into(),
        update: edit(client_id, text),
        changes: 1,
        dirty_since_ms: 0,
    })
}

async fn stored_text(store: &dyn SnapshotStore, room: &str) -> Option<String> {
    let bytes = store.load_snapshot(room).await.unwrap()?;
    let doc = yrs::Doc::new();
    let shared = doc.get_or_insert_text("t");
    doc.transact_mut().apply_update(yrs::Update::decode_v1(&bytes).unwrap()).unwrap();
    Some(shared.get_string(&doc.transact()))
}

/// The broker's pid of the connection named `name`, if open. From the table output: its JSON
/// spells pids in a form `close_connection` does not take.
fn connection_pid(name: &str) -> Option<String> {
    let listing = crate::topology::run_rabbitmqctl(&[
        "list_connections",
        "pid",
        "client_properties",
        "--no-table-headers",
        "--quiet",
    ]);
    let listing = String::from_utf8_lossy(&listing);
    let quoted = format!("\"{name}\"");
    let line = listing.lines().find(|line| line.contains(&quoted))?;
    line.split_whitespace().next().map(str::to_owned)
}

/// A port nobody listens on now (the worker binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `codecrafter-worker`, killed if the test ends without stopping it.
struct Worker {
    child: Child,
    port: u16,
}

impl Worker {
    fn start(amqp: &AmqpConfig, database: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_codecrafter-worker"))
            .env_clear()
            .env("AMQP_URL", &amqp.url)
            .env("CODECRAFTER_AMQP_PREFIX", &amqp.prefix)
            .env("CODECRAFTER_AMQP_DELIVERY_LIMIT", amqp.delivery_limit.to_string())
            .env("MONGO_URL", mongo_url())
            .env("MONGO_DB", database)
            .env("CODECRAFTER_WORKER_HOST", "127.0.0.1")
            .env("CODECRAFTER_WORKER_PORT", port.to_string())
            .env("CODECRAFTER_WORKER_LAG_POLL_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start codecrafter-worker");
        Self { child, port }
    }

    /// `GET path`: the status code and the body.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
        Some((status, body))
    }

    /// `codecrafter_jobs_handled_total{kind="snapshot"}` from `/metrics`.
    async fn handled(&self) -> u64 {
        let Some((200, metrics)) = self.get("/metrics").await else { return 0 };
        metrics
            .lines()
            .find(|line| line.starts_with("codecrafter_jobs_handled_total{kind=\"snapshot\"}"))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .map_or(0, |n| n as u64)
    }

    /// SIGTERM, then the exit status within [`TIMEOUT`].
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_handles_jobs_serves_ops_and_stops_cleanly() {
    const ROOMS: u64 = 50;
    const JOBS: u64 = 2_000;
    let amqp = config(None, 256);
    let database = unique_prefix().replace('-', "_");
    let store = storage::MongoStore::connect(storage::MongoConfig::new(mongo_url(), &database))
        .await
        .expect("connect the MongoDB-wire server");
    let queue = AmqpQueue::connect(&amqp).await.expect("connect the publisher");

    let worker = Worker::start(&amqp, &database);
    wait_until("/health", || async { worker.get("/health").await.is_some_and(|(status, _)| status == 200) })
        .await;
    wait_until("/ready", || async { worker.get("/ready").await.is_some_and(|(status, _)| status == 200) })
        .await;

    // Many jobs in flight, as the server publishes; each room gets edits from many clients.
    let started = Instant::now();
    let published = (0..JOBS).map(|n| {
        let room = format!("room-{}", n % ROOMS);
        let queue = &queue;
        async move { queue.publish(job(&room, n + 1, "x")).await }
    });
    for result in futures_util::future::join_all(published).await {
        result.expect("publish");
    }
    let published_in = started.elapsed();
    // The MongoDB-wire server (Python) is the slow part: give it time on a busy machine.
    wait_within(Duration::from_secs(120), "every job handled", || async { worker.handled().await >= JOBS })
        .await;
    let handled_in = started.elapsed();
    eprintln!(
        "codecrafter-worker (debug build): {JOBS} snapshot jobs over {ROOMS} rooms published in {published_in:?}, \
         all merged into MongoDB-wire after {handled_in:?}: {:.0} jobs/s end to end",
        JOBS as f64 / handled_in.as_secs_f64()
    );
    for room in 0..ROOMS {
        let text = stored_text(&store, &format!("room-{room}")).await.expect("the room's snapshot is stored");
        assert_eq!(text.len() as u64, JOBS / ROOMS, "every edit of room-{room} merged");
    }

    let (status, metrics) = worker.get("/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200);
    for name in [
        "codecrafter_jobs_handled_total",
        "codecrafter_job_handler_seconds_bucket",
        "codecrafter_queue_messages_ready",
        "codecrafter_persist_writes_total",
        "codecrafter_jobs_dead_lettered_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    let lag = format!("codecrafter_queue_messages_ready{{queue=\"{}snapshot_save\"}}", amqp.prefix);
    assert!(metrics.contains(&lag), "/metrics lacks {lag}:\n{metrics}");

    // The broker drops the worker's snapshot_save connection: it reconnects (every queue) and
    // goes on handling.
    let name = format!("codecrafter-worker {}snapshot_save", amqp.prefix);
    let before = connection_pid(&name).expect("the worker's snapshot_save connection is listed");
    crate::topology::run_rabbitmqctl(&["close_connection", &before, "test: connection dropped"]);
    queue.publish(job("after-drop", 1, "again")).await.unwrap();
    wait_until("the reconnected worker handles the job", || async {
        stored_text(&store, "after-drop").await.as_deref() == Some("again")
    })
    .await;
    let after = connection_pid(&name).expect("a new snapshot_save connection");
    assert_ne!(after, before, "reconnected");
    wait_until("/ready again", || async {
        worker.get("/ready").await.is_some_and(|(status, _)| status == 200)
    })
    .await;

    let stopping = Instant::now();
    let status = worker.terminate().await;
    assert_eq!(status.code(), Some(0), "a clean exit on SIGTERM");
    eprintln!("codecrafter-worker stopped {:?} after SIGTERM", stopping.elapsed());

    // Published while no worker runs: the broker keeps it for the next one.
    queue.publish(job("late", 1, "late")).await.unwrap();
    assert_eq!(stored_text(&store, "late").await, None);
    let next = Worker::start(&amqp, &database);
    wait_until("the next worker handles the job", || async {
        stored_text(&store, "late").await.as_deref() == Some("late")
    })
    .await;
    assert_eq!(next.terminate().await.code(), Some(0));

    queue.close().await.unwrap();
    delete_topology(&amqp).await;
}
