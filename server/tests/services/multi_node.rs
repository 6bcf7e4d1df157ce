//! One room across several server processes through a real Redis: convergence, a late node,
//! Redis restarted mid-edit, a node killed mid-edit.

use crate::support;

use std::time::Duration;

use support::YClient;
use support::processes::{Node, OwnRedis};
use yrs::{Array, GetString, Map, Text, Transact};

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "multi-node-test-secret-of-at-least-32-bytes";

async fn node(redis: &OwnRedis, dir: &tempfile::TempDir, name: &str) -> Node {
    node_with(redis, dir, name, &[]).await
}

/// A node on `redis` with `extra` server flags after the usual ones.
async fn node_with(redis: &OwnRedis, dir: &tempfile::TempDir, name: &str, extra: &[&str]) -> Node {
    let url = redis.url();
    let mut args = vec!["--allow-anonymous", "--ws-connects-per-min", "0"];
    args.extend_from_slice(extra);
    Node::start(&dir.path().join(name), &[("REDIS_URL", url.as_str()), ("JWT_SECRET", SECRET)], &args).await
}

fn insert(client: &YClient, text: &str) {
    let t = client.doc.get_or_insert_text("text");
    let mut txn = client.doc.transact_mut();
    let end = t.len(&txn);
    t.insert(&mut txn, end, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_three_nodes_converge_and_a_late_node_catches_up() {
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let nodes = [node(&redis, &dir, "a").await, node(&redis, &dir, "b").await, node(&redis, &dir, "c").await];
    let mut clients = Vec::new();
    for n in &nodes {
        clients.push(YClient::connect(&n.ws_url("shared")).await);
    }
    for c in &clients {
        c.wait_for("sync", WAIT, |c| c.shared().synced).await;
    }
    for i in 0..20 {
        clients[0].doc.get_or_insert_text("text").insert(
            &mut clients[0].doc.transact_mut(),
            0,
            &format!("a{i} "),
        );
        clients[1].doc.get_or_insert_map("map").insert(
            &mut clients[1].doc.transact_mut(),
            format!("b{i}"),
            i,
        );
        clients[2].doc.get_or_insert_array("array").push_back(&mut clients[2].doc.transact_mut(), i);
    }
    for c in &clients {
        c.wait_for("every node's edits", WAIT, |c| {
            // Root types first: getting one needs a write transaction, so none may be open.
            let (text, map, array) = (
                c.doc.get_or_insert_text("text"),
                c.doc.get_or_insert_map("map"),
                c.doc.get_or_insert_array("array"),
            );
            let txn = c.doc.transact();
            text.get_string(&txn).matches('a').count() == 20 && map.len(&txn) == 20 && array.len(&txn) == 20
        })
        .await;
    }
    assert!(clients.iter().all(|c| c.json() == clients[0].json()), "all three converged");

    let late = node(&redis, &dir, "d").await;
    let late_client = YClient::connect(&late.ws_url("shared")).await;
    late_client
        .wait_for("the late node's client has everything", WAIT, |c| c.json() == clients[0].json())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_edit_converges_without_client_action() {
    let mut redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(&redis, &dir, "a").await, node(&redis, &dir, "b").await);
    let on_a = YClient::connect(&a.ws_url("outage")).await;
    let on_b = YClient::connect(&b.ws_url("outage")).await;
    // A second client on node b shows what node b has applied.
    let witness_b = YClient::connect(&b.ws_url("outage")).await;
    insert(&on_a, "before ");
    on_b.wait_for("relayed before the outage", WAIT, |c| c.text("text") == "before ").await;

    redis.stop();
    insert(&on_a, "during-a ");
    insert(&on_b, "during-b ");
    witness_b.wait_for("node b applied its outage edit", WAIT, |c| c.text("text").contains("during-b")).await;
    // Node a notices the outage (its relay health check) and says so, still serving.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (status, body) = loop {
        let (status, body) = support::http_get(&format!("http://{}/ready", a.addr)).await;
        if status != 200 || body.contains(r#""status":"degraded""#) {
            break (status, body);
        }
        assert!(tokio::time::Instant::now() < deadline, "node a never reported the outage: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!on_a.text("text").contains("during-b"), "nothing crosses while Redis is down");
    assert_eq!(status, 200, "a node without Redis keeps serving: {body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "degraded", "{body}");
    assert_eq!(ready["relay"], serde_json::json!({ "backend": "redis", "status": "degraded" }), "{body}");

    redis.restart();
    for c in [&on_a, &on_b] {
        c.wait_for("both outage edits everywhere", WAIT, |c| {
            let text = c.text("text");
            text.contains("during-a") && text.contains("during-b")
        })
        .await;
    }
    assert_eq!(on_a.json(), on_b.json());
    insert(&on_b, "after");
    on_a.wait_for("relay works again", WAIT, |c| c.text("text").ends_with("after")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing_its_clients_sent() {
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(&redis, &dir, "a").await, node(&redis, &dir, "b").await);
    let on_a = YClient::connect(&a.ws_url("crash")).await;
    let on_b = YClient::connect(&b.ws_url("crash")).await;
    for c in [&on_a, &on_b] {
        c.wait_for("sync", WAIT, |c| c.shared().synced).await;
    }
    for i in 0..10 {
        insert(&on_a, &format!("a{i} "));
    }
    on_b.wait_for("a's edits on b", WAIT, |c| c.text("text").matches('a').count() == 10).await;
    a.kill();
    on_a.wait_closed(WAIT).await;
    insert(&on_b, "b-still-works ");
    // The client of the dead node reconnects to b with its document: nothing is lost.
    let back = YClient::connect_with_doc(&b.ws_url("crash"), on_a.doc.clone()).await;
    insert(&back, "a-after-crash");
    on_b.wait_for("the reconnected client's edit", WAIT, |c| c.text("text").contains("a-after-crash")).await;
    back.wait_for("b's edit", WAIT, |c| c.text("text").contains("b-still-works")).await;
    assert_eq!(back.json(), on_b.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awareness_crosses_nodes_and_leaves_with_its_client() {
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(&redis, &dir, "a").await, node(&redis, &dir, "b").await);
    let on_a = YClient::connect(&a.ws_url("cursors")).await;
    let on_b = YClient::connect(&b.ws_url("cursors")).await;
    for c in [&on_a, &on_b] {
        c.wait_for("sync", WAIT, |c| c.shared().synced).await;
    }
    on_a.set_awareness(1, r#"{"user":"ada","cursor":1}"#);
    let ada = on_a.client_id();
    on_b.wait_for("a's cursor on b", WAIT, |c| c.shared().awareness.contains_key(&ada)).await;
    on_a.close();
    on_b.wait_for("a's cursor gone from b", WAIT, |c| !c.shared().awareness.contains_key(&ada)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awareness_of_a_killed_nodes_client_times_out_on_the_others() {
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    // A dead node sends no removal: the others drop its clients' states once they go unrenewed.
    let timeout = ["--awareness-timeout-ms", "1500"];
    let (a, b) = (node_with(&redis, &dir, "a", &timeout).await, node_with(&redis, &dir, "b", &timeout).await);
    let on_a = YClient::connect(&a.ws_url("ghost")).await;
    let on_b = YClient::connect(&b.ws_url("ghost")).await;
    for c in [&on_a, &on_b] {
        c.wait_for("sync", WAIT, |c| c.shared().synced).await;
    }
    on_a.set_awareness(1, r#"{"user":"ada","cursor":1}"#);
    let ada = on_a.client_id();
    on_b.wait_for("a's cursor on b", WAIT, |c| c.shared().awareness.contains_key(&ada)).await;
    a.kill();
    let killed = std::time::Instant::now();
    on_b.wait_for("a's cursor gone from b", WAIT, |c| !c.shared().awareness.contains_key(&ada)).await;
    assert!(killed.elapsed() >= Duration::from_millis(500), "removed before any timeout could run out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collaborator_removed_on_one_node_is_cut_off_on_another() {
    use support::http::{call, create_session, invite, register};
    let mongo = std::env::var("CODECRAFTER_TEST_MONGO_URL")
        .expect("CODECRAFTER_TEST_MONGO_URL is not set: run the tests with scripts/test.sh");
    let database = format!("cc_multi_{}", storage::model::new_id());
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("JWT_SECRET", SECRET),
        ("MONGO_URL", mongo.as_str()),
        ("MONGO_DB", database.as_str()),
    ];
    let a = Node::start(&dir.path().join("a"), &env, &["--ws-connects-per-min", "0"]).await;
    let b = Node::start(&dir.path().join("b"), &env, &["--ws-connects-per-min", "0"]).await;
    let addr_a: std::net::SocketAddr = a.addr.parse().unwrap();
    let owner = register(addr_a, "owner").await;
    let guest = register(addr_a, "guest").await;
    let session = create_session(addr_a, &owner, serde_json::json!({})).await;
    invite(addr_a, &owner, &session, &guest, "editor").await;
    // A token issued by node a works on node b.
    let on_b = YClient::connect(&format!("{}?token={}", b.ws_url(&session), guest.access)).await;
    on_b.wait_for("sync", WAIT, |c| c.shared().synced).await;
    // The shared record says which node holds the guest's socket, and in which room.
    let redis_client = redis::Client::open(url.as_str()).unwrap();
    let record = sockets_record(&redis_client, &guest.id, Some(&session)).await;
    assert_eq!(record.len(), 1, "one node holds the guest's socket: {record:?}");
    let node_b = record[0].0.clone();
    // Watch the node channels: the removal must be sent to node b alone, not to the room.
    let mut watch = redis_client.get_async_pubsub().await.unwrap();
    watch.psubscribe("codecrafter:node:*").await.unwrap();
    let started = std::time::Instant::now();
    let path = format!("/api/sessions/{session}/collaborators/{}", guest.id);
    assert_eq!(call(addr_a, "DELETE", &path, Some(&owner.access), None, &[]).await.status, 204);
    let (code, _) = on_b.wait_closed(Duration::from_secs(2)).await;
    assert_eq!(code, 4403);
    assert!(started.elapsed() < Duration::from_secs(1), "cut off after {:?}", started.elapsed());
    let sent = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut watch.on_message()))
        .await
        .expect("the revocation went to a node channel")
        .unwrap();
    assert_eq!(sent.get_channel_name(), format!("codecrafter:node:{node_b}"));
    // Once the socket is gone, so is the record.
    sockets_record(&redis_client, &guest.id, None).await;
    let client = mongodb::Client::with_uri_str(&mongo).await.unwrap();
    client.database(&database).drop().await.unwrap();
}

/// The `user-sockets` record of `user` (node id, raw field) once it lists `room`, or once it is
/// empty when `room` is `None`.
async fn sockets_record(client: &redis::Client, user: &str, room: Option<&str>) -> Vec<(String, String)> {
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("codecrafter:user-sockets:{user}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let fields: Vec<(String, String)> =
            redis::cmd("HGETALL").arg(&key).query_async(&mut connection).await.unwrap();
        let done = match room {
            Some(room) => fields.iter().any(|(_, value)| value.contains(&format!("\"{room}\""))),
            None => fields.is_empty(),
        };
        if done {
            return fields;
        }
        assert!(tokio::time::Instant::now() < deadline, "record of {user} still {fields:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_catches_up_on_a_document_larger_than_one_message() {
    // The per-message limit bounds what one client sends; a node's sync reply carries everything
    // the asking node lacks, which here is several times that limit.
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let limit = ["--max-message-bytes", "16384"];
    let a = node_with(&redis, &dir, "a", &limit).await;
    let writer = YClient::connect(&a.ws_url("big")).await;
    writer.wait_for("sync", WAIT, |c| c.shared().synced).await;
    for i in 0..10 {
        insert(&writer, &format!("{i}{}", "x".repeat(10_000)));
    }
    let b = node_with(&redis, &dir, "b", &limit).await;
    let late = YClient::connect(&b.ws_url("big")).await;
    late.wait_for("all 100 KB on the late node", WAIT, |c| c.text("text").len() == 10 * 10_001).await;
    assert_eq!(late.text("text"), writer.text("text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_updates_crosses_in_few_coalesced_publishes() {
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    // A long batch delay on the writer's node makes the batching certain rather than likely.
    let a = node_with(&redis, &dir, "a", &["--relay-batch-delay-us", "300000"]).await;
    let b = node(&redis, &dir, "b").await;
    let (writer, reader) =
        (YClient::connect(&a.ws_url("burst")).await, YClient::connect(&b.ws_url("burst")).await);
    writer.wait_for("sync", WAIT, |c| c.shared().synced).await;
    reader.wait_for("sync", WAIT, |c| c.shared().synced).await;
    for i in 0..100 {
        insert(&writer, &format!("<{i}>"));
    }
    reader.wait_for("the whole burst", WAIT, |c| c.text("text") == writer.text("text")).await;
    // The publisher counts a batch once Redis has answered, which can be just after the reader
    // already has it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut queued = counter(&a, "codecrafter_relay_queued_total").await;
    while queued < 100.0 {
        assert!(tokio::time::Instant::now() < deadline, "only {queued} messages counted as queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
        queued = counter(&a, "codecrafter_relay_queued_total").await;
    }
    let published = counter(&a, "codecrafter_relay_published_total").await;
    let coalesced = counter(&a, "codecrafter_relay_coalesced_total").await;
    assert!(coalesced >= 90.0, "{coalesced} of 100 updates coalesced");
    assert!(published * 10.0 <= queued, "{published} publishes for {queued} messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_a_scaled_out_nodes_metrics() {
    // The relay's own families appear only on a node relaying through Redis, once it has.
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(&redis, &dir, "a").await, node(&redis, &dir, "b").await);
    let (writer, reader) =
        (YClient::connect(&a.ws_url("scraped")).await, YClient::connect(&b.ws_url("scraped")).await);
    writer.wait_for("sync", WAIT, |c| c.shared().synced).await;
    reader.wait_for("sync", WAIT, |c| c.shared().synced).await;
    writer.set_awareness(1, r#"{"user":"ada"}"#);
    insert(&writer, "relayed");
    reader.wait_for("the relayed edit", WAIT, |c| c.text("text") == "relayed").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&a, "codecrafter_relay_published_total").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "node a never counted a publish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = support::http::call(a.addr.parse().unwrap(), "GET", "/metrics", None, None, &[]).await;
    assert_eq!(metrics.status, 200);
    support::promtool_check(&metrics.body);
}

/// The value of an unlabelled counter on `node`'s `/metrics` (0 when not yet counted).
async fn counter(node: &Node, name: &str) -> f64 {
    let metrics = support::http::call(node.addr.parse().unwrap(), "GET", "/metrics", None, None, &[]).await;
    metrics.body.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_no_other_node_holds_is_not_published_until_one_opens_it() {
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(&redis, &dir, "a").await, node(&redis, &dir, "b").await);
    let writer = YClient::connect(&a.ws_url("solo")).await;
    writer.wait_for("sync", WAIT, |c| c.shared().synced).await;
    // One update at a time, each taken by the relay (published and answered, or skipped as
    // unheard) before the next: the first answer marks the room as no other node's.
    let handled = || async {
        counter(&a, "codecrafter_relay_queued_total").await
            + counter(&a, "codecrafter_relay_unheard_total").await
    };
    for i in 0..30 {
        let before = handled().await;
        insert(&writer, &format!("<{i}>"));
        let deadline = tokio::time::Instant::now() + WAIT;
        while handled().await < before + 1.0 {
            assert!(tokio::time::Instant::now() < deadline, "update {i} never reached the relay");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter(&a, "codecrafter_relay_unheard_total").await < 25.0 {
        assert!(tokio::time::Instant::now() < deadline, "node a kept publishing a room nobody else holds");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Node b opens the room: its sync request brings everything, and publishing resumes.
    let reader = YClient::connect(&b.ws_url("solo")).await;
    reader.wait_for("what a wrote alone", WAIT, |c| c.text("text") == writer.text("text")).await;
    for i in 30..40 {
        insert(&writer, &format!("<{i}>"));
    }
    reader.wait_for("what a writes now", WAIT, |c| c.text("text").contains("<39>")).await;
    insert(&reader, "<from b>");
    writer.wait_for("b's edit", WAIT, |c| c.text("text").contains("<from b>")).await;
    assert_eq!(reader.text("text"), writer.text("text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_js_clients_on_different_nodes_converge_with_a_rust_client() {
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(&redis, &dir, "a").await, node(&redis, &dir, "b").await);
    let rust_on_b = YClient::connect(&b.ws_url("js-multi")).await;
    insert(&rust_on_b, "from rust on b ");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/cross-node.mjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .args([format!("ws://{}/ws", a.addr), "js-multi".into(), format!("ws://{}/ws", b.addr)])
        .output()
        .await
        .expect("node (scripts/test.sh needs Node 18+)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    rust_on_b
        .wait_for("the JS clients' edits", WAIT, |c| {
            let text = c.text("text");
            text.contains("js on a") && text.contains("js on b")
        })
        .await;
}
