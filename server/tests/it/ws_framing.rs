//! The server reads its clients' WebSocket frames itself (RFC 6455 §5): a raw client over a real
//! socket sends what stock clients rarely do (fragments with a ping between them, frames dribbled
//! a byte at a time, frames sent along with the upgrade request, a close) and what hostile ones
//! do (unmasked or reserved-bit frames, a control frame too long, a close code that may not be
//! sent). The first kind works; the second closes that connection with 1002 and a reason.

use crate::support;

use std::time::Duration;

use protocol::{Message, SyncMessage};
use support::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A client frame: FIN flag, opcode, `payload` masked.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x3C, 0xA5, 0x0F, 0x96];
    let mut bytes = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        len @ 0..=125 => bytes.push(0x80 | len as u8),
        len => {
            bytes.push(0x80 | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    bytes
}

/// A WebSocket client with nothing between the test and the socket.
struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Where the next server frame starts, once past the 101 answer.
    at: Option<usize>,
}

impl Raw {
    /// Open `/ws/{room}`, sending `along` in the same write as the upgrade request.
    async fn connect(server: &TestServer, room: &str, along: &[u8]) -> Self {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut request = format!(
            "GET /ws/{room} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(along);
        tcp.write_all(&request).await.unwrap();
        Self { tcp, buf: Vec::new(), at: None }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// The server's next frame (opcode, payload); `None` once the connection has ended.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.at.is_none()
                && let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n")
            {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_lowercase();
                assert!(head.starts_with("http/1.1 101"), "{head}");
                assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
                self.at = Some(end + 4);
            }
            if let Some(start) = self.at
                && let Some((opcode, payload, len)) = support::server_frame(&self.buf[start..])
            {
                let payload = payload.to_vec();
                self.at = Some(start + len);
                return Some((opcode, payload));
            }
            match tokio::time::timeout(WAIT, self.tcp.read_buf(&mut self.buf)).await.expect("a frame in time")
            {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Server frames up to the first with `opcode`, which is returned.
    async fn until(&mut self, opcode: u8) -> Vec<u8> {
        loop {
            match self.next().await {
                Some((op, payload)) if op == opcode => return payload,
                Some(_) => {}
                None => panic!("the connection ended before a frame with opcode {opcode:#x}"),
            }
        }
    }

    /// The server's close frame: code and reason.
    async fn close_frame(&mut self) -> (u16, String) {
        let payload = self.until(CLOSE).await;
        (u16::from_be_bytes([payload[0], payload[1]]), String::from_utf8_lossy(&payload[2..]).into_owned())
    }
}

/// A y-sync update frame inserting `text` into a fresh document's "t".
fn update_inserting(text: &str) -> Vec<u8> {
    let doc = Doc::new();
    doc.get_or_insert_text("t").insert(&mut doc.transact_mut(), 0, text);
    let update = doc.transact().encode_state_as_update_v1(&StateVector::default());
    Message::Sync(SyncMessage::Update(&update)).encode_to_vec()
}

fn sync_step1() -> Vec<u8> {
    use yrs::updates::encoder::Encode;
    Message::Sync(SyncMessage::Step1(&StateVector::default().encode_v1())).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_update_with_a_ping_between_its_fragments_is_applied_and_the_ping_answered() {
    let server = TestServer::start(|_| {}).await;
    let watcher = server.client("frag").await;
    let mut raw = Raw::connect(&server, "frag", &[]).await;
    let update = update_inserting("in three pieces");
    let (a, rest) = update.split_at(3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut bytes = frame(false, BINARY, a);
    bytes.extend(frame(true, PING, b"are you there"));
    bytes.extend(frame(false, 0x0, b));
    bytes.extend(frame(true, 0x0, c));
    raw.send(&bytes).await;
    assert_eq!(raw.until(PONG).await, b"are you there", "a pong carries its ping's payload");
    watcher.wait_for("the reassembled update", WAIT, |c| c.text("t") == "in three pieces").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_a_byte_at_a_time_or_with_the_upgrade_request_are_read_whole() {
    let server = TestServer::start(|_| {}).await;
    let watcher = server.client("dribble").await;

    // Sent in the upgrade request's own write: hyper may read it with the request.
    let along = frame(true, BINARY, &update_inserting("early "));
    let mut early = Raw::connect(&server, "dribble", &along).await;
    watcher.wait_for("the update sent with the upgrade", WAIT, |c| c.text("t") == "early ").await;

    // A frame of more than 125 bytes (a 16-bit length), one byte per write.
    let mut dribbler = Raw::connect(&server, "dribble", &[]).await;
    let long = "x".repeat(300);
    for byte in frame(true, BINARY, &update_inserting(&long)) {
        dribbler.send(&[byte]).await;
        dribbler.tcp.flush().await.unwrap();
    }
    watcher.wait_for("the dribbled update", WAIT, |c| c.text("t").len() == 6 + 300).await;

    // Both connections still answer: a sync step 1 gets the room's state back.
    for raw in [&mut early, &mut dribbler] {
        raw.send(&frame(true, BINARY, &sync_step1())).await;
        let step2 = loop {
            let payload = raw.until(BINARY).await;
            if payload.starts_with(&[0, 1]) {
                break payload;
            }
        };
        assert!(step2.len() > 300, "sync step 2 carries the room's text");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_with_its_own_code() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(&server, "bye", &[]).await;
    raw.send(&frame(true, CLOSE, &[0x0F, 0xA1, b'o', b'k'])).await;
    assert_eq!(raw.until(CLOSE).await, [0x0F, 0xA1], "the close echoes code 4001");
    assert!(raw.next().await.is_none(), "then the server hangs up");
}

/// Each way of breaking the framing closes that connection with 1002 (1007 for a close reason
/// that is not UTF-8) and says what broke, after the messages before it took effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_framing_closes_with_1002_saying_what_broke() {
    let server = TestServer::start(|_| {}).await;
    let watcher = server.client("broken").await;
    let unmasked = {
        let mut bytes = frame(true, BINARY, b"\x00\x00\x00");
        bytes[1] &= 0x7F;
        bytes.truncate(2);
        bytes.extend_from_slice(b"\x00\x00\x00");
        bytes
    };
    let reserved = {
        let mut bytes = frame(true, BINARY, &sync_step1());
        bytes[0] |= 0x20;
        bytes
    };
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        ("unmasked", unmasked, 1002, "masked"),
        ("reserved", reserved, 1002, "reserved bits"),
        ("opcode", frame(true, 0x3, b""), 1002, "unknown opcode"),
        ("long-ping", frame(true, PING, &[0; 126]), 1002, "125 bytes"),
        ("close-code", frame(true, CLOSE, &1005u16.to_be_bytes()), 1002, "may not be sent"),
        ("close-utf8", frame(true, CLOSE, &[0x03, 0xE8, 0xFF]), 1007, "UTF-8"),
    ];
    for (i, (name, bad, code, says)) in cases.into_iter().enumerate() {
        let mut raw = Raw::connect(&server, "broken", &[]).await;
        let text = format!("{name};");
        let mut bytes = frame(true, BINARY, &update_inserting(&text));
        bytes.extend(bad);
        raw.send(&bytes).await;
        let (got, reason) = raw.close_frame().await;
        assert_eq!(got, code, "{name}: {reason}");
        assert!(reason.starts_with("bad frame: ") && reason.contains(says), "{name}: {reason}");
        let applied = || watcher.text("t").matches(';').count();
        watcher
            .wait_for(&format!("{name}'s update before its bad frame"), WAIT, |_| applied() == i + 1)
            .await;
    }
    let metrics = support::http_get(&server.http_url("/metrics")).await.1;
    assert!(
        metrics.contains(r#"codecrafter_connections_closed_total{reason="bad_frame"} 6"#),
        "each close is counted: {}",
        metrics.lines().filter(|l| l.contains("closed_total")).collect::<Vec<_>>().join("\n")
    );
}
