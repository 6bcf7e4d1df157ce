//! Awareness floods and impersonation (issue 9, item 3): per-connection limits on state size and
//! on client ids, closing with a clear reason; and a connection sets or removes only the ids it
//! introduced, so no one can move another user's cursor or change their name.

use std::time::Duration;

use protocol::{AwarenessEntry, Message, encode_awareness_update};
use serde_json::json;

use crate::support::http::{create_session, invite, register};
use crate::support::{TestServer, YClient};

const WAIT: Duration = Duration::from_secs(10);

fn awareness_frame(entries: &[(u64, u64, &str)]) -> Vec<u8> {
    let mut payload = Vec::new();
    encode_awareness_update(
        entries.iter().map(|&(client_id, clock, state)| AwarenessEntry { client_id, clock, state }),
        &mut payload,
    );
    Message::Awareness(&payload).encode_to_vec()
}

async fn synced(url: &str) -> YClient {
    let client = YClient::connect(url).await;
    client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    client
}

/// The issue's flood: 16 new client ids with 64 KiB states in one message. The first such
/// message closes the connection (state over the default 16 KiB) and nothing of it is kept.
#[tokio::test]
async fn the_reported_flood_is_refused_at_its_first_message() {
    let server = TestServer::start(|_| {}).await;
    let big = format!("\"{}\"", "x".repeat(64 * 1024));
    let entries: Vec<(u64, u64, &str)> = (0..16).map(|i| (1_000 + i, 1, big.as_str())).collect();
    let attacker = synced(&server.ws_url("room")).await;
    attacker.send_raw(awareness_frame(&entries));
    let (code, reason) = attacker.wait_closed(WAIT).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("over the 16384-byte limit"), "{reason}");
    // A joiner is greeted with no state of the attacker's.
    let joiner = synced(&server.ws_url("room")).await;
    let probe = synced(&server.ws_url("room")).await;
    probe.set_awareness(1, r#"{"probe":1}"#);
    joiner
        .wait_for("the probe's state", WAIT, |c| c.shared().awareness.contains_key(&probe.client_id()))
        .await;
    assert_eq!(joiner.shared().awareness.len(), 1, "only the probe: {:?}", joiner.shared().awareness.keys());
}

/// Both limits at their edges, as configured: a state of exactly the limit and as many ids as
/// allowed pass; one byte or one id more closes the connection with 1008 and a reason naming it.
#[tokio::test]
async fn the_limits_hold_at_their_edges() {
    let server = TestServer::start(|config| {
        config.max_awareness_state_bytes = 100;
        config.max_awareness_clients = 2;
    })
    .await;
    let exactly = format!("\"{}\"", "x".repeat(98));
    assert_eq!(exactly.len(), 100);
    let over = format!("\"{}\"", "x".repeat(99));

    let client = synced(&server.ws_url("room")).await;
    client.send_raw(awareness_frame(&[(client.client_id(), 1, &exactly)]));
    let observer = synced(&server.ws_url("room")).await;
    observer
        .wait_for("the state", WAIT, |c| c.shared().awareness.get(&client.client_id()) == Some(&exactly))
        .await;
    client.send_raw(awareness_frame(&[(client.client_id(), 2, &over)]));
    let (code, reason) = client.wait_closed(WAIT).await;
    assert_eq!((code, reason.contains("over the 100-byte limit")), (1008, true), "{reason}");

    let many = synced(&server.ws_url("room")).await;
    many.send_raw(awareness_frame(&[(7_001, 1, "{}"), (7_002, 1, "{}")]));
    observer.wait_for("two ids", WAIT, |c| c.shared().awareness.contains_key(&7_002)).await;
    many.send_raw(awareness_frame(&[(7_003, 1, "{}")]));
    let (code, reason) = many.wait_closed(WAIT).await;
    assert_eq!((code, reason.contains("may hold 2 awareness client ids")), (1008, true), "{reason}");
    // Its states went with it; the refused third never arrived.
    observer.wait_for("its states removed", WAIT, |c| !c.shared().awareness.contains_key(&7_001)).await;
    assert!(!observer.shared().awareness.contains_key(&7_003));
}

