//! The realtime side: y-websocket connections to rooms, once HTTP has upgraded them (the upgrade
//! route itself is `http/realtime.rs`). `admission` decides who may open a room,
//! [`connection`] serves one socket, [`app`] routes the app messages (type 100) of `?app=1`
//! clients, [`chat`] is the chat kind, `close` names every way a connection ends, [`sync`] decides what each client message
//! calls for (the per-client y-sync rules, without I/O).

mod admission;
pub mod app;
pub mod chat;
mod close;
pub mod connection;
mod rate_limit;
pub mod run;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::{JobQueue, RoomOutput};

pub use close::CloseReason;
pub use connection::{Opening, OpeningLog, serve};
pub use rate_limit::Rate;

use crate::access::SessionDirectory;
use crate::auth::Auth;
use crate::room::Rooms;

/// Longest room id accepted, in bytes.
pub const MAX_ROOM_ID_BYTES: usize = 256;

/// Settings shared by every connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub send_queue: usize,
    pub ping_interval: Duration,
    /// Each connection's message rate limit (`--max-messages-per-sec`, `--message-burst`).
    pub rate: Rate,
    /// Whether token-less clients may open rooms that are not sessions.
    pub allow_anonymous: bool,
    /// How long a client without `?token=` has to send its auth message.
    pub auth_timeout: Duration,
    /// Longest message a client may send, however fragmented (`--max-message-bytes`).
    pub max_message_bytes: usize,
}

/// What every connection shares: the rooms, who may do what, the job queue app messages hand
/// work to, and the settings. Built once by `App::build`; a connection holds one `Arc` of it.
pub struct Gateway {
    pub rooms: Arc<Rooms>,
    pub sessions: Arc<SessionDirectory>,
    pub auth: Arc<Auth>,
    /// Where app messages (chat, run) hand their durable work; unused until those kinds land.
    pub queue: Arc<dyn JobQueue>,
    /// The app message kinds this server handles (see [`app`]).
    pub app_handlers: app::AppHandlers,
    /// Where handlers send app messages to a whole room, on every node.
    pub room_output: Arc<dyn RoomOutput>,
    pub settings: ConnectionSettings,
    /// One permit per open connection (`--max-connections`).
    pub slots: Arc<Semaphore>,
    /// Every connection task, so shutdown can wait for them to close.
    pub connections: TaskTracker,
    /// Cancelled when the server stops: every connection closes with 1001.
    pub shutdown: CancellationToken,
}
