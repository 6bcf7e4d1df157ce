//! A room: one Yjs document, its awareness states and the clients editing it.
//!
//! All of a room's state sits behind one short-held mutex (never held across `.await`): applying an
//! update and queueing it for the other clients happen under the same lock, so every client sees
//! updates in the order the document applied them. The writes happen outside the lock, in rounds
//! (`round.rs`, `writer.rs`): whoever queues into a room with no writer writes at once, and what
//! queues meanwhile goes out merged in the next round. Frames are encoded once, framed once, and
//! written straight into each client's socket (see [`crate::socket`]): a delivery is at most one
//! `writev`, with no copy, channel or task wake-up.
//!
//! Failure is contained to the room: every call into its document runs under `catch_unwind`, and
//! a document yrs can no longer encode (`crdt::Error::Poisoned`) or a panic of our own fails the
//! room (see [`Room::fail`]): its clients are closed with 1011 and the registry drops it and
//! reloads it from storage (`quarantine.rs`), while every other room and every shared task go on.

mod frames;
pub mod janitor;
mod journal;
pub mod output;
pub mod persister;
pub mod quarantine;
mod registry;
mod round;
mod runs;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use crdt::{AwarenessRegistry, Owner, RoomDoc};
use parking_lot::Mutex;
use protocol::MessageKind;
use protocol::job::SnapshotJob;
use relay::{Relay, RelayKind};
use tokio::sync::mpsc;
use workers::JobQueue;

use crate::socket::wire::FrameHeader;
use crate::socket::{Cut, Refused, Socket};
use crate::telemetry::Metrics;
use frames::FrameCache;
pub(crate) use frames::encode;
pub use registry::{OpenError, RoomLease, RoomSettings, Rooms};
use round::{Audience, Item};

/// Identifies one WebSocket connection within the process.
pub type ConnId = u64;

pub struct Room {
    id: Arc<str>,
    state: Mutex<RoomState>,
    /// Clients holding a lease; incremented only under the registry's map lock so eviction can
    /// check it atomically.
    connections: AtomicUsize,
    idle_since_ms: AtomicU64,
    dirty: AtomicBool,
    /// Its session was deleted: nothing of it may be persisted any more.
    discarded: AtomicBool,
    /// Its document failed: it serves no one and is persisted no more (see [`Room::fail`]).
    failed: AtomicBool,
    /// Filled by the first joiner from the stored snapshot; later joiners wait on it.
    loaded: tokio::sync::OnceCell<()>,
    persist_tx: mpsc::UnboundedSender<Arc<Room>>,
    /// Where a failed room reports itself, for the registry to drop and reload it.
    failures: mpsc::UnboundedSender<Arc<Room>>,
    awareness_limits: crdt::AwarenessLimits,
    /// Tells the other nodes holding this room what this node's clients do.
    relay: Arc<dyn Relay>,
    /// Where the journal's writer makes updates durable (`journal.rs`).
    queue: Arc<dyn JobQueue>,
    /// A round's worth waits for the fan-out (kept by every locked step and by the writer, so a
    /// connection can check it without the lock), and what tells when it no longer does.
    round_backlogged: AtomicBool,
    round_drained: tokio::sync::Notify,
    /// See [`RoomSettings::fanout_split_peers`].
    fanout_split_peers: usize,
}

struct RoomState {
    doc: RoomDoc,
    awareness: AwarenessRegistry,
    peers: Vec<Peer>,
    frames: FrameCache,
    /// Updates applied since the last snapshot job, and when the first of them arrived.
    changes: u64,
    dirty_since_ms: u64,
    /// Accepted updates on their way to durable storage, and the `saved` marks waiting on them.
    journal: journal::Journal,
    /// The runs going on, replayed to an app client that joins mid-run.
    runs: runs::LiveRuns,
    /// What waits for the fan-out's next round (`round.rs`).
    rounds: round::Rounds,
}

impl RoomState {
    /// Queue `frame` for every client `to` names. True when the caller is to write the round.
    #[must_use]
    fn queue_frame(&mut self, frame: Bytes, kind: MessageKind, to: Audience) -> bool {
        self.rounds.push(Item::Other { frame, kind, to })
    }

    /// Queue an awareness update for every client. True when the caller is to write the round.
    #[must_use]
    fn queue_awareness(&mut self, payload: &[u8]) -> bool {
        self.rounds.push(Item::awareness(frames::awareness_frame(payload), payload.len()))
    }

