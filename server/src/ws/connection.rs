//! One client connection: a single task that reads the client's frames and answers them, keeps the
//! connection alive with pings, and drains the socket's queue when the room's fan-out (which writes
//! into the socket directly, see [`crate::socket`]) found it full.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use protocol::{AuthMessage, Message, SyncMessage, decode_frame};
use tokio::sync::OwnedSemaphorePermit;

use super::admission;
use super::app::{Sender, SignedIn};
use super::close::{CloseReason, close_with};
use super::rate_limit::TokenBucket;
use super::sync::{RelayAs, Step, step};
use super::{ConnectionSettings, Gateway};
use crate::access::{Grant, Registration, Revoked};
use crate::clock::unix_ms;
use crate::room::{ConnId, Peer, RoomError, RoomLease};
use crate::socket::{Cut, Socket};
use crate::telemetry::Metrics;

/// How a connection ended.
enum Ending {
    /// The server closes it, telling the client why.
    Close(CloseReason),
    /// The client closed it or the socket broke: nothing left to say.
    Gone,
}

impl From<axum::Error> for Ending {
    fn from(_: axum::Error) -> Self {
        Ending::Gone
    }
}

struct Connection {
    id: ConnId,
    room: RoomLease,
    /// Who this connection is, for awareness ownership: the ids it sets are its own.
    owner: crdt::Owner,
    rate: TokenBucket,
    /// Whether the client asked for app messages (`?app=1`).
    app: bool,
    /// An app client's content messages (sync step 2 and update) so far: what `saved` counts.
    content_messages: u64,
    last_seen: Instant,
    /// Whether it may write now; flipped by permission changes while it is connected.
    grant: Arc<Grant>,
    /// The signed-in user, as its app messages name it; `None` when anonymous.
    user: Option<SignedIn>,
    /// Keeps the connection reachable by permission changes until it ends.
    _registration: Option<Registration>,
}

