//! One client connection: where it goes ([`Endpoint`]: URL, framing, source address), connecting,
//! the sync handshake, and answering the server's sync step1 the way y-websocket clients do.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use protocol::{Message, SyncMessage, decode_frame};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use yrs::updates::decoder::Decode as _;
use yrs::updates::encoder::Encode as _;
use yrs::{Doc, ReadTxn as _, StateVector, Transact as _, Update};

use crate::duration::human;
use crate::source_addrs::SourceAddrs;
use crate::target::with_query;
use crate::wire::{Framing, Incoming};

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

/// Where one client connects and how it talks there.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The WebSocket URL to open: y-websocket's ends with the room, Hocuspocus's is the server's one URL.
    pub url: String,
    /// The document's name on the wire (Hocuspocus), or nothing to add (y-websocket).
    pub framing: Framing,
    /// `--source-addrs`: each socket binds the next of these before connecting.
    pub source: Option<Arc<SourceAddrs>>,
}

impl Endpoint {
    /// The same endpoint with `pair` (`key=value`, already escaped) added to the URL's query.
    pub fn with_query(mut self, pair: &str) -> Self {
        self.url = with_query(&self.url, pair);
        self
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.framing {
            Framing::Plain => f.write_str(&self.url),
            Framing::Hocuspocus { doc, .. } => write!(f, "{} document {doc}", self.url),
        }
    }
}

/// One open connection and its framing.
pub struct Ws {
    stream: WebSocketStream<TcpStream>,
    framing: Framing,
}

impl Ws {
    /// Sends one y-protocols message, framed for the server.
    pub async fn send(&mut self, message: Bytes) -> anyhow::Result<()> {
        let frame = self.framing.wrap(message);
        // Display, not the error chain: tungstenite's message already includes its source.
        self.stream.send(WsMessage::Binary(frame)).await.map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Sends a close frame, then reads whatever the server still sends until its close answer and
    /// the end of the stream.
    pub async fn close_and_drain(&mut self) -> anyhow::Result<()> {
        self.stream.close(None).await.context("sending the close frame")?;
        while let Some(message) = self.stream.next().await {
            if message.is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Opens a WebSocket with Nagle off (small frames, latency matters) and small read buffers
/// (thousands of idle sockets must not each pin 128 KiB of harness memory). The TCP socket is
/// ours, not tungstenite's, so it can be bound to a source address first.
pub async fn connect(endpoint: &Endpoint) -> anyhow::Result<Ws> {
    let url = &endpoint.url;
    let request = url.as_str().into_client_request().map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        bail!("{url}: only ws:// URLs (the harness is built without TLS)");
    }
    let host = uri.host().context("a URL without a host")?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let source = endpoint.source.as_deref().map(SourceAddrs::next);
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .find(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .with_context(|| format!("{host} has no address of the source address's family"))?;
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("binding a socket to {ip}"))?;
    }
    let tcp = socket.connect(addr).await.map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (stream, _response) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
    Ok(Ws { stream, framing: endpoint.framing.clone() })
}

/// One event off the socket, with the noise (ping, pong, text, Hocuspocus's own messages)
/// filtered out and the framing removed.
pub enum Event {
    Frame(Bytes),
    Closed(String),
}

/// Waits for the next y-protocols frame or the end of the connection.
pub async fn next_event(ws: &mut Ws) -> Event {
    loop {
        let frame = match ws.stream.next().await {
            Some(Ok(WsMessage::Binary(frame))) => frame,
            Some(Ok(WsMessage::Close(frame))) => {
                return Event::Closed(match frame {
                    Some(f) => format!("server closed with {} {}", u16::from(f.code), f.reason),
                    None => "server closed without a code".to_owned(),
                });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Event::Closed(format!("connection error: {e}")),
            None => return Event::Closed("connection ended".to_owned()),
        };
        match ws.framing.unwrap(frame) {
            Ok(Incoming::Yjs(frame)) => return Event::Frame(frame),
            Ok(Incoming::Authenticated | Incoming::Ignored) => {}
            Ok(Incoming::Denied(why)) => return Event::Closed(format!("server refused our Auth: {why}")),
            Err(e) => return Event::Closed(e),
        }
    }
}

/// Sends our step1, answers the server's step1, and waits for the server's step2 (its answer to
/// ours). Returns the step2 update. Relayed updates cannot arrive yet: runs start writing only
/// after every client is synced.
pub async fn handshake(ws: &mut Ws, local: Local<'_>) -> anyhow::Result<Vec<u8>> {
    // Hocuspocus's provider authenticates first and syncs without waiting for the answer: the
    // server queues what follows until it has decided.
    if let Some(hello) = ws.framing.hello() {
        ws.stream.send(WsMessage::Binary(hello)).await.map_err(|e| anyhow::anyhow!("sending Auth: {e}"))?;
    }
    ws.send(local.step1()).await.context("sending sync step1")?;
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
                    ws.send(local.step2(sv)?).await.context("sending sync step2")?;
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
pub async fn connect_synced(endpoint: &Endpoint, local: Local<'_>) -> anyhow::Result<(Ws, Vec<u8>)> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut ws = connect(endpoint).await?;
        let state = handshake(&mut ws, local).await?;
        Ok((ws, state))
    })
    .await
    .with_context(|| format!("{endpoint}: no connection and sync within {}", human(HANDSHAKE_TIMEOUT)))?
}

/// A fresh client's view of a room: connect, sync, return the document.
pub async fn fetch_doc(endpoint: &Endpoint) -> anyhow::Result<Doc> {
    let (ws, state) = connect_synced(endpoint, Local::Empty).await?;
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
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.stream.close(None)).await;
}
