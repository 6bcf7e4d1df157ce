//! One client connection: a single task that reads the client's frames and answers them, keeps the
//! connection alive with pings, and drains the socket's queue when the room's fan-out (which writes
//! into the socket directly, see [`crate::socket`]) found it full.
//!
//! The task is what an idle connection costs, so its future is kept small: the connection waits
//! for readability holding no read buffer and no WebSocket library state (the socket reads and
//! decodes frames itself, [`crate::socket::frames`]), and every step that runs rarely or briefly
//! (opening, a received frame's handling, a ping, closing) is boxed while it runs instead of being
//! stored inline (`the_idle_connection_task_stays_small` holds it to a size).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use protocol::{AuthMessage, Message, SyncMessage, decode_frame};
use tokio::sync::OwnedSemaphorePermit;

use super::admission::{self, Early};
use super::app::{Sender, SignedIn};
use super::close::{CloseReason, close_with};
use super::rate_limit::TokenBucket;
use super::sync::{RelayAs, Step, step};
use super::{ConnectionSettings, Gateway};
use crate::access::{Grant, Registration, Revoked};
use crate::clock::unix_ms;
use crate::room::{ConnId, Peer, RoomError, RoomLease};
use crate::socket::frames::{ReadEnd, Received};
use crate::socket::inbound::{Decoder, Inbound};
use crate::socket::wire::FrameHeader;
use crate::socket::{Cut, Socket};
use crate::telemetry::Metrics;

/// How a connection ended.
enum Ending {
    /// The server closes it, telling the client why.
    Close(CloseReason),
    /// The client closed it or the socket broke: nothing left to say.
    Gone,
}

impl From<std::io::Error> for Ending {
    fn from(_: std::io::Error) -> Self {
        Ending::Gone
    }
}

/// What the upgrade route hands over: everything a connection starts from. Boxed, so the task
/// holds one pointer of it for as long as it lives (an async fn's arguments stay in its future).
pub struct Opening {
    /// Resolves once hyper has answered 101 and let go of the socket.
    pub upgrade: hyper::upgrade::OnUpgrade,
    pub socket: Arc<Socket>,
    pub gateway: Arc<Gateway>,
    pub room: String,
    /// `?token=`, if the client sent one.
    pub token: Option<String>,
    /// Whether the client asked for app messages (`?app=1`).
    pub app: bool,
    /// The connection's place under `--max-connections`.
    pub permit: OwnedSemaphorePermit,
    pub log: OpeningLog,
}

/// What the connect's log line says of the upgrade request (the access log leaves it out).
pub struct OpeningLog {
    pub request_id: String,
    /// The TCP peer (a proxy's address, behind one).
    pub peer: std::net::IpAddr,
}

struct Connection {
    room: RoomLease,
    socket: Arc<Socket>,
    gateway: Arc<Gateway>,
    /// The client's frames, decoded as they arrive; holds nothing between frames.
    decoder: Decoder,
    /// Who this connection is (`owner.conn` is its id), for awareness ownership: the ids it sets
    /// are its own.
    owner: crdt::Owner,
    rate: TokenBucket,
    /// Whether the client asked for app messages (`?app=1`).
    app: bool,
    /// An app client's content messages (sync step 2 and update) so far: what `saved` counts.
    content_messages: u64,
    connected_at: Instant,
    last_seen: Instant,
    /// Whether it may write now; flipped by permission changes while it is connected.
    grant: Arc<Grant>,
    /// The signed-in user, as its app messages name it; `None` when anonymous.
    user: Option<Box<SignedIn>>,
    /// In the room until the connection ends (or its task panics).
    joined: Option<Joined>,
    /// Keeps the connection reachable by permission changes until it ends (boxed: most
    /// connections' is `None`, and the rest hold it idle).
    _registration: Option<Box<Registration>>,
    _permit: OwnedSemaphorePermit,
}

/// Serve one upgraded connection from admission to close.
pub async fn serve(opening: Box<Opening>) {
    let Some((mut conn, early)) = Box::pin(open(opening)).await else { return };
    let ending = match Box::pin(conn.on_received(early)).await {
        Ok(()) => conn.run().await,
        Err(ending) => ending,
    };
    Box::pin(conn.end(ending)).await;
}

