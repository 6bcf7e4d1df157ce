//! Nothing acknowledged is lost, with the real processes of the scaled-out stack (`codecrafter`
//! nodes, `codecrafter-worker`s, RabbitMQ, the MongoDB-wire server, Redis, each the test's own):
//! every edit a client was told `saved` ends up in MongoDB exactly once, through a worker killed
//! mid-batch, RabbitMQ restarted mid-stream, MongoDB stopped for 30 s, a server node killed with
//! SIGKILL right after its acknowledgements, and two nodes with two workers.
//!
//! Chat the same way: every message answered `chat_saved` is in MongoDB exactly once (by id).
//!
//! Edits are tokens `<writer>.<n>;` appended to Y.Text `t`; a token is acknowledged when the
//! `saved` seq covers its content message (the client's sync step 2 is message 1, token n is
//! message n + 2). "Exactly once" is checked on the stored text: each acknowledged token occurs
//! once, in each writer's order.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use storage::{MessageStore, MongoConfig, MongoStore, SnapshotStore};
use support::YClient;
use support::http::{User, create_session, register};
use support::processes::{Node, OwnRedis};
use support::stack::{OwnMongo, OwnRabbit, Worker};
use yrs::updates::decoder::Decode;
use yrs::{GetString, Text, Transact};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "durability-test-secret-of-at-least-32-bytes";

struct Stack {
    rabbit: OwnRabbit,
    mongo: OwnMongo,
    redis: OwnRedis,
    dir: tempfile::TempDir,
    db: String,
}

impl Stack {
    async fn start() -> Self {
        let (rabbit, mongo) = tokio::join!(OwnRabbit::start(), OwnMongo::start());
        let db = format!("durability_{}", std::process::id());
        Self { rabbit, mongo, redis: OwnRedis::start(), dir: tempfile::tempdir().unwrap(), db }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AMQP_URL", self.rabbit.url()),
            ("MONGO_URL", self.mongo.url()),
            ("MONGO_DB", self.db.clone()),
            ("REDIS_URL", self.redis.url()),
            ("JWT_SECRET", SECRET.to_owned()),
        ]
    }

    async fn node(&self, name: &str) -> Node {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args = [
            "--allow-anonymous",
            "--ws-connects-per-min",
            "0",
            "--persist-debounce-ms",
            "600000",
            "--chat-messages-per-min",
            "0",
            "--rate-limit-requests",
            "0",
        ];
        Node::start(&self.dir.path().join(name), &env, &args).await
    }

    async fn worker(&self) -> Worker {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Worker::start(&env).await
    }

    async fn store(&self) -> Option<MongoStore> {
        MongoStore::connect(MongoConfig::new(self.mongo.url(), &self.db)).await.ok()
    }

    /// The room's text as MongoDB holds it (empty while nothing is stored).
    async fn stored_text(&self, room: &str) -> String {
        let Some(store) = self.store().await else { return String::new() };
        let Ok(Some(bytes)) = store.load_snapshot(room).await else { return String::new() };
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("t");
        doc.transact_mut().apply_update(yrs::Update::decode_v1(&bytes).unwrap()).unwrap();
        text.get_string(&doc.transact())
    }

    /// Wait until MongoDB holds every acknowledged token of `writers`, then check each is there
    /// exactly once and in its writer's order.
    async fn assert_stored_exactly_once(&self, room: &str, writers: &[&Writer]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut text;
        loop {
            text = self.stored_text(room).await;
            if writers.iter().all(|w| w.acknowledged().iter().all(|token| text.contains(token.as_str()))) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "acknowledged edits missing from MongoDB: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for writer in writers {
            let acknowledged = writer.acknowledged();
            assert!(!acknowledged.is_empty(), "{}: nothing was acknowledged", writer.name);
            let mut last = 0;
            for token in &acknowledged {
                assert_eq!(text.matches(token.as_str()).count(), 1, "{token} stored once: {text}");
                let at = text.find(token.as_str()).unwrap();
                assert!(at >= last, "{token} out of its writer's order");
                last = at;
            }
        }
    }
}

