//! A Yjs client built on yrs that speaks y-websocket like the JS WebsocketProvider: it answers the
//! server's sync step 1, sends its own, relays local edits as updates, and tracks awareness.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use protocol::{
    AwarenessEntry, Message, SyncMessage, decode_awareness_update, decode_frame, encode_awareness_update,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use yrs::GetString;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update};

/// Origin tag of updates that came from the server, so they are not echoed back.
const REMOTE: &str = "remote";

pub struct YClient {
    pub doc: Doc,
    out: mpsc::UnboundedSender<WsMessage>,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
pub struct Shared {
    /// Awareness states of the other clients: client id -> JSON.
    pub awareness: HashMap<u64, String>,
    /// The close frame the server sent, if any.
    pub closed: Option<(u16, String)>,
    /// Whether the socket has ended.
    pub ended: bool,
    /// Raw frames received, when recording.
    pub frames: Vec<Vec<u8>>,
    pub synced: bool,
    /// Reasons of the permission-denied auth messages received.
    pub denied: Vec<String>,
}

pub fn new_doc() -> Doc {
    Doc::with_options(Options { offset_kind: OffsetKind::Utf16, ..Options::default() })
}

impl YClient {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with_doc(url, new_doc()).await
    }

    /// Connect with an existing document (a client coming back with offline edits).
    pub async fn connect_with_doc(url: &str, doc: Doc) -> Self {
        Self::connect_inner(url, doc, |step1| step1.to_vec()).await
    }

    /// Connect, sending `first(step1)` as the first frame instead of the plain sync step 1 (to
    /// put an auth token message in front of it).
    pub async fn connect_with_first_frame(url: &str, first: impl FnOnce(&[u8]) -> Vec<u8>) -> Self {
        Self::connect_inner(url, new_doc(), first).await
    }

    async fn connect_inner(url: &str, doc: Doc, first: impl FnOnce(&[u8]) -> Vec<u8>) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connect");
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<WsMessage>();
        let shared = Arc::new(Mutex::new(Shared::default()));

        // Local edits go out as sync updates.
        let local_out = out.clone();
        doc.observe_update_v1(
            "codecrafter-test-client",
            move |txn: &yrs::TransactionMut, event: &yrs::UpdateEvent| {
                let remote = txn.origin().is_some_and(|o| o.as_ref() == REMOTE.as_bytes());
                if !remote {
                    let frame = Message::Sync(SyncMessage::Update(&event.update)).encode_to_vec();
                    let _ = local_out.send(WsMessage::Binary(frame.into()));
                }
            },
        )
        .unwrap();

        // Like WebsocketProvider: send our step 1 as soon as the socket opens.
        let sv = doc.transact().state_vector().encode_v1();
        let step1 = Message::Sync(SyncMessage::Step1(&sv)).encode_to_vec();
        out.send(WsMessage::Binary(first(&step1).into())).unwrap();