/// Take the socket from hyper, admit the client and join its room; `None` once a refused client
/// has been told why.
async fn open(opening: Box<Opening>) -> Option<(Connection, Received)> {
    let Opening { upgrade, socket, gateway, room: room_id, token, app, permit, log } = *opening;
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(room = room_id, %error, "WebSocket upgrade did not complete");
            return None;
        }
    };
    let Some(read_ahead) = crate::serve::read_ahead(upgraded) else {
        tracing::error!(room = room_id, "upgraded connection of an unknown type; dropped");
        return None;
    };
    let settings = &gateway.settings;
    let mut decoder = Decoder::default();
    let mut early = Received::decode_early(&mut decoder, &read_ahead, settings.max_message_bytes);
    drop(read_ahead);
    let id = next_conn_id();
    let early_parts = Early { socket: &socket, decoder: &mut decoder, received: &mut early };
    let admission = match admission::admit(early_parts, &gateway, &room_id, id, token).await {
        Ok(admission) => admission,
        Err(reason) => {
            refuse(&socket, &mut decoder, settings, (&room_id, &log), reason, app).await;
            return None;
        }
    };
    let room = match gateway.rooms.join(&room_id).await {
        Ok(lease) => lease,
        Err(error) => {
            tracing::error!(room = room_id, %error, "could not open room");
            refuse(&socket, &mut decoder, settings, (&room_id, &log), CloseReason::Unavailable, app).await;
            return None;
        }
    };
    // Leaves the room and counts the connection gone however the task ends, a panic included.
    let joined = Joined::new(room.clone(), id);
    tracing::info!(
        conn = id,
        room = room.id(),
        user = admission.user.as_deref(),
        app,
        request_id = log.request_id,
        peer = %log.peer,
        "websocket connected"
    );
    // y-websocket servers speak first: the room greets the client as it registers it.
    room.join(Peer::new(id, socket.clone(), settings.send_queue, app));
    if app {
        gateway.app_handlers.joined(id, room.id());
    }
    // The 101, held back, and the greeting in one send. A failure shows at the next read.
    let _ = within_write_deadline(settings, async { Ok(socket.flush().await?) }).await;
    let now = Instant::now();
    let user =
        admission.user.zip(admission.username).map(|(id, username)| Box::new(SignedIn { id, username }));
    let conn = Connection {
        room,
        owner: crdt::Owner { conn: id, principal: admission.principal },
        rate: TokenBucket::new(settings.rate, now),
        app,
        content_messages: 0,
        connected_at: now,
        last_seen: now,
        grant: admission.grant,
        user,
        joined: Some(joined),
        _registration: admission.registration.map(Box::new),
        _permit: permit,
        decoder,
        socket,
        gateway,
    };
    Some((conn, early))
}

/// A connection registered in its room: on drop (the task ended, or panicked) it leaves the room,
/// which removes its awareness states, and the connection gauge comes down.
struct Joined {
    room: Arc<crate::room::Room>,
    id: ConnId,
}

impl Joined {
    fn new(room: Arc<crate::room::Room>, id: ConnId) -> Self {
        Metrics::get().connections.increment(1.0);
        Self { room, id }
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.room.leave(self.id, unix_ms());
        Metrics::get().connections.decrement(1.0);
    }
}

/// Close a connection that was never admitted, saying why.
async fn refuse(
    socket: &Socket,
    decoder: &mut Decoder,
    settings: &ConnectionSettings,
    (room, log): (&str, &OpeningLog),
    reason: CloseReason,
    app: bool,
) {
    reason.count();
    let (request_id, peer) = (&log.request_id, log.peer);
    tracing::info!(room, reason = reason.label(), request_id, %peer, "websocket refused");
    close_with(socket, decoder, settings.max_message_bytes, &reason, app).await;
}

