//! Rooms spanning several nodes through the relay trait, with the in-process hub: the plumbing
//! the Redis relay plugs into (each node here has its own data dir, as separate machines would).

use crate::support;

use std::time::Duration;

use server::LocalHub;
use support::TestServer;
use yrs::{Array, Map, Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_nodes_converge() {
    let hub = LocalHub::new();
    let (a, b) = (TestServer::start_node(&hub).await, TestServer::start_node(&hub).await);
    let on_a = a.client("shared").await;
    let on_b = b.client("shared").await;
    on_a.wait_for("sync", WAIT, |c| c.shared().synced).await;
    on_b.wait_for("sync", WAIT, |c| c.shared().synced).await;
    for i in 0..10 {
        on_a.doc.get_or_insert_text("text").insert(&mut on_a.doc.transact_mut(), 0, &format!("a{i} "));
        on_b.doc.get_or_insert_map("map").insert(&mut on_b.doc.transact_mut(), format!("b{i}"), i);
        on_b.doc.get_or_insert_array("array").push_back(&mut on_b.doc.transact_mut(), i);
    }
    for c in [&on_a, &on_b] {
        c.wait_for("both nodes' edits", WAIT, |c| {
            c.text("text").matches('a').count() == 10
                && c.doc.get_or_insert_map("map").len(&c.doc.transact()) == 10
        })
        .await;
    }
    assert_eq!(on_a.json(), on_b.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_opens_a_room_late_catches_up_with_a_sync_request() {
    let hub = LocalHub::new();
    let a = TestServer::start_node(&hub).await;
    let early = a.client("late-node").await;
    early.doc.get_or_insert_text("t").insert(
        &mut early.doc.transact_mut(),
        0,
        "written before node b had the room",
    );
    // Node a has applied the text once another of its clients holds it.
    let witness = a.client("late-node").await;
    witness
        .wait_for("the text on node a", WAIT, |c| c.text("t") == "written before node b had the room")
        .await;
    // Node b has an empty store: only a sync reply from node a can give it the text.
    let b = TestServer::start_node(&hub).await;
    let late = b.client("late-node").await;
    late.wait_for("text from node a", WAIT, |c| c.text("t") == "written before node b had the room").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awareness_crosses_nodes_and_is_removed_everywhere_on_disconnect() {
    let hub = LocalHub::new();
    let (a, b) = (TestServer::start_node(&hub).await, TestServer::start_node(&hub).await);
    let alice = a.client("aw").await;
    let bob = b.client("aw").await;
    bob.wait_for("sync", WAIT, |c| c.shared().synced).await;
    alice.set_awareness(1, r#"{"name":"alice"}"#);
    let alice_id = alice.client_id();
    bob.wait_for("alice across nodes", WAIT, |c| c.shared().awareness.contains_key(&alice_id)).await;
    alice.kill();
    bob.wait_for("alice removed across nodes", WAIT, |c| !c.shared().awareness.contains_key(&alice_id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_messages_from_another_node_reach_only_the_app_clients() {
    use ::relay::{Relay as _, RelayKind};
    let hub = LocalHub::new();
    let b = TestServer::start_node(&hub).await;
    let app_client = support::YClient::connect(&format!("{}?app=1", b.ws_url("chatty"))).await;
    let stock_client = b.client("chatty").await;
    app_client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    stock_client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    // Another node of the hub, seen from node b exactly as a server node would be.
    let (other_node, _incoming) = hub.join(99);
    other_node.publish(RelayKind::App, "chatty", b"not json");
    let json = r#"{"type":"error","code":"relayed","message":"from node 99"}"#;
    other_node.publish(RelayKind::App, "chatty", json.as_bytes());
    let app_texts = |c: &support::YClient| -> Vec<String> {
        c.shared()
            .frames
            .iter()
            .flat_map(|frame| protocol::decode_frame(frame).filter_map(Result::ok).collect::<Vec<_>>())
            .filter_map(|(message, _)| match message {
                // What every app client gets of its own (`saved`, the `chat_history` on join) is not
                // what this test is about.
                protocol::Message::App(text)
                    if !text.starts_with(r#"{"type":"saved""#)
                        && !text.starts_with(r#"{"type":"chat_history""#) =>
                {
                    Some(text.to_owned())
                }
                _ => None,
            })
            .collect()
    };
    app_client.wait_for("the relayed app message", WAIT, |c| !app_texts(c).is_empty()).await;
    assert_eq!(app_texts(&app_client), vec![json.to_owned()], "JSON only, once");
    // An update fanned out after it: once the stock client has that, it has had everything the
    // room sent it before, app message included had it been (wrongly) sent.
    app_client.doc.get_or_insert_text("t").insert(&mut app_client.doc.transact_mut(), 0, "x");
    stock_client.wait_for("a later update", WAIT, |c| c.text("t") == "x").await;
    assert!(app_texts(&stock_client).is_empty(), "a stock Yjs client never sees app messages");
}
