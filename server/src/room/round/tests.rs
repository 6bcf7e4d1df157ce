//! Rounds: what a round is made of (merges, audiences), and a room's fan-out over real loopback
//! sockets with a round held open, as it is while another thread writes one.

use std::sync::Arc;
use std::time::Duration;

use protocol::{
    AwarenessEntry, Message, MessageKind, SyncMessage, decode_awareness_update, encode_awareness_update,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact};

use super::super::{Peer, Room, RoomSettings};
use super::*;
use crate::socket::Socket;

/// A Yjs update from a fresh document of client `client` inserting `text`.
fn insert(client: u64, text: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(client);
    let code = doc.get_or_insert_text("code");
    let mut txn = doc.transact_mut();
    code.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

fn update_item(update: &[u8], origin: Option<ConnId>) -> Item {
    Item::update(frames::sync_update_frame(update), update.len(), origin)
}

fn awareness_payload(entries: &[(u64, u64, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_awareness_update(
        entries.iter().map(|&(client_id, clock, state)| AwarenessEntry { client_id, clock, state }),
        &mut out,
    );
    out
}

/// The text a fresh document holds after applying `updates`.
fn text_after(updates: &[&[u8]]) -> String {
    let doc = yrs::Doc::new();
    let code = doc.get_or_insert_text("code");
    let mut txn = doc.transact_mut();
    for update in updates {
        txn.apply_update(yrs::Update::decode_v1(update).expect("a valid update")).expect("applies");
    }
    code.get_string(&txn)
}

/// The one message a frame holds.
fn message(frame: &[u8]) -> Message<'_> {
    let mut decoded = protocol::decode_frame(frame);
    let (message, _) = decoded.next().expect("a message").expect("a y-protocols message");
    assert!(decoded.next().is_none(), "one message per frame");
    message
}

/// The update a sync-update frame carries.
fn update_of(frame: &[u8]) -> Vec<u8> {
    match message(frame) {
        Message::Sync(SyncMessage::Update(update)) => update.to_vec(),
        other => panic!("expected a sync update, got {other:?}"),
    }
}

#[test]
fn the_first_item_makes_its_caller_the_writer_until_it_finds_nothing_queued() {
    let mut rounds = Rounds::default();
    assert!(rounds.push(update_item(&insert(1, "a"), Some(1))), "nobody was writing");
    assert!(!rounds.push(update_item(&insert(2, "b"), Some(2))), "a writer is at work");
    assert_eq!(rounds.take().map(|items| items.len()), Some(2));
    assert!(!rounds.push(update_item(&insert(3, "c"), Some(3))), "still the writer's, until it finds none");
    assert_eq!(rounds.take().map(|items| items.len()), Some(1));
    assert!(rounds.take().is_none());
    assert!(rounds.push(update_item(&insert(4, "d"), None)), "the writer left: the next one writes");
}

#[test]
fn one_update_goes_out_as_it_came_in() {
    let update = insert(1, "alone");
    let frame = frames::sync_update_frame(&update);
    let outs = build(vec![Item::update(frame.clone(), update.len(), Some(7))]);
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].frame.as_ptr(), frame.as_ptr(), "the received bytes, not a copy");
    assert_eq!(outs[0].to, Audience::AllBut(Some(7)));
}

#[test]
fn queued_updates_go_out_as_one_merged_update_for_every_client() {
    let (a, b, c) = (insert(1, "one "), insert(2, "two "), insert(3, "three "));
    let outs = build(vec![update_item(&a, Some(1)), update_item(&b, Some(2)), update_item(&c, None)]);
    assert_eq!(outs.len(), 1, "one frame for the round");
    assert_eq!(outs[0].to, Audience::AllBut(None), "several senders: everyone gets the whole");
    let merged = update_of(&outs[0].frame);
    assert_eq!(text_after(&[&merged]), text_after(&[&a, &b, &c]));
}

#[test]
fn one_sender_s_queued_updates_are_not_sent_back_to_it() {
    let doc = yrs::Doc::with_client_id(5);
    let code = doc.get_or_insert_text("code");
    let mut updates = Vec::new();
    for word in ["a", "b", "c"] {
        let mut txn = doc.transact_mut();
        code.push(&mut txn, word);
        updates.push(txn.encode_update_v1());
    }
    let outs = build(updates.iter().map(|u| update_item(u, Some(9))).collect());
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].to, Audience::AllBut(Some(9)));
    assert_eq!(text_after(&[&update_of(&outs[0].frame)]), "abc");
}

