//! Embedded persistence, in process: restart on the same data dir, idle eviction and reload.

use crate::support;

use std::time::Duration;

use server::Config;
use support::{TestServer, http_get};
use yrs::{Map, Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_survive_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(Config::for_tests(dir.path())).await;
    let writer = server.client("kept").await;
    writer.doc.get_or_insert_text("t").insert(&mut writer.doc.transact_mut(), 0, "survives");
    writer.doc.get_or_insert_map("m").insert(&mut writer.doc.transact_mut(), "k", 42);
    let reader = server.client("kept").await;
    // Both edits, not just the first: the reader may sync between them, and a state captured
    // half-way would never equal what the restarted server loads.
    let both_edits = |c: &support::YClient| {
        c.text("t") == "survives" && c.doc.get_or_insert_map("m").get(&c.doc.transact(), "k").is_some()
    };
    reader.wait_for("both edits on server", WAIT, both_edits).await;
    let expected = reader.json();
    drop((writer, reader));
    server.stop().await.expect("graceful shutdown persists every room");

    let server = TestServer::start_with(Config::for_tests(dir.path())).await;
    let fresh = server.client("kept").await;
    fresh.wait_for(&format!("state after restart: {expected}"), WAIT, |c| c.json() == expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_room_is_evicted_and_reloads_with_everything() {
    let server = TestServer::start(|c| c.room_idle_secs = 0).await;
    let writer = server.client("idle").await;
    for i in 0..50 {
        writer.doc.get_or_insert_text("t").insert(&mut writer.doc.transact_mut(), 0, &format!("{i},"));
    }
    let reader = server.client("idle").await;
    reader.wait_for("all edits", WAIT, |c| c.text("t").starts_with("49,")).await;
    let expected = reader.text("t");
    writer.close();
    reader.close();
    wait_for_room_count(&server, 0).await;
    let back = server.client("idle").await;
    back.wait_for("reloaded state", WAIT, |c| c.text("t") == expected).await;
}

/// Waits until `/ready` reports `rooms` rooms held in memory.
async fn wait_for_room_count(server: &TestServer, rooms: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, body) = http_get(&server.http_url("/ready")).await;
        if body.contains(&format!(r#""rooms":{rooms}"#)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "expected {rooms} rooms: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_clients_is_never_evicted() {
    let server = TestServer::start(|c| c.room_idle_secs = 0).await;
    let client = server.client("busy").await;
    client.doc.get_or_insert_text("t").insert(&mut client.doc.transact_mut(), 0, "x");
    // A sentinel: a room left without clients, which the janitor evicts on its next pass. Once it
    // is gone, a pass has run that evicts every room idle for 0 s, and "busy" was kept.
    let sentinel = server.client("sentinel").await;
    sentinel.wait_for("sync", WAIT, |c| c.shared().synced).await;
    wait_for_room_count(&server, 2).await;
    sentinel.close();
    wait_for_room_count(&server, 1).await;
    let other = server.client("busy").await;
    other.wait_for("live state", WAIT, |c| c.text("t") == "x").await;
}
