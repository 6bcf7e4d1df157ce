//! Rooms spanning several nodes through the relay trait, with the in-process hub: the plumbing
//! the Redis relay plugs into (each node here has its own data dir, as separate machines would).

mod support;

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
    tokio::time::sleep(Duration::from_millis(100)).await;
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
