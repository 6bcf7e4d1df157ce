//! Why the server ends a connection: the WebSocket close code and reason a client sees, and the
//! error an app client (`?app=1`) is sent just before.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use metrics::Counter;
use protocol::app::AppMessage;

use crate::socket::Socket;
use crate::socket::frames::Received;
use crate::socket::inbound::{Decoder, FrameError, Inbound};
use crate::socket::wire::{FrameHeader, close_payload};
use crate::telemetry::Metrics;

/// Longest wait for a client to answer our close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// The closing handshake (RFC 6455 §7.1.1): send our close frame (app clients get the error as an
/// app message first), then read until the client answers or hangs up. Closing the socket while
/// the client's frames sit unread would make the kernel reset the connection, and a reset can
/// destroy our close frame before the client reads it. Bounded: a client too slow to read gets no
/// more than [`CLOSE_HANDSHAKE`]. Once the client's framing broke (`reason.broke_framing()`), what
/// it sends is read and dropped rather than decoded.
pub async fn close_with(
    socket: &Socket,
    decoder: &mut Decoder,
    max_message: usize,
    reason: &CloseReason,
    app: bool,
) {
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        if app {
            let error = Bytes::from(reason.app_error());
            socket.send_own(FrameHeader::binary(error.len()), &error).await?;
        }
        let payload = close_payload(reason.code(), &reason.message());
        socket.send_own(FrameHeader::close(payload.len()), &payload).await?;
        socket.flush().await?;
        if reason.broke_framing() {
            socket.discard_until_closed().await;
            return Ok(());
        }
        loop {
            let Received { messages, end } = socket.read_frames(decoder, max_message).await;
            if end.is_some() || messages.iter().any(|message| matches!(message, Inbound::Close(_))) {
                return Ok::<_, std::io::Error>(());
            }
        }
    })
    .await;
}

#[derive(Debug)]
pub enum CloseReason {
    /// The server is shutting down (1001).
    Shutdown,
    /// The client fell more than `--send-queue` frames behind (1013).
    SlowConsumer,
    /// More messages than `--max-messages-per-sec` plus the burst (1008).
    RateLimited,
    /// A message over `--max-message-bytes` (1009).
    TooBig,
    /// A text frame: the protocol is binary only (1003).
    TextFrame,
    /// Bytes that are not WebSocket frames this server takes (1002; 1007 for a close reason that
    /// is not UTF-8).
    BadFrame(FrameError),
    /// Bytes that are not y-protocols messages (1002).
    Malformed(protocol::DecodeError),
    /// A sync or awareness payload the document refused (1007).
    Rejected(crdt::Error),
    /// An awareness update past the per-connection limits (1008).
    AwarenessLimit(crdt::Error),
    /// The room failed (its document broke inside yrs) and is being reloaded: reconnect (1011).
    RoomFailed,
    /// No frame or pong for two ping intervals (1001).
    PingTimeout,
    /// Writing to the client did not finish in time (1001).
    WriteTimeout,
    /// No token, or a bad or expired one (4401).
    Unauthorized(&'static str),
    /// Signed in, but no access to this session (4403).
    Forbidden,
    /// The token's account is disabled, found at admission or while connected (4403).
    AccountDisabled,
    /// Access was taken away while connected: removed from the session (4403).
    Revoked,
    /// No such session (4404).
    NotFound,
    /// The session was deleted while connected (4404).
    SessionDeleted,
    /// The room could not be opened (store unreachable): try again (1011).
    Unavailable,
}

/// Every reason's label (its `code`-independent name), in the order of `CloseReason::index`.
const LABELS: [&str; 19] = [
    "shutdown",
    "slow_consumer",
    "rate_limited",
    "message_too_big",
    "text_frame",
    "malformed_message",
    "invalid_update",
    "awareness_limit",
    "room_failed",
    "ping_timeout",
    "write_timeout",
    "unauthorized",
    "forbidden",
    "account_disabled",
    "access_revoked",
    "session_not_found",
    "session_deleted",
    "room_unavailable",
    "bad_frame",
];

impl CloseReason {
    /// The reason for a payload the room refused.
    pub fn refused(error: crdt::Error) -> Self {
        match error {
            crdt::Error::AwarenessStateTooLarge { .. } | crdt::Error::TooManyAwarenessClients { .. } => {
                Self::AwarenessLimit(error)
            }
            other => Self::Rejected(other),
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Self::Shutdown | Self::PingTimeout | Self::WriteTimeout => 1001,
            Self::SlowConsumer => 1013,
            Self::RateLimited | Self::AwarenessLimit(_) => 1008,
            Self::TooBig => 1009,
            Self::TextFrame => 1003,
            Self::BadFrame(e) => e.close_code(),
            Self::Malformed(_) => 1002,
            Self::Rejected(_) => 1007,
            Self::Unauthorized(_) => 4401,
            Self::Forbidden | Self::Revoked | Self::AccountDisabled => 4403,
            Self::NotFound | Self::SessionDeleted => 4404,
            Self::Unavailable | Self::RoomFailed => 1011,
        }
    }