    /// Queue an app message for one app client, if it is here. `(here, write the round)`.
    fn queue_to(&mut self, conn: ConnId, frame: Bytes) -> (bool, bool) {
        if !self.peers.iter().any(|peer| peer.id == conn && peer.app) {
            return (false, false);
        }
        (true, self.queue_frame(frame, MessageKind::App, Audience::AppClient(conn)))
    }
}

/// A client of the room: where its frames go.
#[derive(Clone)]
pub struct Peer {
    id: ConnId,
    socket: Arc<Socket>,
    /// Frames that may wait for its socket before the client is cut as too slow.
    queue_limit: usize,
    /// Whether it asked for app messages (`?app=1`); stock Yjs clients never get them.
    app: bool,
}

impl Peer {
    pub fn new(id: ConnId, socket: Arc<Socket>, queue_limit: usize, app: bool) -> Self {
        Self { id, socket, queue_limit: queue_limit.max(1), app }
    }

    /// Write `frame` (framed by `header`) to this client. False once the room should forget it.
    fn send(&self, header: &FrameHeader, frame: &Bytes) -> bool {
        kept(self.socket.send_frame(header, frame, self.queue_limit))
    }

    /// Write several frames to this client in one `writev`. False once the room should forget it.
    fn send_frames(&self, frames: &[(&FrameHeader, &Bytes)]) -> bool {
        kept(self.socket.send_frames(frames, self.queue_limit))
    }
}

/// Whether a client whose socket answered `sent` stays in the room; a slow one is counted.
fn kept(sent: Result<(), Refused>) -> bool {
    match sent {
        Ok(()) => true,
        Err(Refused::SlowConsumer) => {
            Metrics::get().slow_consumers.increment(1);
            false
        }
        Err(Refused::Gone) => false,
    }
}

/// A room's document failed or panicked; the room has been failed (see [`Room::fail`]).
#[derive(Debug, thiserror::Error)]
#[error("room failed: {0}")]
pub struct RoomFailed(pub String);

/// What a room operation refused.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The input was refused; the room is unaffected.
    #[error(transparent)]
    Refused(crdt::Error),
    /// The room failed while handling it (and was failed for everyone).
    #[error(transparent)]
    Failed(#[from] RoomFailed),
}

impl Room {
    fn new(
        id: Arc<str>,
        settings: &RoomSettings,
        persist_tx: mpsc::UnboundedSender<Arc<Room>>,
        failures: mpsc::UnboundedSender<Arc<Room>>,
        relay: Arc<dyn Relay>,
        queue: Arc<dyn JobQueue>,
    ) -> Self {
        Self {
            id,
            state: Mutex::new(RoomState {
                doc: RoomDoc::new(settings.limits),
                awareness: AwarenessRegistry::new(settings.awareness_timeout_ms),
                peers: Vec::new(),
                frames: FrameCache::default(),
                changes: 0,
                dirty_since_ms: 0,
                journal: journal::Journal::default(),
                runs: runs::LiveRuns::default(),
                rounds: round::Rounds::default(),
            }),
            connections: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            discarded: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            loaded: tokio::sync::OnceCell::new(),
            persist_tx,
            failures,
            awareness_limits: settings.awareness_limits,
            relay,
            queue,
            round_backlogged: AtomicBool::new(false),
            round_drained: tokio::sync::Notify::new(),
            fanout_split_peers: settings.fanout_split_peers,
        }
    }