#[test]
fn awareness_merges_to_the_latest_state_per_client_and_app_messages_keep_their_order() {
    let first = awareness_payload(&[(1, 1, "{\"x\":1}"), (2, 1, "{}")]);
    let second = awareness_payload(&[(1, 2, "{\"x\":2}")]);
    let app = |text: &str| frames::encode(Message::App(text));
    let items = vec![
        Item::Other { frame: app("{\"n\":1}"), kind: MessageKind::App, to: Audience::App },
        Item::awareness(frames::awareness_frame(&first), first.len()),
        Item::Other { frame: app("{\"n\":2}"), kind: MessageKind::App, to: Audience::AppClient(4) },
        Item::awareness(frames::awareness_frame(&second), second.len()),
    ];
    let outs = build(items);
    let kinds: Vec<_> = outs.iter().map(|out| (out.kind, out.to)).collect();
    assert_eq!(
        kinds,
        vec![
            (MessageKind::Awareness, Audience::AllBut(None)),
            (MessageKind::App, Audience::App),
            (MessageKind::App, Audience::AppClient(4)),
        ]
    );
    let Message::Awareness(payload) = message(&outs[0].frame) else { panic!("awareness") };
    let entries = decode_awareness_update(payload).unwrap();
    let states: Vec<_> = entries.iter().map(|e| (e.client_id, e.clock, e.state)).collect();
    assert_eq!(states, vec![(1, 2, "{\"x\":2}"), (2, 1, "{}")]);
    assert_eq!(outs[1].frame, app("{\"n\":1}"));
    assert_eq!(outs[2].frame, app("{\"n\":2}"));
}

/// A room of its own, with nothing journaled (so no queue is needed) and a relay to no one.
fn room() -> Arc<Room> {
    room_split(0)
}

fn room_split(fanout_split_peers: usize) -> Arc<Room> {
    let settings = RoomSettings {
        limits: crdt::Limits::default(),
        awareness_limits: crdt::AwarenessLimits::default(),
        awareness_timeout_ms: 30_000,
        idle: Duration::from_secs(30),
        barrier_before_load: false,
        fanout_split_peers,
    };
    let (persist_tx, _) = tokio::sync::mpsc::unbounded_channel();
    let (failures, _) = tokio::sync::mpsc::unbounded_channel();
    let (relay, _) = relay::LocalHub::new().join(1);
    let tracker = tokio_util::task::TaskTracker::new();
    let dispatcher = workers::Dispatcher::new(workers::DispatchConfig::default());
    let queue = workers::InProcessQueue::start(dispatcher, Default::default(), &tracker, Default::default());
    let room = Arc::new(Room::new("rounds".into(), &settings, persist_tx, failures, relay, queue));
    room.discarded.store(true, std::sync::atomic::Ordering::Release);
    room
}

/// A client of `room` over loopback TCP: the room writes to the server end; the test reads the
/// frames off the client end.
struct Client {
    tcp: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    async fn join(room: &Arc<Room>, id: ConnId, app: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        room.join(Peer::new(id, Socket::new(server), 64, app));
        let mut client = Self { tcp, buffer: Vec::new() };
        let greeting = client.frame().await;
        assert!(matches!(message(&greeting), Message::Sync(SyncMessage::Step1(_))));
        client
    }

    /// The next WebSocket frame's payload (the server's frames are unmasked and unfragmented).
    async fn frame(&mut self) -> Vec<u8> {
        loop {
            if let Some((header, len)) = frame_at(&self.buffer) {
                let payload = self.buffer[header..header + len].to_vec();
                self.buffer.drain(..header + len);
                return payload;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.tcp.read(&mut chunk))
                .await
                .expect("a frame within 5 s")
                .unwrap();
            assert!(n > 0, "the server closed");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Header length and payload length of a whole frame at the start of `bytes`.
fn frame_at(bytes: &[u8]) -> Option<(usize, usize)> {
    let (header, len) = match *bytes.get(1)? {
        126 => (4, usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]))),
        127 => (10, u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize),
        short => (2, usize::from(short)),
    };
    (bytes.len() >= header + len).then_some((header, len))
}

#[tokio::test]
async fn an_idle_room_writes_an_update_before_apply_returns() {
    let room = room();
    let mut receiver = Client::join(&room, 2, false).await;
    let update = insert(1, "now");
    let frame = frames::sync_update_frame(&update);
    room.apply_update(1, &update, || frame.clone(), 0, None).unwrap();
    assert!(room.state.lock().rounds.take().is_none(), "nothing left queued, and no writer");
    assert_eq!(receiver.frame().await, frame.to_vec());
}