        let reader_doc = doc.clone();
        let reader_shared = shared.clone();
        let reply = out.clone();
        let task = tokio::spawn(async move {
            // The writer runs on its own: a failed send (the server already closed) must not stop
            // the reader before it has seen the close frame.
            let writer = tokio::spawn(async move {
                while let Some(msg) = out_rx.recv().await {
                    let close = matches!(msg, WsMessage::Close(_));
                    if sink.send(msg).await.is_err() || close {
                        break;
                    }
                }
            });
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    WsMessage::Binary(data) => handle(&reader_doc, &reader_shared, &reply, &data),
                    WsMessage::Close(frame) => {
                        reader_shared.lock().closed = Some(
                            frame.map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string())),
                        );
                    }
                    _ => {}
                }
            }
            writer.abort();
            reader_shared.lock().ended = true;
        });
        Self { doc, out, shared, task }
    }

    /// The Yjs client id (53-bit), as awareness updates carry it.
    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    pub fn shared(&self) -> parking_lot::MutexGuard<'_, Shared> {
        self.shared.lock()
    }

    /// Send raw bytes as one binary frame.
    pub fn send_raw(&self, bytes: Vec<u8>) {
        let _ = self.out.send(WsMessage::Binary(bytes.into()));
    }

    pub fn send_text(&self, text: &str) {
        let _ = self.out.send(WsMessage::Text(text.into()));
    }

    /// Announce our awareness state (JSON) with the given clock.
    pub fn set_awareness(&self, clock: u64, state: &str) {
        let entry = AwarenessEntry { client_id: self.client_id(), clock, state };
        let mut payload = Vec::new();
        encode_awareness_update([entry], &mut payload);
        self.send_raw(Message::Awareness(&payload).encode_to_vec());
    }

    pub fn record_frames(&self) {
        self.shared.lock().frames.clear();
    }

    /// Close politely.
    pub fn close(&self) {
        let frame = CloseFrame { code: 1000.into(), reason: "bye".into() };
        let _ = self.out.send(WsMessage::Close(Some(frame)));
    }

    /// Drop the TCP connection without a close frame, like a crashed browser tab.
    pub fn kill(self) {
        self.task.abort();
    }

    pub fn text(&self, name: &str) -> String {
        let text = self.doc.get_or_insert_text(name);
        text.get_string(&self.doc.transact())
    }

    /// The content of the shared types the tests use (texts `text` and `t`, maps `map` and `m`,
    /// array `array`) as one comparable string. Names must be typed explicitly: a root type that
    /// arrived from the server reads as undefined until it is instantiated with its type.
    pub fn json(&self) -> String {
        let texts =
            ["text", "t"].map(|n| (n, self.doc.get_or_insert_text(n).get_string(&self.doc.transact())));
        let maps =
            ["map", "m"].map(|n| (n, any_json(self.doc.get_or_insert_map(n).to_json(&self.doc.transact()))));
        let array = any_json(self.doc.get_or_insert_array("array").to_json(&self.doc.transact()));
        format!("{texts:?};{maps:?};array={array}")
    }

    /// The JSON of every app message (type 100) received since recording started.
    pub fn app_messages(&self) -> Vec<serde_json::Value> {
        self.shared()
            .frames
            .iter()
            .filter_map(|frame| match decode_frame(frame).next() {
                Some(Ok((Message::App(json), _))) => serde_json::from_str(json).ok(),
                _ => None,
            })
            .collect()
    }

    /// Connect with `?app=1`, wait for the sync, and start recording frames.
    pub async fn connect_app(ws_url: &str) -> Self {
        let client = Self::connect(&format!("{ws_url}?app=1")).await;
        client.wait_for("sync", Duration::from_secs(10), |c| c.shared().synced).await;
        client.record_frames();
        client
    }

    pub async fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Wait until the server closed the connection; returns its close code and reason.
    pub async fn wait_closed(&self, timeout: Duration) -> (u16, String) {
        self.wait_for("server close", timeout, |c| {
            let shared = c.shared();
            shared.ended || shared.closed.is_some()
        })
        .await;
        self.wait_for("socket end", timeout, |c| c.shared().ended).await;
        self.shared().closed.clone().unwrap_or((1006, "no close frame".into()))
    }
}

impl Drop for YClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// JSON with object keys sorted, so equal content compares equal. (Sorted explicitly: with the
/// `preserve_order` feature, which another dependency turns on, serde_json keeps insertion order.)
fn any_json(any: yrs::Any) -> String {
    fn sorted(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    let mut json = String::new();
    any.to_json(&mut json);
    sorted(serde_json::from_str::<serde_json::Value>(&json).expect("yrs writes JSON")).to_string()
}

fn binary(message: Message<'_>) -> WsMessage {
    WsMessage::Binary(message.encode_to_vec().into())
}

fn handle(doc: &Doc, shared: &Mutex<Shared>, reply: &mpsc::UnboundedSender<WsMessage>, data: &[u8]) {
    shared.lock().frames.push(data.to_vec());
    for decoded in decode_frame(data) {
        let Ok((message, _)) = decoded else { return };
        match message {
            Message::Sync(SyncMessage::Step1(sv)) => {
                let sv = StateVector::decode_v1(sv).expect("server state vector");
                let diff = doc.transact().encode_diff_v1(&sv);
                let _ = reply.send(binary(Message::Sync(SyncMessage::Step2(&diff))));
            }
            Message::Sync(SyncMessage::Step2(update) | SyncMessage::Update(update)) => {
                let update = Update::decode_v1(update).expect("server update");
                doc.transact_mut_with(REMOTE).apply_update(update).expect("apply");
                shared.lock().synced = true;
            }
            Message::Awareness(payload) => {
                let mut shared = shared.lock();
                for entry in decode_awareness_update(payload).expect("awareness") {
                    if entry.client_id == doc.client_id().get() {
                        continue;
                    }
                    if entry.is_removal() {
                        shared.awareness.remove(&entry.client_id);
                    } else {
                        shared.awareness.insert(entry.client_id, entry.state.to_owned());
                    }
                }
            }
            Message::Auth(protocol::AuthMessage::PermissionDenied { reason }) => {
                shared.lock().denied.push(reason.to_owned());
            }
            _ => {}
        }
    }
}
