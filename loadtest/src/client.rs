//! One y-websocket client connection: connecting, the sync handshake, and answering the server's
//! sync step1 the way y-websocket clients do.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use protocol::{Message, SyncMessage, decode_frame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode as _;
use yrs::updates::encoder::Encode as _;
use yrs::{Doc, ReadTxn as _, StateVector, Transact as _, Update};

use crate::duration::human;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long connecting plus the handshake may take for one client.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The client's own document, as far as the sync protocol needs it.
#[derive(Clone, Copy)]
pub enum Local<'a> {
    /// A client that never applies what it receives (receivers, idle sockets): its state is empty.
    Empty,
    /// A writer's document.
    Doc(&'a Doc),
}

impl Local<'_> {
    /// Our sync step1: our state vector.
    pub fn step1(&self) -> Bytes {
        let sv = match self {
            Self::Empty => StateVector::default().encode_v1(),
            Self::Doc(doc) => doc.transact().state_vector().encode_v1(),
        };
        Message::Sync(SyncMessage::Step1(&sv)).encode_to_vec().into()
    }

    /// Our sync step2 answering the server's state vector: what it lacks of ours.
    pub fn step2(&self, state_vector: &[u8]) -> anyhow::Result<Bytes> {
        let update = match self {
            // An empty v1 update: no structs, empty delete set.
            Self::Empty => vec![0, 0],
            Self::Doc(doc) => {
                let sv = StateVector::decode_v1(state_vector).context("server sent a bad state vector")?;
                doc.transact().encode_diff_v1(&sv)
            }
        };
        Ok(Message::Sync(SyncMessage::Step2(&update)).encode_to_vec().into())
    }
}

/// Opens a WebSocket with Nagle off (small frames, latency matters) and small read buffers
/// (thousands of idle sockets must not each pin 128 KiB of harness memory).
pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let config = WebSocketConfig::default().read_buffer_size(4096);
    // Display, not the error chain: tungstenite's message already includes its source.
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
    Ok(ws)
}

/// One event off the socket, with the noise (ping, pong, text) filtered out.
pub enum Event {
    Frame(Bytes),
    Closed(String),
}

/// Waits for the next binary frame or the end of the connection.
pub async fn next_event(ws: &mut Ws) -> Event {
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Binary(frame))) => return Event::Frame(frame),
            Some(Ok(WsMessage::Close(frame))) => {
                return Event::Closed(match frame {
                    Some(f) => format!("server closed with {} {}", u16::from(f.code), f.reason),
                    None => "server closed without a code".to_owned(),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Event::Closed(format!("connection error: {e}")),
            None => return Event::Closed("connection ended".to_owned()),
        }
    }
}

/// Sends our step1, answers the server's step1, and waits for the server's step2 (its answer to
/// ours). Returns the step2 update. Relayed updates cannot arrive yet: runs start writing only
/// after every client is synced.
pub async fn handshake(ws: &mut Ws, local: Local<'_>) -> anyhow::Result<Vec<u8>> {
    ws.send(WsMessage::Binary(local.step1())).await.context("sending sync step1")?;
    let mut answered = false;
    let mut state = None;
    while !answered || state.is_none() {
        let frame = match next_event(ws).await {
            Event::Frame(frame) => frame,
            Event::Closed(why) => bail!("during the sync handshake: {why}"),
        };
        for item in decode_frame(&frame) {
            let (message, _) = item.context("server sent a malformed frame")?;
            match message {
                Message::Sync(SyncMessage::Step1(sv)) => {
                    ws.send(WsMessage::Binary(local.step2(sv)?)).await.context("sending sync step2")?;
                    answered = true;
                }
                Message::Sync(SyncMessage::Step2(update)) => state = Some(update.to_vec()),
                _ => {}
            }
        }
    }
    Ok(state.unwrap_or_default())
}

/// Connects and completes the handshake within [`HANDSHAKE_TIMEOUT`].
pub async fn connect_synced(url: &str, local: Local<'_>) -> anyhow::Result<(Ws, Vec<u8>)> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut ws = connect(url).await?;
        let state = handshake(&mut ws, local).await?;
        Ok((ws, state))
    })
    .await
    .with_context(|| format!("{url}: no connection and sync within {}", human(HANDSHAKE_TIMEOUT)))?
}

/// A fresh client's view of a room: connect, sync, return the document.
pub async fn fetch_doc(url: &str) -> anyhow::Result<Doc> {
    let (ws, state) = connect_synced(url, Local::Empty).await?;
    close(ws).await;
    let doc = Doc::new();
    let update = Update::decode_v1(&state).context("server's step2 is not a v1 update")?;
    doc.transact_mut().apply_update(update).context("applying the server's step2")?;
    Ok(doc)
}

/// Waits until `count` client tasks said they are connected and synced; the first that could not
/// ends the run, naming what it was (`client`, `writer`).
pub async fn await_ready(
    ready: &mut tokio::sync::mpsc::Receiver<Result<(), String>>,
    count: usize,
    what: &str,
) -> anyhow::Result<()> {
    for _ in 0..count {
        match ready.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => bail!("a {what} could not connect and sync: {e}"),
            None => bail!("{what} tasks ended before connecting"),
        }
    }
    Ok(())
}

/// Closes politely, but never waits long for the server's close reply.
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}