fn next_conn_id() -> ConnId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Connection {
    async fn run(&mut self) -> Ending {
        // Own handles, so the handlers may borrow `self` mutably while these wait.
        let gateway = self.gateway.clone();
        let socket = self.socket.clone();
        let settings = &gateway.settings;
        let interval = settings.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        // Created once: fresh futures per iteration would register with a waiter list (a lock; the
        // token's is shared by every connection) on every frame.
        let shutdown = gateway.shutdown.cancelled();
        let backlog = socket.backlog();
        let grant = self.grant.clone();
        let revoked = grant.revoked();
        tokio::pin!(shutdown, backlog, revoked);
        loop {
            let step = tokio::select! {
                () = &mut shutdown => Err(Ending::Close(CloseReason::Shutdown)),
                why = &mut revoked => Err(Ending::Close(match why {
                    Revoked::Access => CloseReason::Revoked,
                    Revoked::SessionDeleted => CloseReason::SessionDeleted,
                    Revoked::AccountGone => CloseReason::Unauthorized(super::admission::ACCOUNT_GONE),
                    Revoked::AccountDisabled => CloseReason::AccountDisabled,
                })),
                () = &mut backlog => {
                    backlog.set(socket.backlog());
                    // Cut: the room has already let us go.
                    match socket.cut_reason() {
                        Some(Cut::SlowConsumer) => Err(Ending::Close(CloseReason::SlowConsumer)),
                        Some(Cut::RoomFailed) => Err(Ending::Close(CloseReason::RoomFailed)),
                        None => Box::pin(flush(&socket, settings)).await,
                    }
                }
                // The handlers are boxed: awaited inline, the largest of them (a frame's whole
                // handling, write deadline included) would be stored in every idle connection's
                // task, which waits here nearly all its life. One allocation per read costs far
                // less than the read (BENCHMARKS.md, "Where an idle socket's memory goes").
                received = socket.read_frames(&mut self.decoder, settings.max_message_bytes) => {
                    Box::pin(self.on_received(received)).await
                }
                _ = ping.tick() => Box::pin(self.ping(settings)).await,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// Leave the room, then close the socket as `ending` says.
    async fn end(&mut self, ending: Ending) {
        let why = match &ending {
            Ending::Close(reason) => reason.label(),
            Ending::Gone => "client_gone",
        };
        let (id, room) = (self.owner.conn, self.room.id());
        let duration_ms = self.connected_at.elapsed().as_millis() as u64;
        tracing::info!(conn = id, room, duration_ms, reason = why, "websocket left");
        drop(self.joined.take());
        if let Ending::Close(reason) = ending {
            reason.count();
            tracing::debug!(conn = id, room, reason = reason.label(), "closing connection");
            let max = self.gateway.settings.max_message_bytes;
            close_with(&self.socket, &mut self.decoder, max, &reason, self.app).await;
        }
    }

    async fn ping(&self, settings: &ConnectionSettings) -> Result<(), Ending> {
        if self.last_seen.elapsed() > settings.ping_interval * 2 {
            return Err(Ending::Close(CloseReason::PingTimeout));
        }
        within_write_deadline(settings, async {
            Ok(self.socket.send_own(FrameHeader::ping(), &Bytes::new()).await?)
        })
        .await
    }

    /// Handle what one read brought, in order, then how the stream ended if it did.
    async fn on_received(&mut self, received: Received) -> Result<(), Ending> {
        self.last_seen = Instant::now();
        let gateway = self.gateway.clone();
        for message in received.messages {
            self.on_message(message, &gateway).await?;
            // One read may bring hundreds of messages. What the fan-out queued for this client
            // meanwhile goes out between them, as it would between reads: a client that sends a
            // lot at once must not fall behind as a reader (and be cut, 1013) for it.
            flush(&self.socket, &gateway.settings).await?;
        }
        match received.end {
            None => Ok(()),
            Some(ReadEnd::Gone) => Err(Ending::Gone),
            Some(ReadEnd::Broken(error)) => Err(Ending::Close(CloseReason::of_frame_error(error))),
        }
    }

    async fn on_message(&mut self, message: Inbound, gateway: &Gateway) -> Result<(), Ending> {
        let settings = &gateway.settings;
        match message {
            Inbound::Binary(data) => {
                Metrics::get().bytes_in.increment(data.len() as u64);
                // Replies are written once the frame's messages are handled, all within the
                // deadline: a client that floods requests but never reads cannot park this task.
                within_write_deadline(settings, async {
                    if self.handle_frame(&data, gateway).await? {
                        self.socket.flush().await?;
                    }
                    Ok(())
                })
                .await?;
                // Read no more from this client while a round's worth waits for the room's
                // fan-out: its sends then back up in TCP, not in the room's memory.
                self.room.round_backlog().await;
                Ok(())
            }
            Inbound::Text => Err(Ending::Close(CloseReason::TextFrame)),
            Inbound::Ping(payload) => {
                // Each pong is a write: pings count against the message rate like any message.
                if !self.rate.take(settings.rate, Instant::now()) {
                    return Err(Ending::Close(CloseReason::RateLimited));
                }
                within_write_deadline(settings, async {
                    Ok(self.socket.send_own(FrameHeader::pong(payload.len()), &payload).await?)
                })
                .await
            }
            Inbound::Pong => Ok(()),
            Inbound::Close(code) => {
                // Answer with the client's own code (RFC 6455 §5.5.1), then hang up.
                let payload =
                    code.map_or_else(Bytes::new, |code| Bytes::copy_from_slice(&code.to_be_bytes()));
                let _ = within_write_deadline(settings, async {
                    self.socket.send_own(FrameHeader::close(payload.len()), &payload).await?;
                    Ok(self.socket.flush().await?)
                })
                .await;
                Err(Ending::Gone)
            }
        }
    }

    /// Handle every message of one frame, in order. Messages before a bad one stay applied.
    /// Replies to this client are written or queued, not flushed: returns whether there were any.
    async fn handle_frame(&mut self, data: &Bytes, gateway: &Gateway) -> Result<bool, Ending> {
        let received_at = Instant::now();
        let mut replied = false;
        for decoded in decode_frame(data) {
            let (message, range) = decoded.map_err(|e| Ending::Close(CloseReason::Malformed(e)))?;
            if !self.rate.take(gateway.settings.rate, received_at) {
                return Err(Ending::Close(CloseReason::RateLimited));
            }
            Metrics::get().message_in(message.kind());
            if let Some(reply) = self.handle_message(message, || data.slice(range), received_at, gateway)? {
                self.socket.send_own(FrameHeader::binary(reply.len()), &reply).await?;
                replied = true;
            }
        }
        Ok(replied)
    }

    /// Apply one message to the room. `original` yields this message's own bytes, shared with the
    /// frame it came in, to relay unchanged.
    fn handle_message(
        &mut self,
        message: Message<'_>,
        original: impl FnOnce() -> Bytes,
        received_at: Instant,
        gateway: &Gateway,
    ) -> Result<Option<Bytes>, Ending> {
        let rejected = |e: RoomError| {
            Ending::Close(match e {
                RoomError::Refused(e) => CloseReason::refused(e),
                RoomError::Failed(_) => CloseReason::RoomFailed,
            })
        };
        let saved_seq = self.count_content(&message);
        let mark_saved = |room: &RoomLease| {
            if let Some(seq) = saved_seq {
                room.mark_saved(self.owner.conn, seq);
            }
        };
        match step(message, self.grant.can_write(), self.app) {
            Step::AnswerStep1 { state_vector } => {
                Ok(Some(self.room.sync_reply(state_vector).map_err(rejected)?))
            }
            Step::RefuseWrite => {
                mark_saved(&self.room);
                Ok(Some(self.refuse_write()))
            }
            Step::Apply { update, relay: RelayAs::Received } => {
                let applied = self
                    .room
                    .apply_update(self.owner.conn, update, original, unix_ms(), saved_seq)
                    .map_err(rejected)?;
                Metrics::get().fanout.record(received_at.elapsed().as_secs_f64());
                self.ask_for_missing(&applied).map_err(rejected)
            }
            Step::Apply { update, relay: RelayAs::Update } => {
                // Most sync step 2s are empty (a fresh client has nothing); the room relays only
                // what changed it.
                let frame = || crate::room::encode(Message::Sync(SyncMessage::Update(update)));
                let applied = self
                    .room
                    .apply_update(self.owner.conn, update, frame, unix_ms(), saved_seq)
                    .map_err(rejected)?;
                self.ask_for_missing(&applied).map_err(rejected)
            }
            Step::Awareness { payload } => {
                self.room.apply_awareness(self.owner, payload, &original(), unix_ms()).map_err(rejected)?;
                Ok(None)
            }
            Step::QueryAwareness => self.room.awareness().map_err(rejected),
            Step::App { json } => {
                let sender = Sender {
                    conn: self.owner.conn,
                    room: self.room.id(),
                    grant: &self.grant,
                    user: self.user.as_deref(),
                };
                let answer = gateway.app_handlers.dispatch(&sender, json);
                Ok(answer.map(|answer| Bytes::from(answer.to_frame())))
            }
            Step::Nothing => {
                // A read-only client's empty update is a content message too.
                mark_saved(&self.room);
                Ok(None)
            }
        }
    }

    /// For an app client's content message, its number on this connection (from 1), which
    /// `saved` acknowledges.
    fn count_content(&mut self, message: &Message<'_>) -> Option<u64> {
        let content = matches!(message, Message::Sync(SyncMessage::Update(_) | SyncMessage::Step2(_)));
        if !(self.app && content) {
            return None;
        }
        self.content_messages += 1;
        Some(self.content_messages)
    }
}

impl Connection {
    /// A read-only client's update is never applied; it is told why (y-protocols permission
    /// denied).
    fn refuse_write(&self) -> Bytes {
        Metrics::get().permission_denied.increment(1);
        let reason = "read-only: you may not edit this session (viewer role or locked session)";
        crate::room::encode(Message::Auth(AuthMessage::PermissionDenied { reason }))
    }

    /// An update that waits for updates the room lacks: the sender has them, so send it the
    /// room's sync step 1 and it answers with what is missing.
    fn ask_for_missing(&self, applied: &crdt::Applied) -> Result<Option<Bytes>, RoomError> {
        applied.pending.then(|| self.room.step1()).transpose()
    }
}

/// Write out whatever the socket queued, or give up on a client that has not read for two ping
/// intervals.
async fn flush(socket: &Socket, settings: &ConnectionSettings) -> Result<(), Ending> {
    within_write_deadline(settings, async { Ok(socket.flush().await?) }).await
}

/// Run `write`, giving up on a client that has not read anything for two ping intervals. On a
/// healthy socket the write completes at once: that case arms no timer (a timer per write costs a
/// lock on the shared timer wheel).
async fn within_write_deadline<T>(
    settings: &ConnectionSettings,
    write: impl Future<Output = Result<T, Ending>>,
) -> Result<T, Ending> {
    use futures_util::FutureExt;
    let mut write = std::pin::pin!(write);
    if let Some(result) = write.as_mut().now_or_never() {
        return result;
    }
    // Boxed: the timer is needed only on this slow path, and inline it would sit in every idle
    // connection's task.
    match Box::pin(tokio::time::timeout(settings.ping_interval * 2, write)).await {
        Ok(result) => result,
        Err(_) => Err(Ending::Close(CloseReason::WriteTimeout)),
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async fn returns, read off its type: nothing is called.
    fn future_size<A, F: Future>(_: impl FnOnce(A) -> F) -> usize {
        size_of::<F>()
    }

    /// Every idle connection holds this future (in its task, with tokio's header and the task
    /// tracker's token); at 100,000 connections each byte is 100 kB. What it holds is the
    /// connection's fields and the waits of its loop; anything else stored inline (a handler
    /// awaited unboxed, a buffer, a library's stream state) shows here first.
    #[test]
    fn the_idle_connection_task_stays_small() {
        let size = future_size(super::serve);
        // 744 bytes when written (2,032 with tungstenite's stream inside); tokio's header and
        // trailer make the task's allocation about 900 bytes (cells are multiples of 128).
        assert!(size <= 768, "the connection's future grew to {size} bytes");
    }
}