    /// Stable machine-readable code, also the metrics label.
    pub fn label(&self) -> &'static str {
        LABELS[self.index()]
    }

    /// Position of this reason's label in [`LABELS`].
    fn index(&self) -> usize {
        match self {
            Self::Shutdown => 0,
            Self::SlowConsumer => 1,
            Self::RateLimited => 2,
            Self::TooBig => 3,
            Self::TextFrame => 4,
            Self::Malformed(_) => 5,
            Self::Rejected(_) => 6,
            Self::AwarenessLimit(_) => 7,
            Self::RoomFailed => 8,
            Self::PingTimeout => 9,
            Self::WriteTimeout => 10,
            Self::Unauthorized(_) => 11,
            Self::Forbidden => 12,
            Self::AccountDisabled => 13,
            Self::Revoked => 14,
            Self::NotFound => 15,
            Self::SessionDeleted => 16,
            Self::Unavailable => 17,
            Self::BadFrame(_) => 18,
        }
    }

    /// The reason for bytes the frame decoder refused.
    pub fn of_frame_error(error: FrameError) -> Self {
        match error {
            FrameError::TooBig => Self::TooBig,
            other => Self::BadFrame(other),
        }
    }

    /// Whether the client's byte stream can no longer be read as frames.
    fn broke_framing(&self) -> bool {
        matches!(self, Self::TooBig | Self::BadFrame(_))
    }

    /// Count this close in `codecrafter_connections_closed_total`, through a handle per reason
    /// resolved once.
    pub fn count(&self) {
        static CLOSED: OnceLock<[Counter; LABELS.len()]> = OnceLock::new();
        let counters = CLOSED.get_or_init(|| {
            Metrics::get(); // installs the recorder first, so the handles are not no-ops
            LABELS.map(|label| metrics::counter!("codecrafter_connections_closed_total", "reason" => label))
        });
        counters[self.index()].increment(1);
    }

    pub fn message(&self) -> String {
        match self {
            Self::Shutdown => "server shutting down".into(),
            Self::SlowConsumer => "client too slow: send queue full".into(),
            Self::RateLimited => "message rate limit exceeded".into(),
            Self::TooBig => "message too big".into(),
            Self::TextFrame => "binary frames only".into(),
            Self::BadFrame(FrameError::Protocol(what)) => format!("bad frame: {what}"),
            Self::BadFrame(FrameError::InvalidUtf8) => "bad frame: a close reason that is not UTF-8".into(),
            Self::BadFrame(FrameError::TooBig) => "message too big".into(),
            Self::Malformed(e) => format!("malformed message: {e}"),
            Self::Rejected(e) => format!("update rejected: {e}"),
            Self::AwarenessLimit(e) => format!("awareness refused: {e}"),
            Self::RoomFailed => "the room failed and is being reloaded; reconnect".into(),
            Self::PingTimeout => "ping timeout".into(),
            Self::WriteTimeout => "write timeout".into(),
            Self::Unauthorized(why) => (*why).into(),
            Self::Forbidden => "no access to this session".into(),
            Self::AccountDisabled => "this account is disabled".into(),
            Self::Revoked => "access to this session was revoked".into(),
            Self::NotFound => "session not found".into(),
            Self::SessionDeleted => "session deleted".into(),
            Self::Unavailable => "room unavailable, try again".into(),
        }
    }

    pub fn app_error(&self) -> Vec<u8> {
        AppMessage::error(self.label(), self.message()).to_frame()
    }
}
