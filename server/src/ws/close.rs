//! Why the server ends a connection: the WebSocket close code and reason a client sees, and the
//! error an app client (`?app=1`) is sent just before.

use protocol::app::AppMessage;

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
    /// Bytes that are not y-protocols messages (1002).
    Malformed(protocol::DecodeError),
    /// A sync or awareness payload the document refused (1007).
    Rejected(crdt::Error),
    /// No frame or pong for two ping intervals (1001).
    PingTimeout,
    /// Writing to the client did not finish in time (1001).
    WriteTimeout,
}

impl CloseReason {
    pub fn code(&self) -> u16 {
        match self {
            Self::Shutdown | Self::PingTimeout | Self::WriteTimeout => 1001,
            Self::SlowConsumer => 1013,
            Self::RateLimited => 1008,
            Self::TooBig => 1009,
            Self::TextFrame => 1003,
            Self::Malformed(_) => 1002,
            Self::Rejected(_) => 1007,
        }
    }

    /// Stable machine-readable code, also the metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Shutdown => "shutdown",
            Self::SlowConsumer => "slow_consumer",
            Self::RateLimited => "rate_limited",
            Self::TooBig => "message_too_big",
            Self::TextFrame => "text_frame",
            Self::Malformed(_) => "malformed_message",
            Self::Rejected(_) => "invalid_update",
            Self::PingTimeout => "ping_timeout",
            Self::WriteTimeout => "write_timeout",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Shutdown => "server shutting down".into(),
            Self::SlowConsumer => "client too slow: send queue full".into(),
            Self::RateLimited => "message rate limit exceeded".into(),
            Self::TooBig => "message too big".into(),
            Self::TextFrame => "binary frames only".into(),
            Self::Malformed(e) => format!("malformed message: {e}"),
            Self::Rejected(e) => format!("update rejected: {e}"),
            Self::PingTimeout => "ping timeout".into(),
            Self::WriteTimeout => "write timeout".into(),
        }
    }

    /// A close frame's reason may hold at most 123 bytes.
    pub fn close_text(&self) -> String {
        let mut text = self.message();
        if text.len() > 123 {
            let mut end = 123;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }

    pub fn app_error(&self) -> Vec<u8> {
        AppMessage::Error { code: self.label().into(), message: self.message() }.to_frame()
    }
}