#[tokio::test]
async fn what_queues_while_a_round_is_written_goes_out_as_one_frame_per_kind() {
    let room = room();
    let mut writer_a = Client::join(&room, 1, false).await;
    let mut reader = Client::join(&room, 3, true).await;
    // Another thread is writing a round: everything below queues for the next one.
    room.state.lock().rounds.writing = true;
    let (a, b) = (insert(11, "from a "), insert(12, "from b "));
    room.apply_update(1, &a, || frames::sync_update_frame(&a), 0, None).unwrap();
    room.apply_update(2, &b, || frames::sync_update_frame(&b), 0, None).unwrap();
    for clock in 1..=3 {
        let payload = awareness_payload(&[(11, clock, "{\"cursor\":1}")]);
        let frame = frames::awareness_frame(&payload);
        room.apply_awareness(crdt::Owner { conn: 1, principal: 0 }, &payload, &frame, 0).unwrap();
    }
    room.broadcast_app("{\"type\":\"note\"}");
    assert_eq!(room.state.lock().rounds.queued.len(), 6, "queued, not written");

    room.write_rounds();
    assert!(!room.state.lock().rounds.writing, "the writer left once nothing was queued");
    // The app client: the merged update, the merged awareness, then the app message.
    let merged = update_of(&reader.frame().await);
    assert_eq!(text_after(&[&merged]), text_after(&[&a, &b]));
    let frame = reader.frame().await;
    let Message::Awareness(payload) = message(&frame) else { panic!("awareness") };
    let entries = decode_awareness_update(payload).unwrap();
    assert_eq!(entries, vec![AwarenessEntry { client_id: 11, clock: 3, state: "{\"cursor\":1}" }]);
    assert_eq!(reader.frame().await, frames::encode(Message::App("{\"type\":\"note\"}")).to_vec());
    // A stock client gets the same two frames but no app message, all three in one read.
    let merged_for_a = update_of(&writer_a.frame().await);
    assert_eq!(merged_for_a, merged, "one merge for every client");
    assert!(matches!(message(&writer_a.frame().await), Message::Awareness(_)));
    // The room is idle again: the next awareness update is written at once, and it is the next
    // frame the stock client gets (no app message was sent to it).
    let payload = awareness_payload(&[(12, 1, "{}")]);
    let frame = frames::awareness_frame(&payload);
    room.apply_awareness(crdt::Owner { conn: 2, principal: 0 }, &payload, &frame, 0).unwrap();
    assert_eq!(writer_a.frame().await, frame.to_vec());
}

#[test]
fn a_round_takes_at_most_its_share_in_order_and_a_full_share_waiting_is_a_backlog() {
    let mut rounds = Rounds::default();
    let update = insert(1, "x");
    for origin in 0..ROUND_MAX_ITEMS as u64 + 476 {
        let _ = rounds.push(update_item(&update, Some(origin)));
        assert_eq!(rounds.backlogged(), origin + 1 >= ROUND_MAX_ITEMS as u64);
    }
    let origins = |items: Vec<Item>| -> Vec<ConnId> {
        items
            .into_iter()
            .map(|item| match item {
                Item::Update { origin, .. } => origin.expect("from a client"),
                _ => unreachable!("only updates were queued"),
            })
            .collect()
    };
    let first = origins(rounds.take().expect("a round"));
    assert_eq!(first, (0..ROUND_MAX_ITEMS as u64).collect::<Vec<_>>(), "the oldest, in order");
    assert!(!rounds.backlogged(), "476 wait: less than a round");
    let second = origins(rounds.take().expect("the rest"));
    assert_eq!(second.first(), Some(&(ROUND_MAX_ITEMS as u64)));
    assert_eq!(second.len(), 476);
    assert!(rounds.take().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_split_across_threads_reach_every_client_whole_and_in_order() {
    // Parts of 2 clients: 7 clients make 3 parts, written by the writer and two spawned tasks.
    let room = room_split(2);
    let mut clients = Vec::new();
    for id in 1..=7 {
        clients.push(Client::join(&room, id, false).await);
    }
    let writer = yrs::Doc::with_client_id(42);
    let code = writer.get_or_insert_text("code");
    let mut expected = String::new();
    // A writer is at work for the first updates, so they make one round of several: only such a
    // round is split. The rest are applied while its parts are written, and queue behind it.
    room.state.lock().rounds.writing = true;
    for i in 0..200 {
        let word = format!("{i} ");
        expected.push_str(&word);
        let update = {
            let mut txn = writer.transact_mut();
            code.push(&mut txn, &word);
            txn.encode_update_v1()
        };
        room.apply_update(100, &update, || frames::sync_update_frame(&update), 0, None).unwrap();
        if i == 4 {
            room.write_rounds();
        }
    }
    for client in &mut clients {
        // Applied in the order received, no frame may depend on a later one.
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("code");
        while text.get_string(&doc.transact()) != expected {
            let update = update_of(&client.frame().await);
            let mut txn = doc.transact_mut();
            txn.apply_update(yrs::Update::decode_v1(&update).unwrap()).unwrap();
            assert!(txn.store().pending_update().is_none(), "a frame arrived before one it builds on");
        }
    }
}