/// A signed-in app client chatting in a session.
struct Chatter {
    client: YClient,
    session: String,
    sent: usize,
}

impl Chatter {
    /// `owner` signs up on `node` and creates a session; the chatter connects to `node`.
    async fn create(node: &Node, username: &str) -> (Self, User) {
        let addr = node.addr.parse().unwrap();
        let owner = register(addr, username).await;
        let session = create_session(addr, &owner, json!({})).await;
        (Self::join(node, &session, &owner).await, owner)
    }

    async fn join(node: &Node, session: &str, user: &User) -> Self {
        let url = format!("{}?token={}&app=1", node.ws_url(session), user.access);
        let client = YClient::connect(&url).await;
        client.wait_for("sync", WAIT, |c| c.shared().synced).await;
        client.record_frames();
        Self { client, session: session.to_owned(), sent: 0 }
    }

    fn send(&mut self, count: usize) {
        for _ in 0..count {
            let json = json!({ "type": "chat", "text": format!("message {}", self.sent), "nonce": format!("n{}", self.sent) });
            let text = json.to_string();
            self.client.send_raw(protocol::Message::App(&text).encode_to_vec());
            self.sent += 1;
        }
    }

    /// The ids of the messages answered `chat_saved`.
    fn saved_ids(&self) -> Vec<String> {
        let messages = self.client.app_messages();
        messages
            .iter()
            .filter(|m| m["type"] == "chat_saved")
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn wait_all_saved(&self) {
        self.client
            .wait_for("chat_saved for every message", WAIT, |_| self.saved_ids().len() == self.sent)
            .await;
    }
}

impl Stack {
    /// Wait until MongoDB holds every message `chatter` was told was saved, each exactly once.
    async fn assert_chat_stored_exactly_once(&self, chatter: &Chatter) {
        let saved = chatter.saved_ids();
        assert!(!saved.is_empty(), "no chat message was acknowledged");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stored: Vec<String> = match self.store().await {
                Some(store) => match store.messages(&chatter.session, None, 10_000).await {
                    Ok(messages) => messages.into_iter().map(|m| m.id).collect(),
                    Err(_) => Vec::new(),
                },
                None => Vec::new(),
            };
            if saved.iter().all(|id| stored.contains(id)) {
                for id in &saved {
                    assert_eq!(stored.iter().filter(|s| *s == id).count(), 1, "message {id} stored once");
                }
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "acknowledged chat missing from MongoDB: {stored:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// An app client appending numbered tokens.
struct Writer {
    name: String,
    client: YClient,
    typed: usize,
}

impl Writer {
    async fn connect(node: &Node, room: &str, name: &str) -> Self {
        Self { name: name.to_owned(), client: YClient::connect_app(&node.ws_url(room)).await, typed: 0 }
    }

    fn token(&self, n: usize) -> String {
        format!("{}.{n};", self.name)
    }

    fn type_tokens(&mut self, count: usize) {
        for _ in 0..count {
            let token = self.token(self.typed);
            let text = self.client.doc.get_or_insert_text("t");
            let mut txn = self.client.doc.transact_mut();
            let end = text.len(&txn);
            text.insert(&mut txn, end, &token);
            self.typed += 1;
        }
    }

    fn last_saved(&self) -> u64 {
        self.client
            .app_messages()
            .iter()
            .filter(|m| m["type"] == "saved")
            .filter_map(|m| m["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Tokens covered by a `saved`.
    fn acknowledged(&self) -> Vec<String> {
        let saved = self.last_saved() as usize;
        (0..self.typed).filter(|n| n + 2 <= saved).map(|n| self.token(n)).collect()
    }

    async fn wait_all_saved(&self) {
        let want = self.typed as u64 + 1;
        self.client.wait_for("saved for every token", WAIT, |_| self.last_saved() >= want).await;
    }

    /// Type `count` tokens, a few at a time, while acknowledgements come back.
    async fn stream(&mut self, count: usize) {
        for _ in 0..count / 10 {
            self.type_tokens(10);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing() {
    let stack = Stack::start().await;
    let node = stack.node("a").await;
    let worker = stack.worker().await;
    let mut writer = Writer::connect(&node, "room", "w").await;
    let (mut chatter, _) = Chatter::create(&node, "killworker").await;
    writer.stream(300).await;
    chatter.send(50);
    // Mid-stream: jobs confirmed by the broker, some handed to the worker and not acked yet.
    worker.kill().await;
    writer.stream(300).await;
    chatter.send(50);
    writer.wait_all_saved().await;
    chatter.wait_all_saved().await;
    let _worker = stack.worker().await;
    stack.assert_stored_exactly_once("room", &[&writer]).await;
    stack.assert_chat_stored_exactly_once(&chatter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restarted_mid_stream_loses_nothing() {
    let mut stack = Stack::start().await;
    let node = stack.node("a").await;
    let _worker = stack.worker().await;
    let mut writer = Writer::connect(&node, "room", "w").await;
    let (mut chatter, _) = Chatter::create(&node, "restartbroker").await;
    let reader = YClient::connect(&node.ws_url("room")).await;
    writer.stream(200).await;
    chatter.send(20);
    stack.rabbit.stop();
    // Edits and chat keep flowing live while the broker is away; their `saved` waits.
    writer.stream(200).await;
    chatter.send(20);
    let last = writer.token(writer.typed - 1);
    reader.wait_for("live edits during the outage", WAIT, |c| c.text("t").ends_with(&last)).await;
    stack.rabbit.restart().await;
    writer.stream(100).await;
    writer.wait_all_saved().await;
    chatter.wait_all_saved().await;
    let _worker_after = stack.worker().await;
    stack.assert_stored_exactly_once("room", &[&writer]).await;
    stack.assert_chat_stored_exactly_once(&chatter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_stopped_for_30_s_loses_nothing() {
    let mut stack = Stack::start().await;
    let node = stack.node("a").await;
    let _worker = stack.worker().await;
    let mut writer = Writer::connect(&node, "room", "w").await;
    let (mut chatter, _) = Chatter::create(&node, "mongodown").await;
    writer.stream(100).await;
    writer.wait_all_saved().await;
    stack.mongo.stop().await;
    let outage = tokio::time::Instant::now();
    // The broker holds the jobs; `saved` keeps coming (the broker's confirm is the durability point).
    while outage.elapsed() < Duration::from_secs(30) {
        writer.stream(20).await;
        chatter.send(2);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    writer.wait_all_saved().await;
    chatter.wait_all_saved().await;
    stack.mongo.restart().await;
    stack.assert_stored_exactly_once("room", &[&writer]).await;
    stack.assert_chat_stored_exactly_once(&chatter).await;
}

/// The node that acknowledged the edits dies before any worker wrote them; another node opening
/// the room waits for the workers (the queue's barrier) and serves every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_right_after_its_acks_loses_nothing_and_another_node_serves_it_all() {
    let stack = Stack::start().await;
    let (a, b) = (stack.node("a").await, stack.node("b").await);
    // Opening a room needs a worker to answer its barrier; then the worker goes, so every edit
    // acknowledged after that is in the queue only.
    let first_worker = stack.worker().await;
    let mut writer = Writer::connect(&a, "room", "w").await;
    let (mut chatter, _) = Chatter::create(&a, "killnode").await;
    first_worker.kill().await;
    writer.stream(300).await;
    chatter.send(30);
    writer.wait_all_saved().await;
    chatter.wait_all_saved().await;
    let expected: Vec<String> = writer.acknowledged();
    a.kill();
    let opening = {
        let url = b.ws_url("room");
        tokio::spawn(async move { YClient::connect(&url).await })
    };
    let _worker = stack.worker().await;
    let reader = opening.await.unwrap();
    let last = expected.last().unwrap().clone();
    reader.wait_for("every acknowledged edit on node b", WAIT, |c| c.text("t").contains(&last)).await;
    let text = reader.text("t");
    for token in &expected {
        assert_eq!(text.matches(token.as_str()).count(), 1, "{token} served once by node b: {text}");
    }
    stack.assert_stored_exactly_once("room", &[&writer]).await;
    stack.assert_chat_stored_exactly_once(&chatter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_two_workers_store_every_acknowledged_edit_once() {
    let stack = Arc::new(Stack::start().await);
    let (a, b) = (stack.node("a").await, stack.node("b").await);
    let (_w1, _w2) = (stack.worker().await, stack.worker().await);
    let mut on_a = Writer::connect(&a, "room", "a").await;
    let mut on_b = Writer::connect(&b, "room", "b").await;
    let mut other_room = Writer::connect(&b, "other", "o").await;
    let (mut chat_a, owner) = Chatter::create(&a, "twonodes").await;
    let mut chat_b = Chatter::join(&b, &chat_a.session, &owner).await;
    for _ in 0..20 {
        on_a.stream(10).await;
        on_b.stream(10).await;
        other_room.stream(10).await;
        chat_a.send(2);
        chat_b.send(2);
    }
    on_a.wait_all_saved().await;
    on_b.wait_all_saved().await;
    other_room.wait_all_saved().await;
    chat_a.wait_all_saved().await;
    chat_b.wait_all_saved().await;
    stack.assert_chat_stored_exactly_once(&chat_a).await;
    stack.assert_chat_stored_exactly_once(&chat_b).await;
    stack.assert_stored_exactly_once("room", &[&on_a, &on_b]).await;
    stack.assert_stored_exactly_once("other", &[&other_room]).await;
}

/// The broker is unreachable and the outbox holds nothing more (`--outbox-max-mb 0`): chat is
/// refused up front with a clear error (not broadcast, then lost), edits still flow live between
/// clients, and `/ready` says the queue is degraded. Rooms open without the barrier here
/// (`--queue-barrier-timeout-ms 0`), as an operator may choose during an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_away_and_the_outbox_full_chat_is_refused_and_edits_go_on() {
    let mongo = std::env::var("CODECRAFTER_TEST_MONGO_URL")
        .expect("CODECRAFTER_TEST_MONGO_URL: run the tests with scripts/test.sh");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("outbox_full_{}", std::process::id());
    let dead_broker = format!("amqp://guest:guest@127.0.0.1:{}/%2f", support::processes::free_port());
    let env = [
        ("AMQP_URL", dead_broker.as_str()),
        ("MONGO_URL", mongo.as_str()),
        ("MONGO_DB", db.as_str()),
        ("JWT_SECRET", SECRET),
    ];
    let args = ["--ws-connects-per-min", "0", "--outbox-max-mb", "0", "--queue-barrier-timeout-ms", "0"];
    let node = Node::start(dir.path(), &env, &args).await;
    let addr = node.addr.parse().unwrap();
    let owner = register(addr, "outboxfull").await;
    let session = create_session(addr, &owner, json!({})).await;
    let url = format!("{}?token={}&app=1", node.ws_url(&session), owner.access);
    let (writer, reader) = (YClient::connect(&url).await, YClient::connect(&url).await);
    writer.wait_for("sync", WAIT, |c| c.shared().synced).await;
    reader.wait_for("sync", WAIT, |c| c.shared().synced).await;
    writer.record_frames();
    reader.record_frames();

    let text = json!({ "type": "chat", "text": "hello", "nonce": "n1" }).to_string();
    writer.send_raw(protocol::Message::App(&text).encode_to_vec());
    let refused = |c: &YClient| c.app_messages().into_iter().find(|m| m["nonce"] == "n1");
    writer.wait_for("the refusal", WAIT, |c| refused(c).is_some()).await;
    let answer = refused(&writer).unwrap();
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("chat_unavailable")),
        "{answer}"
    );

    writer.doc.get_or_insert_text("t").insert(&mut writer.doc.transact_mut(), 0, "live");
    reader.wait_for("the edit, live", WAIT, |c| c.text("t") == "live").await;
    assert!(
        reader.app_messages().iter().all(|m| m["type"] != "chat"),
        "a refused message was broadcast: {:?}",
        reader.app_messages()
    );
    let (status, body) = support::http_get(&format!("http://{}/ready", node.addr)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"degraded""#) && body.contains(r#""backend":"rabbitmq""#), "{body}");
}