    /// Runs `f` on the room's state under its lock, containing a panic and a failed document:
    /// either fails the room (after the lock is released) and answers [`RoomError::Failed`].
    /// Refusals of the input come back as [`RoomError::Refused`].
    fn locked<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut RoomState) -> Result<T, crdt::Error>,
    ) -> Result<T, RoomError> {
        if self.is_failed() {
            return Err(RoomFailed("the room failed and is being reloaded".into()).into());
        }
        let outcome = {
            let mut state = self.state.lock();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut state)));
            self.round_backlogged.store(state.rounds.backlogged(), Ordering::Relaxed);
            outcome
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(crdt::Error::Poisoned(why))) => Err(self.fail(&why).into()),
            Ok(Err(refused)) => Err(RoomError::Refused(refused)),
            Err(panic) => Err(self.fail(&panic_text(&*panic)).into()),
        }
    }

    /// The room's document failed (yrs panicked on it) or our code panicked while handling it:
    /// nothing more of it can be trusted. Every client is cut and closed with 1011 (they
    /// reconnect, and their sync step 2 brings back what they have), nothing of it is persisted
    /// any more, and the registry drops it from memory and reloads it from its last stored
    /// snapshot. Counted in `codecrafter_room_failures_total`; `/ready` reports `degraded`
    /// until the reload succeeds.
    fn fail(self: &Arc<Self>, why: &str) -> RoomFailed {
        if !self.failed.swap(true, Ordering::AcqRel) {
            Metrics::get().room_failures.increment(1);
            tracing::error!(room = %self.id, why, "room failed: closing its clients and reloading it from storage");
            let peers = std::mem::take(&mut self.state.lock().peers);
            for peer in peers {
                peer.socket.cut(Cut::RoomFailed);
            }
            let _ = self.failures.send(self.clone());
            self.round_drained.notify_waiters();
        }
        RoomFailed(why.to_owned())
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Register a client and send it the y-websocket server's greeting: the room's sync step 1
    /// (the client answers with what the room lacks), then every known awareness state. One atomic
    /// step, so the client misses no update and sees the greeting before any of them. A failed
    /// room cuts the client instead (it is closed with 1011 and reconnects to the reloaded room).
    pub fn join(self: &Arc<Self>, peer: Peer) {
        let socket = peer.socket.clone();
        let joined = self.locked(|state| {
            let step1 = state.frames.step1(&state.doc)?;
            let mut greeted = peer.send(&FrameHeader::binary(step1.len()), &step1);
            if let Some(awareness) = state.frames.awareness(&mut state.awareness) {
                greeted = greeted && peer.send(&FrameHeader::binary(awareness.len()), &awareness);
            }
            if greeted && peer.app {
                for frame in state.runs.frames() {
                    greeted = greeted && peer.send(&FrameHeader::binary(frame.len()), frame);
                }
            }
            if greeted {
                state.peers.push(peer);
            }
            Ok(())
        });
        if joined.is_err() {
            socket.cut(Cut::RoomFailed);
        }
    }

    /// Unregister a client and remove the awareness states it holds, telling the others.
    pub fn leave(self: &Arc<Self>, id: ConnId, now_ms: u64) {
        let write = self.locked(|state| {
            state.peers.retain(|peer| peer.id != id);
            let Some(payload) = state.awareness.remove_held_by(id, now_ms) else {
                return Ok(false);
            };
            state.frames.invalidate_awareness();
            self.relay.publish(RelayKind::Awareness, &self.id, &payload);
            Ok(state.queue_awareness(&payload))
        });
        self.write_if(write);
    }

    /// Answer a client's sync step 1 with sync step 2: what the room has that the client lacks.
    /// A fresh client's empty state vector gets the shared, cached full state.
    pub fn sync_reply(self: &Arc<Self>, state_vector: &[u8]) -> Result<Bytes, RoomError> {
        self.locked(|state| state.frames.step2(&state.doc, state_vector))
    }

    /// Apply a client's update, queue `frame()` (the update as a sync-update message) for every
    /// other client and relay it to the other nodes. A rejected update changes nothing and reaches
    /// no one; an update the room already had (every fresh client's empty sync step 2, a
    /// duplicate) changes nothing and is relayed to no one.
    ///
    /// `saved_seq`: the sender is an app client and this is its `saved_seq`-th content message;
    /// it is sent `saved` once the update (and everything journaled before it) is durable.
    pub fn apply_update(
        self: &Arc<Self>,
        origin: ConnId,
        update: &[u8],
        frame: impl FnOnce() -> Bytes,
        now_ms: u64,
        saved_seq: Option<u64>,
    ) -> Result<crdt::Applied, RoomError> {
        self.apply(Some(origin), update, frame, now_ms, saved_seq)
    }

    /// Apply an update another node relayed: every local client gets it, no node is told again.
    /// Not bounded by the per-message limit (a sync reply may carry a whole document).
    pub fn apply_remote_update(self: &Arc<Self>, update: &[u8], now_ms: u64) -> Result<(), RoomError> {
        let frame = || frames::sync_update_frame(update);
        self.apply(None, update, frame, now_ms, None).map(drop)
    }

    /// The room's sync step 1, cached: sent to a client whose update waits for updates the room
    /// has not seen, so that it sends them.
    pub fn step1(self: &Arc<Self>) -> Result<Bytes, RoomError> {
        self.locked(|state| state.frames.step1(&state.doc))
    }

    /// Apply `update` from the client `origin`, or from another node when `None`.
    ///
    /// What the room relays is what its document integrated: the update's own bytes when it
    /// integrated exactly as sent (the common case: a slice of the frame it came in, to every
    /// client but the sender and, from a client, to the other nodes), else the document's
    /// encoding of what it gained (to every client and node), so that a client reusing ids for
    /// other content cannot make anyone diverge from the room.
    fn apply(
        self: &Arc<Self>,
        origin: Option<ConnId>,
        update: &[u8],
        frame: impl FnOnce() -> Bytes,
        now_ms: u64,
        saved_seq: Option<u64>,
    ) -> Result<crdt::Applied, RoomError> {
        let (applied, newly_dirty, writer, write) = self.locked(|state| {
            let applied = match origin {
                Some(_) => state.doc.apply_update(update)?,
                None => state.doc.apply_peer_update(update)?,
            };
            let mut writer = journal::Next::Nothing;
            let mut write = false;
            if applied.changed && !self.discarded.load(Ordering::Acquire) {
                writer = journal_applied(&mut state.journal, origin.is_some(), update, &applied, now_ms);
            }
            if let (Some(conn), Some(seq)) = (origin, saved_seq) {
                let (saved_now, next) = state.journal.mark(conn, seq);
                if let Some(seq) = saved_now {
                    write |= state.queue_to(conn, journal::saved_frame(seq)).1;
                }
                if next == journal::Next::StartWriter {
                    writer = next;
                }
            }
            if !applied.changed {
                return Ok((applied, false, writer, write));
            }
            state.frames.invalidate_doc();
            state.changes += 1;
            // Queued under the lock, so every client and node receives updates in the order applied.
            if applied.relay_original {
                // Encoded only now: most updates that change nothing are fresh clients' empty
                // step 2.
                write |= state.rounds.push(Item::update(frame(), update.len(), origin));
                if origin.is_some() {
                    self.relay.publish(RelayKind::Update, &self.id, update);
                }
            }
            for part in &applied.relay_encoded {
                write |= state.rounds.push(Item::update(frames::sync_update_frame(part), part.len(), None));
                self.relay.publish(RelayKind::Update, &self.id, part);
            }
            let newly_dirty = !self.dirty.swap(true, Ordering::AcqRel);
            if newly_dirty {
                state.dirty_since_ms = now_ms;
            }
            Ok((applied, newly_dirty, writer, write))
        })?;
        if write {
            self.write_rounds();
        }
        self.start_writer(writer);
        if newly_dirty {
            // The persister holds at most one entry per room, so this channel is bounded by the
            // number of rooms even though its type is unbounded.
            let _ = self.persist_tx.send(self.clone());
        }
        Ok(applied)
    }

    /// Apply a client's awareness update and relay it to every client, the sender included:
    /// y-websocket clients treat 30 s without any message as a dead connection, and a client alone
    /// in a room hears only the echo of its own 15 s awareness renewal. `frame` is the update as
    /// received, relayed as is unless some of its entries were for ids another connection holds:
    /// those are left out of what is applied and relayed.
    pub fn apply_awareness(
        self: &Arc<Self>,
        owner: Owner,
        payload: &[u8],
        frame: &Bytes,
        now_ms: u64,
    ) -> Result<(), RoomError> {
        let write = self.locked(|state| {
            let accepted = state.awareness.apply_from(payload, now_ms, owner, &self.awareness_limits)?;
            state.frames.invalidate_awareness();
            Ok(match accepted.filtered {
                None => {
                    self.relay.publish(RelayKind::Awareness, &self.id, payload);
                    state.rounds.push(Item::awareness(frame.clone(), payload.len()))
                }
                Some(kept) => {
                    Metrics::get().awareness_refused.increment(1);
                    self.relay.publish(RelayKind::Awareness, &self.id, &kept);
                    state.queue_awareness(&kept)
                }
            })
        })?;
        if write {
            self.write_rounds();
        }
        Ok(())
    }

    /// Apply an awareness update another node relayed, for every local client.
    pub fn apply_remote_awareness(self: &Arc<Self>, payload: &[u8], now_ms: u64) -> Result<(), RoomError> {
        let write = self.locked(|state| {
            state.awareness.apply(payload, now_ms)?;
            state.frames.invalidate_awareness();
            Ok(state.queue_awareness(payload))
        })?;
        if write {
            self.write_rounds();
        }
        Ok(())
    }

    /// The text of the document's root `Y.Text` named `name`, if it has one (a session's code).
    pub fn text(self: &Arc<Self>, name: &str) -> Option<String> {
        self.locked(|state| Ok(state.doc.text(name))).ok().flatten()
    }

    /// Send an app message (JSON) to every client of the room that asked for app messages, on
    /// every node.
    pub fn broadcast_app(self: &Arc<Self>, json: &str) {
        let frame = frames::encode(protocol::Message::App(json));
        let write = self.locked(|state| {
            state.runs.observe(json, &frame, std::time::Instant::now());
            self.relay.publish(RelayKind::App, &self.id, json.as_bytes());
            Ok(state.queue_frame(frame, MessageKind::App, Audience::App))
        });
        self.write_if(write);
    }

    /// Send an app message (JSON) to one client of this node that asked for app messages (an
    /// answer that comes later than its request: `chat_saved`, `chat_history`). False if the
    /// client is not here (gone, another node) or is a stock client. Through the room's lock, so
    /// it is ordered with the room's fan-out to that client.
    pub fn send_app_to(self: &Arc<Self>, conn: ConnId, json: &str) -> bool {
        let frame = frames::encode(protocol::Message::App(json));
        let Ok((here, write)) = self.locked(|state| Ok(state.queue_to(conn, frame))) else {
            return false;
        };
        if write {
            self.write_rounds();
        }
        here
    }

    /// An app message another node broadcast: to this node's app clients. Refused unless it is
    /// JSON text, so a broken peer cannot make browsers throw.
    pub fn apply_remote_app(self: &Arc<Self>, payload: &[u8]) -> Result<(), AppRefused> {
        let json = std::str::from_utf8(payload).map_err(|_| AppRefused)?;
        serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|_| AppRefused)?;
        let frame = frames::encode(protocol::Message::App(json));
        let write = self.locked(|state| {
            state.runs.observe(json, &frame, std::time::Instant::now());
            Ok(state.queue_frame(frame, MessageKind::App, Audience::App))
        });
        self.write_if(write);
        Ok(())
    }

    /// What this room has that a node with `state_vector` lacks, for its sync request.
    pub fn diff(self: &Arc<Self>, state_vector: &[u8]) -> Result<Vec<u8>, RoomError> {
        self.locked(|state| state.doc.diff(state_vector))
    }

    /// Ask the other nodes holding this room for what it lacks (a sync request with its state
    /// vector); with `ask_back`, they also ask for what they lack.
    pub fn ask_peers(self: &Arc<Self>, ask_back: bool) {
        if let Ok(state_vector) = self.locked(|state| state.doc.state_vector()) {
            let request = protocol::SyncRequest { ask_back, state_vector: &state_vector }.encode();
            self.relay.publish(RelayKind::SyncRequest, &self.id, &request);
        }
    }

    /// Every known awareness state, for a query-awareness request.
    pub fn awareness(self: &Arc<Self>) -> Result<Option<Bytes>, RoomError> {
        self.locked(|state| Ok(state.frames.awareness(&mut state.awareness)))
    }

    /// Remove awareness states not renewed within the timeout, telling every client.
    pub fn expire_awareness(self: &Arc<Self>, now_ms: u64) {
        let write = self.locked(|state| {
            let Some(payload) = state.awareness.expire(now_ms) else {
                return Ok(false);
            };
            state.frames.invalidate_awareness();
            Ok(state.queue_awareness(&payload))
        });
        self.write_if(write);
    }

    /// A content message of app client `conn` that changed nothing (a read-only client's refused
    /// edit, or its empty answer to our sync step 1): `saved` covers it once everything journaled
    /// before it is durable.
    pub fn mark_saved(self: &Arc<Self>, conn: ConnId, seq: u64) {
        let marked = self.locked(|state| {
            let (saved_now, next) = state.journal.mark(conn, seq);
            let write = saved_now.is_some_and(|seq| state.queue_to(conn, journal::saved_frame(seq)).1);
            Ok((next, write))
        });
        if let Ok((writer, write)) = marked {
            if write {
                self.write_rounds();
            }
            self.start_writer(writer);
        }
    }

    fn write_if(self: &Arc<Self>, write: Result<bool, RoomError>) {
        if matches!(write, Ok(true)) {
            self.write_rounds();
        }
    }

    fn start_writer(self: &Arc<Self>, next: journal::Next) {
        if next == journal::Next::StartWriter {
            tokio::spawn(journal::write(self.clone(), self.queue.clone()));
        }
    }

    /// The journal's next batch, for its writer. Taken even from a failed room: what it
    /// journaled had integrated before the failure.
    fn take_journal(&self) -> Option<journal::Batch> {
        self.state.lock().journal.take()
    }

    /// The writer gave up (shutdown, or the session was deleted): the journal is dropped. On
    /// shutdown every room's whole state is written directly instead.
    fn abandon_journal(&self) {
        self.state.lock().journal = journal::Journal::default();
    }

    /// Tell each app client in `saved` that its content messages up to the seq are durable.
    fn send_saved(self: &Arc<Self>, saved: Vec<(ConnId, u64)>) {
        if saved.is_empty() {
            return;
        }
        let mut write = false;
        {
            let mut state = self.state.lock();
            for (conn, seq) in saved {
                write |= state.queue_to(conn, journal::saved_frame(seq)).1;
            }
        }
        if write {
            self.write_rounds();
        }
    }

    fn is_discarded(&self) -> bool {
        self.discarded.load(Ordering::Acquire)
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// The room's full state as a snapshot job if it changed since the last one, clearing the
    /// dirty mark. A caller that then fails to persist it must call [`Room::restore_dirty`].
    /// `None` too for a room that failed: its document is not to be trusted, and storage keeps
    /// its last good state.
    pub fn take_snapshot(self: &Arc<Self>) -> Option<SnapshotJob> {
        self.locked(|state| {
            if self.discarded.load(Ordering::Acquire) || !self.dirty.load(Ordering::Acquire) {
                return Ok(None);
            }
            let update = state.doc.snapshot()?;
            self.dirty.store(false, Ordering::Release);
            let changes = std::mem::take(&mut state.changes);
            Ok(Some(SnapshotJob {
                room: self.id.to_string(),
                update,
                changes,
                dirty_since_ms: state.dirty_since_ms,
            }))
        })
        .ok()
        .flatten()
    }

    /// Put back the dirty mark of a snapshot that could not be persisted; it is retried later.
    pub fn restore_dirty(self: &Arc<Self>, changes: u64, dirty_since_ms: u64) {
        {
            let mut state = self.state.lock();
            state.changes += changes;
            if self.dirty.swap(true, Ordering::AcqRel) {
                return; // changed again meanwhile: already queued for persistence
            }
            state.dirty_since_ms = dirty_since_ms;
        }
        let _ = self.persist_tx.send(self.clone());
    }

    /// When the first unsaved change arrived (unix ms), for the persister's debounce.
    pub fn dirty_since_ms(&self) -> u64 {
        self.state.lock().dirty_since_ms
    }

    fn load(&self, snapshot: Option<&[u8]>, settings: &RoomSettings) -> Result<(), crdt::Error> {
        // A fresh room, not shared yet: nothing here can fail another room.
        if let Some(snapshot) = snapshot {
            let doc = RoomDoc::from_snapshot(snapshot, settings.limits)?;
            let mut state = self.state.lock();
            state.doc = doc;
            state.frames.invalidate_doc();
        }
        Ok(())
    }
}

/// The text of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// A relayed app message that is not JSON text.
#[derive(Debug, thiserror::Error)]
#[error("relayed app message is not JSON text")]
pub struct AppRefused;

/// Journal what an applied update integrated (see `journal.rs` for why these bytes). From another
/// node (`from_client` false) only what this node re-encoded: the origin node journaled the rest.
fn journal_applied(
    journal: &mut journal::Journal,
    from_client: bool,
    update: &[u8],
    applied: &crdt::Applied,
    now_ms: u64,
) -> journal::Next {
    let mut next = journal::Next::Nothing;
    if from_client && (applied.relay_original || applied.pending) {
        next = journal.append(update.to_vec(), now_ms);
    }
    for part in &applied.relay_encoded {
        if journal.append(part.clone(), now_ms) == journal::Next::StartWriter {
            next = journal::Next::StartWriter;
        }
    }
    next
}