/// Bob sends awareness for Alice's client id (her name and cursor) along with his own. Alice's
/// state stays hers for everyone, Bob's own entry goes through, and he cannot remove hers either.
#[tokio::test]
async fn a_client_cannot_impersonate_or_remove_another_clients_awareness() {
    let server = TestServer::start(|_| {}).await;
    let alice = synced(&server.ws_url("room")).await;
    let bob = synced(&server.ws_url("room")).await;
    let observer = synced(&server.ws_url("room")).await;
    let alice_id = alice.client_id();
    alice.set_awareness(1, r#"{"user":{"name":"Alice"},"cursor":1}"#);
    observer.wait_for("Alice's state", WAIT, |c| c.shared().awareness.contains_key(&alice_id)).await;

    let forged = r#"{"user":{"name":"Alice"},"cursor":999}"#;
    bob.send_raw(awareness_frame(&[
        (alice_id, 50, forged),
        (bob.client_id(), 1, r#"{"user":{"name":"Bob"}}"#),
    ]));
    observer.wait_for("Bob's own state", WAIT, |c| c.shared().awareness.contains_key(&bob.client_id())).await;
    bob.send_raw(awareness_frame(&[(alice_id, 51, "null")]));
    // A sentinel after the forgeries: once it arrives, they have been handled (per-room order).
    bob.send_raw(awareness_frame(&[(bob.client_id(), 2, r#"{"user":{"name":"Bob"},"sentinel":1}"#)]));
    observer
        .wait_for("the sentinel", WAIT, |c| {
            c.shared().awareness.get(&bob.client_id()).is_some_and(|s| s.contains("sentinel"))
        })
        .await;
    assert_eq!(
        observer.shared().awareness.get(&alice_id).map(String::as_str),
        Some(r#"{"user":{"name":"Alice"},"cursor":1}"#),
        "Alice's state is hers"
    );
    assert!(
        bob.shared().closed.is_none(),
        "left out, not closed: a reconnecting client can race its old socket"
    );
    // Alice's renewal still works, and her leaving removes her state.
    alice.set_awareness(2, r#"{"user":{"name":"Alice"},"cursor":2}"#);
    observer
        .wait_for("Alice's renewal", WAIT, |c| {
            c.shared().awareness.get(&alice_id).is_some_and(|s| s.contains("\"cursor\":2"))
        })
        .await;
    alice.close();
    observer.wait_for("Alice gone", WAIT, |c| !c.shared().awareness.contains_key(&alice_id)).await;
}

/// A signed-in user's second connection (a reconnect racing its old socket) takes over the ids
/// the first one held; the old socket's leaving then removes nothing. Another user cannot.
#[tokio::test]
async fn the_same_user_takes_over_its_awareness_on_reconnect() {
    let server = TestServer::start_secure(|_| {}).await;
    let ada = register(server.addr, "ada").await;
    let eve = register(server.addr, "eve").await;
    let session = create_session(server.addr, &ada, json!({})).await;
    invite(server.addr, &ada, &session, &eve, "editor").await;
    let url = |token: &str| format!("{}?token={token}", server.ws_url(&session));

    let old = synced(&url(&ada.access)).await;
    let id = old.client_id();
    old.set_awareness(1, r#"{"tab":"old"}"#);
    let observer = synced(&url(&eve.access)).await;
    observer
        .wait_for("the old tab", WAIT, |c| c.shared().awareness.get(&id).is_some_and(|s| s.contains("old")))
        .await;

    let eve_tab = synced(&url(&eve.access)).await;
    eve_tab.send_raw(awareness_frame(&[(id, 5, r#"{"tab":"eve"}"#)]));
    let new = synced(&url(&ada.access)).await;
    new.send_raw(awareness_frame(&[(id, 6, r#"{"tab":"new"}"#)]));
    observer
        .wait_for("the new tab", WAIT, |c| c.shared().awareness.get(&id).is_some_and(|s| s.contains("new")))
        .await;
    old.close();
    old.wait_closed(WAIT).await;
    // The old socket is gone; the state it no longer holds stays (sentinel: Eve's own state).
    eve_tab.set_awareness(1, r#"{"sentinel":1}"#);
    observer
        .wait_for("the sentinel", WAIT, |c| c.shared().awareness.contains_key(&eve_tab.client_id()))
        .await;
    assert!(observer.shared().awareness.get(&id).is_some_and(|s| s.contains("new")));
}
