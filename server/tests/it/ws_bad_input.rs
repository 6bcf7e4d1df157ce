//! Bad and hostile clients: each kind of bad input closes that connection with a clear code and
//! reason, while the room, its document and every other client carry on, and nothing already
//! accepted is lost.

use crate::support;

use std::time::Duration;

use protocol::{MSG_APP, Message, SyncMessage, decode_frame};
use server::Config;
use support::{TestServer, YClient};
use yrs::{Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

/// A good client and a bad one in the same room; the bad one first makes a valid edit, then
/// misbehaves. Checks the close code, that the valid edit survived, and that the good client
/// still works.
async fn check(
    tweak: impl FnOnce(&mut Config),
    misbehave: impl FnOnce(&YClient),
    expected_code: u16,
    expected_reason: &str,
) {
    let server = TestServer::start(tweak).await;
    let good = server.client("room").await;
    let bad = YClient::connect(&format!("{}?app=1", server.ws_url("room"))).await;
    bad.wait_for("sync", WAIT, |c| c.shared().synced).await;
    bad.doc.get_or_insert_text("t").insert(&mut bad.doc.transact_mut(), 0, "accepted ");
    good.wait_for("the valid edit", WAIT, |c| c.text("t") == "accepted ").await;

    misbehave(&bad);
    let (code, reason) = bad.wait_closed(WAIT).await;
    assert_eq!(code, expected_code, "close code (reason {reason:?})");
    assert!(reason.contains(expected_reason), "close reason {reason:?} should say {expected_reason:?}");
    let app_errors: Vec<String> = bad
        .shared()
        .frames
        .iter()
        .filter(|f| f.first() == Some(&(MSG_APP as u8)))
        .filter_map(|f| match decode_frame(f).next() {
            Some(Ok((Message::App(json), _))) => Some(json.to_owned()),
            _ => None,
        })
        .collect();
    assert!(
        app_errors.iter().any(|j| j.contains(r#""type":"error""#)),
        "an app client is told why before the close: {app_errors:?}"
    );
    assert!(
        good.shared().frames.iter().all(|f| f.first() != Some(&(MSG_APP as u8))),
        "a stock client never receives app messages"
    );

    // The room and the other client are unaffected.
    assert!(!good.shared().ended, "the good client is still connected");
    good.doc.get_or_insert_text("t").insert(&mut good.doc.transact_mut(), 9, "still works");
    let late = server.client("room").await;
    late.wait_for("the room's state", WAIT, |c| c.text("t") == "accepted still works").await;
}

fn update_frame(garbage: &[u8]) -> Vec<u8> {
    Message::Sync(SyncMessage::Update(garbage)).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_with_1002() {
    // A sync update whose length prefix runs past the end of the frame.
    check(|_| {}, |bad| bad.send_raw(vec![0, 2, 50, 1, 2, 3]), 1002, "malformed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_message_type_closes_with_1002() {
    check(|_| {}, |bad| bad.send_raw(vec![42, 1, 2]), 1002, "unknown message type").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_closes_with_1003() {
    check(|_| {}, |bad| bad.send_text("hello"), 1003, "binary frames only").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_yjs_update_closes_with_1007() {
    check(
        |_| {},
        |bad| bad.send_raw(update_frame(&[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02])),
        1007,
        "update rejected",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_awareness_update_closes_with_1007() {
    let frame = Message::Awareness(&[5, 1]).encode_to_vec(); // claims 5 entries, has none
    check(|_| {}, |bad| bad.send_raw(frame), 1007, "update rejected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_above_the_rate_closes_with_1008() {
    check(
        |c| {
            c.max_messages_per_sec = 5;
            c.message_burst = 20;
        },
        |bad| {
            for clock in 2..100 {
                bad.set_awareness(clock, r#"{"spam":true}"#);
            }
        },
        1008,
        "rate limit",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_closes_with_1009() {
    check(|c| c.max_message_bytes = 64 * 1024, |bad| bad.send_raw(vec![0u8; 64 * 1024 + 1]), 1009, "too big")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_the_size_limit_is_refused_with_1007() {
    check(
        |c| c.max_doc_bytes = 32 * 1024,
        |bad| {
            let text = bad.doc.get_or_insert_text("t");
            text.insert(&mut bad.doc.transact_mut(), 0, &"x".repeat(64 * 1024));
        },
        1007,
        "update rejected",
    )
    .await;
}

/// An update frame of exactly `size` bytes from a fresh client, made by growing inserted text.
/// The client id is fixed: a random one changes the frame's length with its var-uint encoding.
fn update_frame_of_size(size: usize) -> Vec<u8> {
    (size.saturating_sub(64)..size)
        .find_map(|n| {
            let options = yrs::Options {
                client_id: yrs::ClientID::new(size as u64),
                offset_kind: yrs::OffsetKind::Utf16,
                ..yrs::Options::default()
            };
            let doc = yrs::Doc::with_options(options);
            let text = doc.get_or_insert_text("edge");
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, &"e".repeat(n));
            let frame = update_frame(&txn.encode_update_v1());
            (frame.len() == size).then_some(frame)
        })
        .expect("a frame of exactly that size")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_size_limit_is_inclusive() {
    let limit = 16 * 1024;
    let server = TestServer::start(|c| c.max_message_bytes = limit).await;
    let at_limit = server.client("edge").await;
    at_limit.send_raw(update_frame_of_size(limit));
    let reader = server.client("edge").await;
    reader.wait_for("the at-limit update", WAIT, |c| c.text("edge").len() > limit - 64).await;
    assert!(!at_limit.shared().ended, "a message of exactly the limit is accepted");

    let over = server.client("edge").await;
    over.send_raw(update_frame_of_size(limit + 1));
    assert_eq!(over.wait_closed(WAIT).await.0, 1009, "one byte over the limit is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_allows_exactly_the_burst() {
    let server = TestServer::start(|c| {
        c.max_messages_per_sec = 1;
        c.message_burst = 10;
    })
    .await;
    let client = server.client("burst").await;
    // The client's own sync step 1 and its step 2 reply are messages 1 and 2 of the burst.
    client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for clock in 1..9 {
        client.set_awareness(clock, "{}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!client.shared().ended, "the burst itself is allowed");
    client.set_awareness(9, "{}");
    client.set_awareness(10, "{}");
    assert_eq!(client.wait_closed(WAIT).await.0, 1008, "past the burst the connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_with_1013_and_loses_nothing() {
    use futures_util::StreamExt;
    let server = TestServer::start(|c| c.send_queue = 16).await;
    // A raw socket that completes the upgrade and then does not read at all.
    let (slow, _) = tokio_tungstenite::connect_async(server.ws_url("slow")).await.unwrap();
    let writer = server.client("slow").await;
    let text = writer.doc.get_or_insert_text("t");
    let chunk = "y".repeat(128 * 1024);
    let other = server.client("slow").await;
    for _ in 0..100 {
        // 12.5 MiB in all: far more than the socket buffers and the 16-frame queue hold. Paced so
        // that the reading clients keep up and only the one that does not read falls behind.
        text.insert(&mut writer.doc.transact_mut(), 0, &chunk);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = 100 * chunk.len() as u32;
    other
        .wait_for("every update", Duration::from_secs(60), |c| {
            c.doc.get_or_insert_text("t").len(&c.doc.transact()) == expected
        })
        .await;

    // Now the slow client reads: it gets what was queued, then a 1013 close, not a silent gap.
    let (_, mut stream) = slow.split();
    let close = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(msg)) = stream.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = msg {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("close within 60 s");
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("too slow"), "{reason}");
    assert!(!writer.shared().ended && !other.shared().ended, "the other clients are unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_pings_is_closed() {
    use futures_util::StreamExt;
    let server = TestServer::start(|c| c.ping_interval_secs = 1).await;
    // A raw socket that is never polled, so it answers no ping.
    let (silent, _) = tokio_tungstenite::connect_async(server.ws_url("quiet")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (_, mut stream) = silent.split();
    let close = tokio::time::timeout(WAIT, async {
        while let Some(Ok(msg)) = stream.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = msg {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("closed in time")
    .expect("a close frame");
    assert_eq!(close, (1001, "ping timeout".to_owned()));
}
