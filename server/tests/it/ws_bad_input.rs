//! Bad and hostile clients: each kind of bad input closes that connection with a clear code and
//! reason, while the room, its document and every other client carry on, and nothing already
//! accepted is lost.

use crate::support;

use std::time::Duration;

use protocol::{MSG_APP, Message, SyncMessage};
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
    let app_errors = bad.app_messages();
    assert!(
        app_errors.iter().any(|m| m["type"] == "error"),
        "an app client is told why before the close: {app_errors:?}"
    );

    // The room and the other client are unaffected.
    assert!(!good.shared().ended, "the good client is still connected");
    good.doc.get_or_insert_text("t").insert(&mut good.doc.transact_mut(), 9, "still works");
    let late = server.client("room").await;
    late.wait_for("the room's state", WAIT, |c| c.text("t") == "accepted still works").await;
    // A sentinel through the room after the bad client's close: once the good client has it, it
    // has had anything the room sent it before, an app message included had it been sent.
    late.doc.get_or_insert_text("t").insert(&mut late.doc.transact_mut(), 20, "!");
    good.wait_for("the sentinel", WAIT, |c| c.text("t") == "accepted still works!").await;
    assert!(
        good.shared().frames.iter().all(|f| f.first() != Some(&(MSG_APP as u8))),
        "a stock client never receives app messages"
    );
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
    let watcher = server.client("burst").await;
    // The client's own sync step 1 and its step 2 reply are messages 1 and 2 of the burst (the
    // server greets with its step 1 before it answers the client's, so synced means both are sent).
    client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    for clock in 1..9 {
        client.set_awareness(clock, &format!(r#"{{"n":{clock}}}"#));
    }
    // The server relays an awareness update only once it has taken it: the tenth message relayed
    // means the whole burst was.
    let id = client.client_id();
    watcher
        .wait_for("the tenth message relayed", WAIT, |c| {
            c.shared().awareness.get(&id).is_some_and(|state| state == r#"{"n":8}"#)
        })
        .await;
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
    let received = |c: &YClient| c.doc.get_or_insert_text("t").len(&c.doc.transact());
    for i in 1..=100u32 {
        // 12.5 MiB in all: far more than the socket buffers and the 16-frame queue hold. Paced by
        // the reading client, ten updates at most ahead of it, so that it cannot fill its queue
        // and only the one that does not read falls behind.
        text.insert(&mut writer.doc.transact_mut(), 0, &chunk);
        if i % 10 == 0 {
            let expected = i * chunk.len() as u32;
            other.wait_for("ten more updates", Duration::from_secs(60), |c| received(c) == expected).await;
        }
    }

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
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start(|c| c.ping_interval_secs = 1).await;
    // A raw WebSocket that reads everything the server sends but answers no ping (tungstenite
    // answers each ping it reads), so the test can wait for the close instead of sleeping past
    // the timeout unpolled.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let upgrade = format!(
        "GET /ws/quiet HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    );
    silent.write_all(upgrade.as_bytes()).await.unwrap();
    let (pings, close) =
        tokio::time::timeout(WAIT, read_until_close_frame(&mut silent)).await.expect("closed in time");
    assert!(pings >= 1, "the server pinged before giving up");
    assert_eq!(close, (1001, "ping timeout".to_owned()));
}

/// Read a raw WebSocket connection whose upgrade request was sent, answering nothing, up to the
/// server's close frame: the pings seen before it, and its code and reason.
async fn read_until_close_frame(tcp: &mut tokio::net::TcpStream) -> (usize, (u16, String)) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut at = None; // where the next frame starts, once past the 101 answer
    let mut pings = 0;
    loop {
        if at.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            assert!(buf.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&buf[..end]));
            at = Some(end + 4);
        }
        while let Some(start) = at
            && let Some((opcode, payload, next)) = support::server_frame(&buf[start..])
        {
            match opcode {
                0x8 => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (pings, (code, String::from_utf8_lossy(&payload[2..]).into_owned()));
                }
                0x9 => pings += 1,
                _ => {}
            }
            at = Some(start + next);
        }
        assert!(tcp.read_buf(&mut buf).await.unwrap() > 0, "the connection ended without a close frame");
    }
}
