//! Chat: the `chat` app message kind. A signed-in member sends `{"type":"chat","text","nonce"}`;
//! every app client of the room, on every node, gets `{"type":"chat","id","room","user","text",
//! "ts","nonce"}`; the sender then gets `{"type":"chat_saved","id","nonce"}` once the message is
//! durable (`JobQueue::persist`: the broker's confirm, or in-process the store's commit), or an
//! `error` (`chat_not_saved`) if it could not be made durable. A joining app client gets the
//! room's recent messages as `chat_history` (see [`history`]), an empty list when there are none.
//!
//! Rules:
//! - Members only, viewers included ([`Needs::Member`]); an anonymous client of a free room has no
//!   name to chat under and is refused (`chat_sign_in_required`).
//! - A locked session keeps its chat open: locking freezes the code, not the conversation.
//! - The text is 1 to `--chat-max-chars` Unicode scalar values, not blank (`chat_empty`,
//!   `chat_too_long`); a malformed message is `malformed_chat`.
//! - `--chat-messages-per-min` per user across rooms and nodes (a fixed window in the cache;
//!   `chat_rate_limited`). A retried message counts again; a refused text does not count.
//! - The same nonce from the same user in the same room within [`NONCE_TTL`] is one message: the
//!   retry is not broadcast again and is answered `chat_saved` with the first one's id once that
//!   one is durable (the first job is persisted again, which the store ignores: idempotent by id).
//! - Order: a room's messages are handled one after the other on one lane (rooms are spread over
//!   [`LANES`] lanes), so every client sees a room's messages from this node in the order they
//!   arrived, and their timestamps strictly increase in that order (the store sorts by them). A
//!   full lane refuses at once (`chat_busy`) rather than holding up the connection; lanes wait
//!   while [`MAX_PERSISTING`] messages wait to be durable, so an outage fills them.
//! - The cache is a helper, not a dependency: while it fails, chat goes on without rate limit,
//!   dedupe or recent list (each failure is logged).

mod deliver;
pub mod history;

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::time::Duration;

use protocol::app::AppMessage;
use protocol::chat::{ChatRequest, TextRefusal, check_text};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::{JobQueue, RoomOutput};

use self::history::ChatHistory;
use super::app::{AppHandler, Needs, Refusal, Request, Sender, SignedIn};
use crate::cache::Cache;
use crate::room::{ConnId, Rooms};
use crate::telemetry::{ChatRefusal, Metrics};

/// How long a nonce is remembered: a client retrying after a reconnect does so well within it.
pub const NONCE_TTL: Duration = Duration::from_secs(10 * 60);
/// Lanes the rooms are spread over: rooms on different lanes are handled side by side.
pub const LANES: usize = 8;
/// Messages waiting on one lane before more are refused.
const LANE_CAPACITY: usize = 1024;
/// Messages of this node waiting to be durable. Past it the lanes wait, their queues fill, and
/// new messages are refused (`chat_busy`): a slow store or broker bounds the memory chat holds.
const MAX_PERSISTING: usize = 4096;

/// The chat limits (`--chat-max-chars`, `--chat-messages-per-min`; 0 = unlimited).
#[derive(Debug, Clone, Copy)]
pub struct ChatSettings {
    pub max_chars: usize,
    pub messages_per_min: u64,
}

/// What a chat handler works with.
pub struct ChatParts {
    pub settings: ChatSettings,
    pub rooms: Arc<Rooms>,
    pub cache: Arc<dyn Cache>,
    pub queue: Arc<dyn JobQueue>,
    pub output: Arc<dyn RoomOutput>,
    pub history: ChatHistory,
    /// Where the lanes, the persist waits and the history reads run, so shutdown waits for them.
    pub tasks: TaskTracker,
}

/// The `chat` [`AppHandler`].
pub struct ChatHandler {
    parts: Arc<ChatParts>,
    lanes: Vec<mpsc::Sender<Outgoing>>,
}

impl ChatHandler {
    /// Starts the lanes; they end once `stop` is cancelled and what they hold is handled.
    pub fn new(parts: ChatParts, stop: CancellationToken) -> Self {
        let parts = Arc::new(parts);
        let persisting = Arc::new(Semaphore::new(MAX_PERSISTING));
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::channel(LANE_CAPACITY);
                parts.tasks.spawn(deliver::lane(parts.clone(), rx, persisting.clone(), stop.clone()));
                tx
            })
            .collect();
        Self { parts, lanes }
    }

    fn lane_of(&self, room: &str) -> &mpsc::Sender<Outgoing> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        &self.lanes[(hash % self.lanes.len() as u64) as usize]
    }
}

fn refuse(why: ChatRefusal, code: &'static str, message: impl Into<String>) -> Refusal {
    Metrics::get().chat_refused(why);
    Refusal { code, message: message.into() }
}

impl From<TextRefusal> for ChatRefusal {
    fn from(refusal: TextRefusal) -> Self {
        match refusal {
            TextRefusal::Empty => ChatRefusal::Empty,
            TextRefusal::TooLong { .. } => ChatRefusal::TooLong,
        }
    }
}

/// A checked message on its way: who, where, what.
struct Outgoing {
    conn: ConnId,
    room: String,
    user: SignedIn,
    text: String,
    nonce: Option<String>,
}

impl AppHandler for ChatHandler {
    fn needs(&self) -> Needs {
        Needs::Member
    }

    /// Checks what needs no I/O here, then hands the message to its room's lane (rate limit,
    /// dedupe, broadcast, persist), so the connection is never held up.
    fn handle(&self, sender: &Sender<'_>, request: &Request<'_>) -> Result<Option<AppMessage>, Refusal> {
        let Some(user) = sender.user else {
            return Err(refuse(ChatRefusal::Anonymous, "chat_sign_in_required", "sign in to chat"));
        };
        let text = serde_json::from_str::<ChatRequest>(request.json)
            .map_err(|error| {
                let message = format!("a chat message has a string \"text\": {error}");
                refuse(ChatRefusal::Malformed, "malformed_chat", message)
            })?
            .text;
        check_text(&text, self.parts.settings.max_chars)
            .map_err(|why| refuse(why.into(), why.code(), why.message()))?;
        let outgoing = Outgoing {
            conn: sender.conn,
            room: sender.room.to_owned(),
            user: user.clone(),
            text,
            nonce: request.head.nonce.clone(),
        };
        self.lane_of(sender.room).try_send(outgoing).map_err(|_| {
            refuse(ChatRefusal::Busy, "chat_busy", "too many chat messages waiting; try again")
        })?;
        Ok(None)
    }

    fn joined(&self, conn: ConnId, room: &str) {
        self.parts.tasks.spawn(self.parts.clone().send_history(conn, room.to_owned()));
    }
}
