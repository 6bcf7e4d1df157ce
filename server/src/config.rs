//! The server's configuration: every flag is also an environment variable, and `--help` documents
//! each limit.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// CodeCrafter collaboration server: Yjs rooms over WebSocket.
#[derive(Debug, Clone, Parser)]
#[command(name = "codecrafter", version)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the real address is printed as `listening on ADDR`).
    #[arg(long, env = "CODECRAFTER_BIND", default_value = "127.0.0.1:5000")]
    pub bind: String,

    /// Directory of the embedded database (created if missing).
    #[arg(long, env = "CODECRAFTER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Page cache of the embedded database, in MiB (snapshots are read through it when rooms open).
    #[arg(long, env = "CODECRAFTER_STORE_CACHE_MB", default_value_t = 32)]
    pub store_cache_mb: usize,

    /// Largest WebSocket message accepted from a client, in bytes; larger ones close the connection with 1009.
    #[arg(long, env = "CODECRAFTER_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Largest document a room may hold (approximate encoded size, bytes); an update that would pass it is refused.
    #[arg(long, env = "CODECRAFTER_MAX_DOC_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_doc_bytes: usize,

    /// Sustained Yjs messages per second one connection may send; a flood above it (plus the burst) closes the connection with 1008.
    #[arg(long, env = "CODECRAFTER_MAX_MESSAGES_PER_SEC", default_value_t = 300)]
    pub max_messages_per_sec: u32,

    /// Messages a connection may send in a burst above the sustained rate.
    #[arg(long, env = "CODECRAFTER_MESSAGE_BURST", default_value_t = 1000)]
    pub message_burst: u32,

    /// Frames waiting for one client's full socket before it counts as too slow and is closed with 1013 (updates are never dropped silently).
    #[arg(long, env = "CODECRAFTER_SEND_QUEUE", default_value_t = 1024)]
    pub send_queue: usize,

    /// Seconds between pings; a client silent for two intervals is disconnected.
    #[arg(long, env = "CODECRAFTER_PING_INTERVAL_SECS", default_value_t = 30)]
    pub ping_interval_secs: u64,

    /// Awareness (cursor/presence) states not renewed for this many milliseconds are removed (y-protocols uses 30000).
    #[arg(long, env = "CODECRAFTER_AWARENESS_TIMEOUT_MS", default_value_t = 30_000)]
    pub awareness_timeout_ms: u64,

    /// A room with no clients for this many seconds is persisted and evicted from memory.
    #[arg(long, env = "CODECRAFTER_ROOM_IDLE_SECS", default_value_t = 30)]
    pub room_idle_secs: u64,

    /// Longest a changed room waits before its snapshot is persisted, in milliseconds.
    #[arg(long, env = "CODECRAFTER_PERSIST_DEBOUNCE_MS", default_value_t = 1000)]
    pub persist_debounce_ms: u64,

    /// Most WebSocket connections served at once; further upgrades get 503.
    #[arg(long, env = "CODECRAFTER_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Seconds a graceful shutdown may take to flush rooms before the process exits anyway.
    #[arg(long, env = "CODECRAFTER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Runtime worker threads; 0 = one per CPU core.
    #[arg(long, env = "CODECRAFTER_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// Log format.
    #[arg(long, env = "CODECRAFTER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// Defaults for a server on `bind` storing under `data_dir` (tests and embedding).
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from(["codecrafter"]);
        config.bind = "127.0.0.1:0".into();
        config.data_dir = data_dir.into();
        config
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    pub fn room_idle(&self) -> Duration {
        Duration::from_secs(self.room_idle_secs)
    }

    pub fn persist_debounce(&self) -> Duration {
        Duration::from_millis(self.persist_debounce_ms)
    }

    pub fn crdt_limits(&self) -> crdt::Limits {
        crdt::Limits { max_update_bytes: self.max_message_bytes, max_doc_bytes: self.max_doc_bytes }
    }
}