/// Serve one upgraded connection from admission to close. One function, so that the task holds
/// the WebSocket once: handing it on to a nested future would store it twice in every idle
/// connection's task (an async fn's arguments are never overlapped with its locals). The one-off
/// steps (admission, opening the room, refusing, closing) are boxed for the same reason.
pub async fn serve(
    mut ws: WebSocket,
    socket: Arc<Socket>,
    gateway: Arc<Gateway>,
    room_id: String,
    token: Option<String>,
    app: bool,
    permit: OwnedSemaphorePermit,
) {
    let id = next_conn_id();
    let admitted = Box::pin(admission::admit(&mut ws, &gateway, &room_id, id, token)).await;
    let admission = match admitted {
        Ok(admission) => admission,
        Err(reason) => return Box::pin(refuse(&mut ws, &room_id, reason, app)).await,
    };
    let room = match Box::pin(gateway.rooms.join(&room_id)).await {
        Ok(lease) => lease,
        Err(error) => {
            tracing::error!(room = room_id, %error, "could not open room");
            return Box::pin(refuse(&mut ws, &room_id, CloseReason::Unavailable, app)).await;
        }
    };
    drop(room_id);
    let settings = &gateway.settings;
    // Leaves the room and counts the connection gone however this task ends, a panic included.
    let _joined = Joined::new(room.clone(), id);
    tracing::info!(conn = id, room = room.id(), user = admission.user.as_deref(), app, "websocket connected");
    // y-websocket servers speak first: the room greets the client as it registers it.
    room.join(Peer::new(id, socket.clone(), settings.send_queue, app));
    if app {
        gateway.app_handlers.joined(id, room.id());
    }
    // Also when it connected, for the duration logged when it leaves.
    let now = Instant::now();
    let mut conn = Connection {
        id,
        room,
        owner: crdt::Owner { conn: id, principal: admission.principal },
        rate: TokenBucket::new(settings.max_messages_per_sec, settings.message_burst, now),
        app,
        content_messages: 0,
        last_seen: now,
        grant: admission.grant,
        user: admission.user.zip(admission.username).map(|(id, username)| SignedIn { id, username }),
        _registration: admission.registration,
    };
    let ending = match admission.rest_of_first_frame {
        // What the client sent along with its auth token, handled as if it came now.
        Some(rest) => {
            Box::pin(conn.on_ws_message(&mut ws, Some(Ok(WsMessage::Binary(rest))), &gateway)).await
        }
        None => Ok(()),
    };
    let ending = match ending {
        Ok(()) => conn.run(&mut ws, &socket, &gateway).await,
        Err(ending) => ending,
    };
    let why = match &ending {
        Ending::Close(reason) => reason.label(),
        Ending::Gone => "client_gone",
    };
    let duration_ms = now.elapsed().as_millis() as u64;
    tracing::info!(conn = id, room = conn.room.id(), duration_ms, reason = why, "websocket left");
    drop(_joined);
    if let Ending::Close(reason) = ending {
        reason.count();
        tracing::debug!(conn = id, room = conn.room.id(), reason = reason.label(), "closing connection");
        // Boxed: a rare path, kept out of every idle connection's task.
        Box::pin(close_with(&mut ws, &reason, conn.app)).await;
    }
    drop(permit);
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
async fn refuse(ws: &mut WebSocket, room: &str, reason: CloseReason, app: bool) {
    reason.count();
    tracing::info!(room, reason = reason.label(), "websocket refused");
    close_with(ws, &reason, app).await;
}

fn next_conn_id() -> ConnId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Connection {
    async fn run(&mut self, ws: &mut WebSocket, socket: &Socket, gateway: &Gateway) -> Ending {
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
                        None => Box::pin(flush(ws, settings)).await,
                    }
                }
                // The handlers are boxed: awaited inline, the largest of them (a frame's whole
                // handling, write deadline included) would be stored in every idle connection's
                // task, which waits here nearly all its life. One allocation per received frame
                // costs far less than the frame's read (BENCHMARKS.md, "Where an idle socket's
                // memory goes").
                received = ws.recv() => Box::pin(self.on_ws_message(ws, received, gateway)).await,
                _ = ping.tick() => Box::pin(self.ping(ws, settings)).await,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    async fn ping(&self, ws: &mut WebSocket, settings: &ConnectionSettings) -> Result<(), Ending> {
        if self.last_seen.elapsed() > settings.ping_interval * 2 {
            return Err(Ending::Close(CloseReason::PingTimeout));
        }
        within_write_deadline(settings, async { Ok(ws.send(WsMessage::Ping(Bytes::new())).await?) }).await
    }

    async fn on_ws_message(
        &mut self,
        ws: &mut WebSocket,
        received: Option<Result<WsMessage, axum::Error>>,
        gateway: &Gateway,
    ) -> Result<(), Ending> {
        let settings = &gateway.settings;
        self.last_seen = Instant::now();
        match received {
            None => Err(Ending::Gone),
            Some(Err(error)) => Err(classify_read_error(error)),
            Some(Ok(WsMessage::Binary(data))) => {
                Metrics::get().bytes_in.increment(data.len() as u64);
                // Replies are buffered, then written once per frame, all within the deadline: a
                // client that floods requests but never reads cannot park this task.
                within_write_deadline(settings, async {
                    if self.handle_frame(ws, &data, gateway).await? {
                        ws.flush().await?;
                    }
                    Ok(())
                })
                .await?;
                // Read no more from this client while a round's worth waits for the room's
                // fan-out: its sends then back up in TCP, not in the room's memory.
                self.room.round_backlog().await;
                Ok(())
            }
            Some(Ok(WsMessage::Text(_))) => Err(Ending::Close(CloseReason::TextFrame)),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Ok(()),
            Some(Ok(WsMessage::Close(_))) => Err(Ending::Gone),
        }
    }

    /// Handle every message of one frame, in order. Messages before a bad one stay applied.
    /// Replies to this client are fed to `ws` but not flushed: returns whether any were.
    async fn handle_frame(
        &mut self,
        ws: &mut WebSocket,
        data: &Bytes,
        gateway: &Gateway,
    ) -> Result<bool, Ending> {
        let received_at = Instant::now();
        let mut replied = false;
        for decoded in decode_frame(data) {
            let (message, range) = decoded.map_err(|e| Ending::Close(CloseReason::Malformed(e)))?;
            if !self.rate.take(received_at) {
                return Err(Ending::Close(CloseReason::RateLimited));
            }
            Metrics::get().message_in(message.kind());
            if let Some(reply) = self.handle_message(message, || data.slice(range), received_at, gateway)? {
                ws.feed(WsMessage::Binary(reply)).await?;
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
                room.mark_saved(self.id, seq);
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
                    .apply_update(self.id, update, original, unix_ms(), saved_seq)
                    .map_err(rejected)?;
                Metrics::get().fanout.record(received_at.elapsed().as_secs_f64());
                self.ask_for_missing(&applied).map_err(rejected)
            }
            Step::Apply { update, relay: RelayAs::Update } => {
                // Most sync step 2s are empty (a fresh client has nothing); the room relays only
                // what changed it.
                let frame = || crate::room::encode(Message::Sync(SyncMessage::Update(update)));
                let applied =
                    self.room.apply_update(self.id, update, frame, unix_ms(), saved_seq).map_err(rejected)?;
                self.ask_for_missing(&applied).map_err(rejected)
            }
            Step::Awareness { payload } => {
                self.room.apply_awareness(self.owner, payload, &original(), unix_ms()).map_err(rejected)?;
                Ok(None)
            }
            Step::QueryAwareness => self.room.awareness().map_err(rejected),
            Step::App { json } => {
                let sender = Sender {
                    conn: self.id,
                    room: self.room.id(),
                    grant: &self.grant,
                    user: self.user.as_ref(),
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

fn classify_read_error(error: axum::Error) -> Ending {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match error.into_inner().downcast::<WsError>() {
        Ok(e) if matches!(*e, WsError::Capacity(_)) => Ending::Close(CloseReason::TooBig),
        _ => Ending::Gone,
    }
}

/// Write out everything tungstenite buffered and the socket queued, or give up on a client that
/// has not read for two ping intervals.
async fn flush(ws: &mut WebSocket, settings: &ConnectionSettings) -> Result<(), Ending> {
    within_write_deadline(settings, async { Ok(ws.flush().await?) }).await
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
