//! Chat on the scaled-out backends, across two nodes sharing one MongoDB database and one Redis:
//! a message sent on one node reaches the other node's app clients (Redis relay), is stored once in
//! MongoDB and counted in its session, its retry on the other node (the client reconnected there)
//! is the same message, the rate limit holds across nodes, and a client joining on the other node
//! gets the history from the Redis list, or from MongoDB once the list is gone. With Redis down,
//! chat goes on: sent, saved, and the history read from MongoDB.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::TestServer;
use support::chat::{answer, chat, member, of_type};
use support::http::{call, create_session, register};
use support::processes::OwnRedis;
use yrs::{Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

fn env_url(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh, which starts Redis and the MongoDB-wire server"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_across_two_nodes_on_mongodb_and_redis() {
    let id = storage::model::new_id();
    let (database, prefix) = (format!("cc_chat_{id}"), format!("test:{id}:"));
    let node = |dir: &std::path::Path| {
        let mut config = server::Config::for_tests(dir);
        config.allow_anonymous = false;
        config.mongo_url = Some(env_url("CODECRAFTER_TEST_MONGO_URL"));
        config.mongo_db = database.clone();
        config.redis_url = Some(env_url("CODECRAFTER_TEST_REDIS_URL"));
        config.redis_prefix = prefix.clone();
        config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes-long".into());
        config.chat_messages_per_min = 4;
        config
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestServer::start_with(node(dir_a.path())).await;
    let b = TestServer::start_with(node(dir_b.path())).await;
    let owner = register(a.addr, "owner").await;
    let session = create_session(a.addr, &owner, json!({})).await;

    let listener = member(b.addr, &session, Some(&owner)).await;
    let sender = member(a.addr, &session, Some(&owner)).await;
    // Chat crosses nodes at most once: first make sure both nodes hear the room (an edit crosses).
    sender.doc.get_or_insert_text("t").insert(&mut sender.doc.transact_mut(), 0, "probe");
    listener.wait_for("the probe edit", WAIT, |c| c.text("t") == "probe").await;
    sender.send_raw(chat("first", "n1"));
    assert_eq!(answer(&sender, "n1").await["type"], "chat_saved");
    let first_id = answer(&sender, "n1").await["id"].as_str().unwrap().to_owned();
    listener.wait_for("the chat on the other node", WAIT, |c| !of_type(c, "chat").is_empty()).await;
    assert_eq!(of_type(&listener, "chat")[0]["id"], first_id.as_str());

    // The client reconnects to the other node and sends its message again.
    listener.send_raw(chat("first", "n1"));
    let retried = answer(&listener, "n1").await;
    assert_eq!(
        (retried["type"].as_str(), retried["id"].as_str()),
        (Some("chat_saved"), Some(first_id.as_str()))
    );

    // Two counted so far (the retry counted); two more fit in the minute, on either node.
    sender.send_raw(chat("second", "n2"));
    assert_eq!(answer(&sender, "n2").await["type"], "chat_saved");
    listener.send_raw(chat("over", "n3"));
    assert_eq!(answer(&listener, "n3").await["type"], "chat_saved");
    sender.send_raw(chat("over", "n4"));
    assert_eq!(answer(&sender, "n4").await["code"], "chat_rate_limited", "the budget is shared by the nodes");

    let late = member(b.addr, &session, Some(&owner)).await;
    late.wait_for("the history", WAIT, |c| !of_type(c, "chat_history").is_empty()).await;
    let texts = |history: &Value| -> Vec<String> {
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&of_type(&late, "chat_history")[0]), ["first", "second", "over"]);

    let path = format!("/api/sessions/{session}/messages?limit=2");
    let page = call(b.addr, "GET", &path, Some(&owner.access), None, &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(texts(&page.json()), ["second", "over"]);
    let older =
        format!("/api/sessions/{session}/messages?limit=2&before={}", page.json()["next"].as_str().unwrap());
    let older = call(a.addr, "GET", &older, Some(&owner.access), None, &[]).await.json();
    assert_eq!((texts(&older), older["next"].clone()), (vec!["first".to_owned()], Value::Null));

    // Straight from MongoDB: one copy each, counted once each.
    let store = storage::MongoStore::connect(storage::MongoConfig::new(
        env_url("CODECRAFTER_TEST_MONGO_URL"),
        &database,
    ))
    .await
    .unwrap();
    use storage::{MessageStore, SessionStore};
    let stored = store.messages(&session, None, 10).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["over", "second", "first"]);
    assert_eq!(store.session(&session).await.unwrap().unwrap().metadata.total_messages, 3);

    // The Redis list is gone (a cache restart): the history comes from MongoDB.
    let redis = redis::Client::open(env_url("CODECRAFTER_TEST_REDIS_URL")).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}room:{session}:messages"))
        .query_async(&mut connection)
        .await
        .unwrap();
    let after = member(a.addr, &session, Some(&owner)).await;
    after.wait_for("the history", WAIT, |c| !of_type(c, "chat_history").is_empty()).await;
    assert_eq!(texts(&of_type(&after, "chat_history")[0]), ["first", "second", "over"]);
    drop((sender, listener, late, after));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    drop_database(&database).await;
}

/// The cache is a helper of chat, not a dependency: without Redis a message is still broadcast,
/// saved and answered, and a joining client gets the history from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_goes_on_while_redis_is_down() {
    let mut redis = OwnRedis::start();
    let database = format!("cc_chat_outage_{}", storage::model::new_id());
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config::for_tests(dir.path());
    config.allow_anonymous = false;
    config.mongo_url = Some(env_url("CODECRAFTER_TEST_MONGO_URL"));
    config.mongo_db = database.clone();
    config.redis_url = Some(redis.url());
    config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes-long".into());
    let server = TestServer::start_with(config).await;
    let owner = register(server.addr, "owner").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    let sender = member(server.addr, &session, Some(&owner)).await;
    redis.stop();

    sender.send_raw(chat("still here", "n"));
    let saved = answer(&sender, "n").await;
    assert_eq!(saved["type"], "chat_saved", "{saved}");
    assert!(of_type(&sender, "chat").iter().any(|m| m["text"] == "still here"), "broadcast too");
    let late = member(server.addr, &session, Some(&owner)).await;
    late.wait_for("the history", WAIT, |c| !of_type(c, "chat_history").is_empty()).await;
    assert_eq!(of_type(&late, "chat_history")[0]["messages"][0]["id"], saved["id"]);
    drop((sender, late));
    server.stop().await.unwrap();
    drop_database(&database).await;
}

async fn drop_database(name: &str) {
    let client = mongodb::Client::with_uri_str(env_url("CODECRAFTER_TEST_MONGO_URL")).await.unwrap();
    client.database(name).drop().await.unwrap();
}
