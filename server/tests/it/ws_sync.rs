//! Sync over real sockets with real Yjs (yrs) clients: convergence, late joiners, offline edits,
//! large documents and awareness.

use crate::support;

use std::time::Duration;

use support::{TestServer, YClient};
use yrs::{Array, Map, Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_editing_text_map_and_array_concurrently_converge() {
    let server = TestServer::start(|_| {}).await;
    let clients = [server.client("doc").await, server.client("doc").await, server.client("doc").await];
    for c in &clients {
        c.wait_for("initial sync", WAIT, |c| c.shared().synced).await;
    }
    // Concurrent edits: every client writes to every shared type without waiting for the others.
    for round in 0..20 {
        for (i, c) in clients.iter().enumerate() {
            let text = c.doc.get_or_insert_text("text");
            let map = c.doc.get_or_insert_map("map");
            let array = c.doc.get_or_insert_array("array");
            let mut txn = c.doc.transact_mut();
            text.insert(&mut txn, 0, &format!("{i}:{round} "));
            map.insert(&mut txn, format!("k{}", round % 5), format!("{i}-{round}"));
            array.push_back(&mut txn, format!("{i}.{round}"));
        }
    }
    let expected_len = 20 * 3;
    for c in &clients {
        c.wait_for("all array items", WAIT, |c| {
            let array = c.doc.get_or_insert_array("array");
            array.len(&c.doc.transact()) as usize == expected_len
        })
        .await;
    }
    let reference = clients[0].json();
    for c in &clients[1..] {
        c.wait_for("identical content", WAIT, |c| c.json() == reference).await;
    }
    assert!(clients[0].text("text").contains("2:19 "), "text holds every client's edits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_the_full_state() {
    let server = TestServer::start(|_| {}).await;
    let writer = server.client("late").await;
    {
        let text = writer.doc.get_or_insert_text("text");
        for i in 0..100 {
            text.insert(&mut writer.doc.transact_mut(), 0, &format!("line {i}\n"));
        }
    }
    let reader = server.client("late").await;
    reader.wait_for("full state", WAIT, |r| r.text("text") == writer.text("text")).await;
    // A second late joiner is served the same cached state.
    let third = server.client("late").await;
    third.wait_for("full state again", WAIT, |r| r.text("text") == writer.text("text")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_after_a_dropped_socket_merge_on_reconnect() {
    let server = TestServer::start(|_| {}).await;
    let online = server.client("offline").await;
    let traveller = server.client("offline").await;
    traveller.wait_for("sync", WAIT, |c| c.shared().synced).await;
    online.doc.get_or_insert_text("t").insert(&mut online.doc.transact_mut(), 0, "base ");
    traveller.wait_for("base text", WAIT, |c| c.text("t") == "base ").await;

    // The traveller's socket dies; both sides keep editing.
    let doc = traveller.doc.clone();
    traveller.kill();
    doc.get_or_insert_text("t").insert(&mut doc.transact_mut(), 5, "offline ");
    online.doc.get_or_insert_text("t").insert(&mut online.doc.transact_mut(), 0, "online ");

    let back = YClient::connect_with_doc(&server.ws_url("offline"), doc).await;
    for c in [&online, &back] {
        c.wait_for("merged text", WAIT, |c| {
            let t = c.text("t");
            t.contains("offline ") && t.contains("online ") && t.contains("base ")
        })
        .await;
    }
    assert_eq!(online.text("t"), back.text("t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_mib_document_syncs_to_a_fresh_client() {
    let server = TestServer::start(|_| {}).await;
    let writer = server.client("big").await;
    writer.wait_for("sync", WAIT, |c| c.shared().synced).await;
    let chunk: String = "0123456789abcdef".repeat(64 * 1024); // 1 MiB
    let text = writer.doc.get_or_insert_text("text");
    for _ in 0..5 {
        let len = text.len(&writer.doc.transact());
        text.insert(&mut writer.doc.transact_mut(), len, &chunk);
    }
    let fresh = server.client("big").await;
    fresh
        .wait_for("5 MiB of text", Duration::from_secs(30), |c| c.text("text").len() == 5 * chunk.len())
        .await;
    assert_eq!(fresh.text("text"), writer.text("text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awareness_is_relayed_and_removed_when_a_client_vanishes() {
    let server = TestServer::start(|_| {}).await;
    let alice = server.client("aw").await;
    let bob = server.client("aw").await;
    alice.set_awareness(1, r#"{"user":{"name":"alice"},"cursor":3}"#);
    let alice_id = alice.client_id();
    bob.wait_for("alice's cursor", WAIT, |b| {
        b.shared().awareness.get(&alice_id).is_some_and(|s| s.contains("alice"))
    })
    .await;

    // A late joiner is told who is here on connect.
    let carol = server.client("aw").await;
    carol.wait_for("alice on join", WAIT, |c| c.shared().awareness.contains_key(&alice_id)).await;

    alice.kill(); // no close frame, no awareness removal from the client
    bob.wait_for("alice removed", WAIT, |b| !b.shared().awareness.contains_key(&alice_id)).await;
    carol.wait_for("alice removed", WAIT, |c| !c.shared().awareness.contains_key(&alice_id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_awareness_is_answered_with_every_state() {
    let server = TestServer::start(|_| {}).await;
    let alice = server.client("qa").await;
    alice.set_awareness(1, r#"{"name":"alice"}"#);
    let bob = server.client("qa").await;
    let alice_id = alice.client_id();
    bob.wait_for("alice on join", WAIT, |b| b.shared().awareness.contains_key(&alice_id)).await;
    bob.shared().awareness.clear();
    bob.send_raw(protocol::Message::QueryAwareness.encode_to_vec());
    bob.wait_for("alice after query", WAIT, |b| b.shared().awareness.contains_key(&alice_id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awareness_that_is_not_renewed_times_out() {
    let server = TestServer::start(|c| c.awareness_timeout_ms = 400).await;
    let alice = server.client("timeout").await;
    let bob = server.client("timeout").await;
    alice.set_awareness(1, r#"{"name":"alice"}"#);
    let alice_id = alice.client_id();
    bob.wait_for("alice", WAIT, |b| b.shared().awareness.contains_key(&alice_id)).await;
    // Alice stays connected but never renews her state.
    bob.wait_for("alice expired", WAIT, |b| !b.shared().awareness.contains_key(&alice_id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_isolated() {
    let server = TestServer::start(|_| {}).await;
    let a = server.client("room-a").await;
    let b = server.client("room-b").await;
    let b2 = server.client("room-b").await;
    let a2 = server.client("room-a").await;
    for c in [&a, &b, &b2, &a2] {
        c.wait_for("sync", WAIT, |c| c.shared().synced).await;
    }
    a.doc.get_or_insert_text("t").insert(&mut a.doc.transact_mut(), 0, "only in a");
    a2.wait_for("a's edit", WAIT, |c| c.text("t") == "only in a").await;
    // A sentinel in room b, sent once room a has fanned the edit out: had the edit leaked into
    // room b, it would have reached b's socket before the sentinel.
    b2.doc.get_or_insert_text("t").insert(&mut b2.doc.transact_mut(), 0, "only in b");
    b.wait_for("the sentinel in room b", WAIT, |c| c.text("t").contains("only in b")).await;
    assert_eq!(b.text("t"), "only in b", "room b never sees room a's edits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_duplicate_updates_relay_nothing() {
    let server = TestServer::start(|_| {}).await;
    let first = server.client("quiet").await;
    first.doc.get_or_insert_text("t").insert(&mut first.doc.transact_mut(), 0, "x");
    let watcher = server.client("quiet").await;
    watcher.wait_for("sync", WAIT, |c| c.text("t") == "x").await;
    watcher.record_frames();
    // A fresh client's empty sync step 2 and a re-sent update change nothing.
    let joiner = server.client("quiet").await;
    joiner.wait_for("sync", WAIT, |c| c.text("t") == "x").await;
    let duplicate = {
        use yrs::ReadTxn;
        first.doc.transact().encode_state_as_update_v1(&yrs::StateVector::default())
    };
    for update in [&[0u8, 0][..], &duplicate] {
        joiner.send_raw(protocol::Message::Sync(protocol::SyncMessage::Update(update)).encode_to_vec());
    }
    // A sentinel edit from the same client after them: the server handles a connection's messages
    // in order, so once the watcher has the sentinel it has had anything relayed before it.
    joiner.doc.get_or_insert_text("t").insert(&mut joiner.doc.transact_mut(), 1, "y");
    watcher.wait_for("the sentinel", WAIT, |c| c.text("t") == "xy").await;
    // Every update message received, whether or not several share a frame.
    let updates: Vec<Vec<u8>> = watcher
        .shared()
        .frames
        .iter()
        .flat_map(|frame| protocol::decode_frame(frame).filter_map(Result::ok).collect::<Vec<_>>())
        .filter_map(|(message, _)| match message {
            protocol::Message::Sync(protocol::SyncMessage::Update(update)) => Some(update.to_vec()),
            _ => None,
        })
        .collect();
    let (_sentinel, before) = updates.split_last().expect("the sentinel's update");
    assert!(before.is_empty(), "nothing changed, nothing relayed: {before:?}");
}
