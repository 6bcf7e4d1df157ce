//! Yjs updates that would poison a room or make its clients diverge (issue 9, items 1 and 2).
//! Each test fails if the defence it names is removed: validation before yrs, the containment of
//! a yrs failure to its room, persistence surviving any one room's failure.

use std::time::Duration;

use crdt::faults::{PANIC_ON_ENCODE, PANIC_ON_LOAD};
use protocol::{Message, SyncMessage};
use server::Config;
use yrs::{Text, Transact};

use crate::support::processes::Node;
use crate::support::{TestServer, YClient, http_get};

const WAIT: Duration = Duration::from_secs(10);

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Issue 9: client 777777 inserts 5 characters at clock 2^32 - 2, so its range runs past the
/// 32-bit clock (a sync-update message, as sent).
const PAST_THE_CLOCK: &str = "0002180101b1bc2ffeffffff0f040104636f646505787878787800";
/// A 5-long placeholder at clock 0 for the same client, which released the first.
const PLACEHOLDER: &str = "0002090101b1bc2f00000500";

/// A sync-update frame around `update`.
fn update_frame(update: &[u8]) -> Vec<u8> {
    Message::Sync(SyncMessage::Update(update)).encode_to_vec()
}

async fn synced(url: &str) -> YClient {
    let client = YClient::connect(url).await;
    client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    client
}

fn type_into(client: &YClient, name: &str, text: &str) {
    let shared = client.doc.get_or_insert_text(name);
    let len = shared.len(&client.doc.transact());
    shared.insert(&mut client.doc.transact_mut(), len, text);
}

/// The value of an unlabelled Prometheus counter or gauge in `/metrics` text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_reported_frames_are_refused_and_the_room_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(Config::for_tests(dir.path())).await;
    let attacker = synced(&server.ws_url("room")).await;
    attacker.send_raw(hex(PAST_THE_CLOCK));
    let (code, reason) = attacker.wait_closed(WAIT).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("32-bit clock"), "{reason}");
    // The placeholder alone is a harmless GC struct: accepted.
    let second = synced(&server.ws_url("room")).await;
    second.send_raw(hex(PLACEHOLDER));
    // Every joiner still syncs, edits still flow, nothing failed.
    let writer = synced(&server.ws_url("room")).await;
    let reader = synced(&server.ws_url("room")).await;
    type_into(&writer, "code", "still works");
    reader.wait_for("the edit", WAIT, |c| c.text("code") == "still works").await;
    assert!(second.shared().closed.is_none(), "the placeholder was accepted");
    let (_, metrics) = http_get(&server.http_url("/metrics")).await;
    assert_eq!(metric(&metrics, "codecrafter_room_failures_total"), 0.0);
    // And it is saved.
    server.stop().await.unwrap();
    let server = TestServer::start_with(Config::for_tests(dir.path())).await;
    let back = synced(&server.ws_url("room")).await;
    assert_eq!(back.text("code"), "still works");
}

/// Clock ranges that wrap past 2^32, in updates and delete sets, and a nesting deep enough to
/// overflow a decoder's stack: each closes the sender with 1007, and the process lives on.
#[tokio::test]
async fn updates_yrs_would_mishandle_are_refused_before_it_sees_them() {
    let server = TestServer::start(|_| {}).await;
    let mut nested = hex("01010100080104636f646501");
    for _ in 0..100_000 {
        nested.extend([117, 1]);
    }
    nested.extend([126, 0]);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("clock wraps", hex("0101b1bc2fffffffff0f040104636f646505787878787800"), "32-bit clock"),
        ("delete range wraps", hex("00010101feffffff0f05"), "32-bit clock"),
        ("client listed twice", hex("02010100000301010a000300"), "two struct sections"),
        ("nested 100,000 deep", nested, "nested deeper"),
    ];
    let witness = synced(&server.ws_url("room")).await;
    for (name, update, expected) in cases {
        let attacker = synced(&server.ws_url("room")).await;
        attacker.send_raw(update_frame(&update));
        let (code, reason) = attacker.wait_closed(WAIT).await;
        assert_eq!(code, 1007, "{name}: {reason}");
        assert!(reason.contains(expected), "{name}: {reason}");
    }
    type_into(&witness, "code", "alive");
    let reader = synced(&server.ws_url("room")).await;
    reader.wait_for("the room still serves", WAIT, |c| c.text("code") == "alive").await;
}

/// A yrs failure inside one room (fault injection: every encode of the room panics from the moment
/// a marker is typed, as the issue's poisoned room did): its clients are closed with 1011, the
/// failure is counted, the room is reloaded from its last stored state, and the persistence of every
/// other room carries on: an edit elsewhere after the failure survives a kill -9 of the process.
#[tokio::test]
async fn a_room_that_fails_inside_yrs_is_contained_and_the_others_keep_saving() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--allow-anonymous", "--persist-debounce-ms", "100"];
    let node = Node::start(dir.path(), &[], &args).await;
    let metrics = || async { http_get(&format!("http://{}/metrics", node.addr)).await.1 };
    let saved = |text: &str| metric(text, "codecrafter_persist_writes_total");

    let victim = synced(&node.ws_url("victim")).await;
    type_into(&victim, "code", "good state");
    let before = saved(&metrics().await);
    wait_until(&metrics, "the good state saved", |m| saved(m) > before).await;

    type_into(&victim, "code", PANIC_ON_ENCODE);
    // The persister's next snapshot of the room panics inside yrs.
    let (code, reason) = victim.wait_closed(WAIT).await;
    assert_eq!(code, 1011, "{reason}");
    wait_until(&metrics, "the failure counted", |m| metric(m, "codecrafter_room_failures_total") == 1.0)
        .await;

    // Other rooms keep being saved, by the same persistence task.
    let other = synced(&node.ws_url("other")).await;
    let before = saved(&metrics().await);
    type_into(&other, "code", "typed after the failure");
    wait_until(&metrics, "the other room saved", |m| saved(m) > before).await;

    // The failed room was reloaded from its last good state and serves again.
    let back = synced(&node.ws_url("victim")).await;
    assert_eq!(back.text("code"), "good state");

    node.signal("KILL");
    node.exit_code().await;
    let node = Node::start(dir.path(), &[], &args).await;
    let other = synced(&node.ws_url("other")).await;
    assert_eq!(other.text("code"), "typed after the failure", "saved before the kill -9");
    let victim = synced(&node.ws_url("victim")).await;
    assert_eq!(victim.text("code"), "good state");
}

/// A failed room whose stored state cannot be loaded either stays quarantined: `/ready` says
/// `degraded` with the count, joins are refused with 1011, and other rooms serve as usual.
#[tokio::test]
async fn a_room_that_cannot_be_reloaded_stays_quarantined_and_ready_says_so() {
    let server = TestServer::start(|config| config.persist_debounce_ms = 50).await;
    let metrics = || async { http_get(&server.http_url("/metrics")).await.1 };
    let saved = |text: &str| metric(text, "codecrafter_persist_writes_total");
    let victim = synced(&server.ws_url("victim")).await;
    let before = saved(&metrics().await);
    type_into(&victim, "code", PANIC_ON_LOAD);
    wait_until(&metrics, "the unloadable state saved", |m| saved(m) > before).await;
    let (status, body) = http_get(&server.http_url("/ready")).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""status":"ready""#), "{body}");

    type_into(&victim, "code", PANIC_ON_ENCODE);
    assert_eq!(victim.wait_closed(WAIT).await.0, 1011);
    let ready = || async { http_get(&server.http_url("/ready")).await };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = ready().await;
        if body.contains(r#""rooms_quarantined":1"#) {
            assert_eq!(status, 200, "degraded, not down: other rooms serve");
            assert!(body.contains(r#""status":"degraded""#), "{body}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never quarantined: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = YClient::connect(&server.ws_url("victim")).await;
    assert_eq!(refused.wait_closed(WAIT).await.0, 1011);
    let elsewhere = synced(&server.ws_url("elsewhere")).await;
    type_into(&elsewhere, "code", "fine");
    let reader = synced(&server.ws_url("elsewhere")).await;
    reader.wait_for("other rooms serve", WAIT, |c| c.text("code") == "fine").await;
    assert!(metric(&metrics().await, "codecrafter_rooms_quarantined") >= 1.0);
}

/// When a room fails while answering a joiner (its greeting encodes the state vector, which panics
/// from the moment the marker is typed), every client of the room, the joiner included, is closed
/// with 1011 and the connections gauge comes back to zero: no connection task is left hanging.
#[tokio::test]
async fn a_failed_room_leaves_no_connection_behind() {
    let server = TestServer::start(|_| {}).await;
    let metrics = || async { http_get(&server.http_url("/metrics")).await.1 };
    let clients = [synced(&server.ws_url("victim")).await, synced(&server.ws_url("victim")).await];
    wait_until(&metrics, "two connections counted", |m| metric(m, "codecrafter_connections") == 2.0).await;
    type_into(&clients[0], "code", PANIC_ON_ENCODE);
    // A joiner's greeting encodes the room's state vector: that panics and fails the room.
    let joiner = YClient::connect(&server.ws_url("victim")).await;
    for client in clients.iter().chain([&joiner]) {
        assert_eq!(client.wait_closed(WAIT).await.0, 1011);
    }
    wait_until(&metrics, "no connection left", |m| metric(m, "codecrafter_connections") == 0.0).await;
}

async fn wait_until<F, Fut>(fetch: &F, what: &str, condition: impl Fn(&str) -> bool)
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = fetch().await;
        if condition(&text) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
