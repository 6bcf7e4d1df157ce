//! The server's configuration: every flag is also an environment variable, and `--help` documents
//! each limit.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

// `--help` headings: every flag belongs to one (a new flag picks the group it configures).
const NETWORK: &str = "Network";
const WS_LIMITS: &str = "WebSocket limits";
const RATE_LIMITS: &str = "Rate limits";
const STORAGE: &str = "Rooms and storage";
const REDIS: &str = "Redis and cluster";
const QUEUE: &str = "Job queue (RabbitMQ)";
const AUTH: &str = "Accounts and tokens";
const RUNTIME: &str = "Runtime and logging";
const EXECUTION: &str = "Code execution (the same flags as codecrafter-worker's)";

pub use crate::telemetry::LogFormat;

/// CodeCrafter collaboration server: Yjs rooms over WebSocket.
#[derive(Debug, Clone, Parser)]
#[command(name = "codecrafter", version)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the real address is printed as `listening on ADDR`). Unset: HOST and PORT, else 127.0.0.1:5000.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_BIND")]
    pub bind: Option<String>,

    /// Host to listen on when `--bind` is not given (the HOST convention of y-websocket-server, Heroku, Cloud Run); default 127.0.0.1.
    #[arg(help_heading = NETWORK, long, env = "HOST")]
    pub host: Option<String>,

    /// Port to listen on when `--bind` is not given (the PORT convention of Heroku, Cloud Run, y-websocket-server); default 5000.
    #[arg(help_heading = NETWORK, long, env = "PORT")]
    pub port: Option<u16>,

    /// Directory of the embedded database (created if missing).
    #[arg(help_heading = STORAGE, long, env = "CODECRAFTER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Page cache of the embedded database, in MiB (snapshots are read through it when rooms open).
    #[arg(help_heading = STORAGE, long, env = "CODECRAFTER_STORE_CACHE_MB", default_value_t = 32)]
    pub store_cache_mb: usize,

    /// Largest WebSocket message accepted from a client, in bytes; larger ones close the connection with 1009.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Largest document a room may hold (approximate encoded size, bytes); an update that would pass it is refused.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_MAX_DOC_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_doc_bytes: usize,

    /// Sustained Yjs messages per second one connection may send; a flood above it (plus the burst) closes the connection with 1008.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_MAX_MESSAGES_PER_SEC", default_value_t = 300)]
    pub max_messages_per_sec: u32,

    /// Messages a connection may send in a burst above the sustained rate.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_MESSAGE_BURST", default_value_t = 1000)]
    pub message_burst: u32,

    /// Frames waiting for one client's full socket before it counts as too slow and is closed with 1013 (updates are never dropped silently).
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_SEND_QUEUE", default_value_t = 1024)]
    pub send_queue: usize,

    /// Split each busy fan-out round (one that merged several updates) of a room with at least twice this many clients into parts of at least this many (at most one per worker thread), written by several worker threads at once: one hot room then writes on every core; 0 writes every round on one thread. Parts much smaller than 16 cost more in task wake-ups than they save (BENCHMARKS.md, "One hot room on more than one core").
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_FANOUT_SPLIT_PEERS", default_value_t = 16)]
    pub fanout_split_peers: usize,

    /// Seconds between pings; a client silent for two intervals is disconnected.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_PING_INTERVAL_SECS", default_value_t = 30)]
    pub ping_interval_secs: u64,

    /// Largest awareness (cursor/presence) state one client may set, in bytes of JSON; a larger one closes the connection with 1008.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_MAX_AWARENESS_STATE_BYTES", default_value_t = 16 * 1024)]
    pub max_awareness_state_bytes: usize,

    /// Awareness client ids one connection may hold at once (a Yjs document uses one); more close the connection with 1008.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_MAX_AWARENESS_CLIENTS", default_value_t = 4)]
    pub max_awareness_clients: usize,

    /// Awareness (cursor/presence) states not renewed for this many milliseconds are removed (y-protocols uses 30000).
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_AWARENESS_TIMEOUT_MS", default_value_t = 30_000)]
    pub awareness_timeout_ms: u64,

    /// A room with no clients for this many seconds is persisted and evicted from memory.
    #[arg(help_heading = STORAGE, long, env = "CODECRAFTER_ROOM_IDLE_SECS", default_value_t = 30)]
    pub room_idle_secs: u64,

    /// Longest a changed room waits before its snapshot is persisted, in milliseconds.
    #[arg(help_heading = STORAGE, long, env = "CODECRAFTER_PERSIST_DEBOUNCE_MS", default_value_t = 1000)]
    pub persist_debounce_ms: u64,

    /// Embedded mode: once a durable write (a journal batch, a chat message) is queued, how long more may gather into the same store transaction (one fsync) before it is written; `saved` and `chat_saved` come that much later. 0 = write at once.
    #[arg(help_heading = STORAGE, long, env = "CODECRAFTER_GROUP_COMMIT_MS", default_value_t = 5)]
    pub group_commit_ms: u64,

    /// Most WebSocket connections served at once; further upgrades get 503.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Seconds a graceful shutdown may take to flush rooms before the process exits anyway.
    #[arg(help_heading = STORAGE, long, env = "CODECRAFTER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Runtime worker threads; 0 = one per CPU core.
    #[arg(help_heading = RUNTIME, long, env = "CODECRAFTER_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// MongoDB connection string; unset = the embedded store under `--data-dir`.
    #[arg(help_heading = STORAGE, long, env = "MONGO_URL")]
    pub mongo_url: Option<String>,

    /// MongoDB database name.
    #[arg(help_heading = STORAGE, long, env = "MONGO_DB", default_value = "codecrafter")]
    pub mongo_db: String,

    /// RabbitMQ URL (`amqp://user:pass@host:5672/vhost`, or `amqps://`): snapshots, updates and chat go to its durable queues for `codecrafter-worker` processes to write; unset = the in-process queue running the same handlers inside this server.
    #[arg(help_heading = QUEUE, long, env = "AMQP_URL")]
    pub amqp_url: Option<String>,

    /// Most megabytes of jobs held on disk (`{data-dir}/outbox.redb`) while RabbitMQ is unreachable; when full, chat is refused and edits wait in memory.
    #[arg(help_heading = QUEUE, long, env = "CODECRAFTER_OUTBOX_MAX_MB", default_value_t = 256)]
    pub outbox_max_mb: u64,

    /// With RabbitMQ: how long opening a room may wait for the workers to have written every update queued for it (the room is never served from a snapshot that misses them); past it, the client is refused (1011) and retries. 0 = do not wait: rooms open even while the broker or every worker is down, at the risk of serving a room without updates still queued for it.
    #[arg(help_heading = QUEUE, long, env = "CODECRAFTER_QUEUE_BARRIER_TIMEOUT_MS", default_value_t = 10_000)]
    pub queue_barrier_timeout_ms: u64,

    /// Redis connection string: the shared cache (refresh tokens, session cache, rate limits) and the relay joining each room across server nodes; unset = in-memory, one node.
    #[arg(help_heading = REDIS, long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Fold each room's updates waiting to be published to Redis into one message (`false`: one publish per update).
    #[arg(help_heading = REDIS, long, env = "CODECRAFTER_RELAY_COALESCE", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay_coalesce: bool,

    /// Microseconds the relay waits after a message before publishing, to gather more per publish; 0 = at once (batches then form only while Redis is busy).
    #[arg(help_heading = REDIS, long, env = "CODECRAFTER_RELAY_BATCH_DELAY_US", default_value_t = 0)]
    pub relay_batch_delay_us: u64,

    /// PEM file of the CA that signed the Redis server's certificate, for `rediss://` URLs to a Redis with a private CA; unset = the system's trusted roots.
    #[arg(help_heading = REDIS, long, env = "CODECRAFTER_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Prefix of every Redis key this server writes, so deployments can share one Redis.
    #[arg(help_heading = REDIS, long, env = "CODECRAFTER_REDIS_PREFIX", default_value = "codecrafter:")]
    pub redis_prefix: String,

    /// Secret signing the JWT access tokens (HS256), at least 32 bytes. Required with MONGO_URL or REDIS_URL (every node must share it); unset on the embedded default = generated once and kept in `--data-dir/jwt-secret`.
    #[arg(help_heading = AUTH, long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of an access token, in seconds.
    #[arg(help_heading = AUTH, long, env = "CODECRAFTER_ACCESS_TOKEN_TTL_SECS", default_value_t = 15 * 60)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a refresh token, in seconds (each use rotates it).
    #[arg(help_heading = AUTH, long, env = "CODECRAFTER_REFRESH_TOKEN_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// How long a session record stays in the cache, in seconds (invalidated on every change).
    #[arg(help_heading = AUTH, long, env = "CODECRAFTER_SESSION_CACHE_SECS", default_value_t = 24 * 3600)]
    pub session_cache_secs: u64,

    /// Let clients without a token open rooms that are not sessions (a plain y-websocket server). Sessions always need a token.
    #[arg(help_heading = AUTH, long, env = "CODECRAFTER_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,

    /// Milliseconds a client connecting without `?token=` has to send its token in an auth message.
    #[arg(help_heading = AUTH, long, env = "CODECRAFTER_AUTH_TIMEOUT_MS", default_value_t = 5000)]
    pub auth_timeout_ms: u64,

    // The budgets below are sized so that a class of 40 behind one NAT can all sign in with a typo
    // or two, and a tab polling every 2 s stays well inside its user's budget, while a password
    // guesser gets a few tries per account per window (README, "Rate limits", has the comparison
    // with GitHub, Auth0 and Keycloak).
    /// API requests per signed-in user in each rate-limit window, from any address (a tab polling every 2 s uses 450 of the default); 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_RATE_LIMIT_REQUESTS", default_value_t = 1200)]
    pub rate_limit_requests: u64,

    /// API requests without a valid access token per client IP in each window (refresh excepted: it has its own budget); 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_IP_RATE_LIMIT_REQUESTS", default_value_t = 600)]
    pub ip_rate_limit_requests: u64,

    /// Length of every API rate-limit window, in seconds.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_RATE_LIMIT_WINDOW_SECS", default_value_t = 15 * 60)]
    pub rate_limit_window_secs: u64,

    /// Failed logins per account (named by email or username alike) in each window; beyond, that account's logins get 429 until the window ends. A successful login clears them; 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    pub login_failures_per_account: u64,

    /// Failed logins per client IP in each window, whatever the account; successful logins do not count; 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_LOGIN_FAILURES_PER_IP", default_value_t = 120)]
    pub login_failures_per_ip: u64,

    /// Registrations per client IP in each window; 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_REGISTER_RATE_LIMIT_REQUESTS", default_value_t = 60)]
    pub register_rate_limit_requests: u64,

    /// Token refreshes per client IP in each window (counted apart from logins, which they never lock out); 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_REFRESH_RATE_LIMIT_REQUESTS", default_value_t = 300)]
    pub refresh_rate_limit_requests: u64,

    /// Removed: replaced by --login-failures-per-account, --login-failures-per-ip, --register-rate-limit-requests and --refresh-rate-limit-requests. Accepted and ignored (with a warning) so old launch scripts still start.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_AUTH_RATE_LIMIT_REQUESTS", hide = true)]
    pub auth_rate_limit_requests: Option<u64>,

    /// How stale the server's knowledge that an account exists and is active may be, in seconds: reads trust a cached answer this old, and live WebSockets of a deleted or disabled account are closed within this long. Writes and new connections always read the store.
    #[arg(help_heading = AUTH, long, env = "CODECRAFTER_ACCOUNT_CHECK_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub account_check_secs: u64,

    /// WebSocket connection attempts per client IP per minute; more get 429; 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_WS_CONNECTS_PER_MIN", default_value_t = 120)]
    pub ws_connects_per_min: u64,

    /// Chat messages one signed-in user may send per minute, across all rooms and nodes; more are refused with `chat_rate_limited`; 0 = unlimited.
    #[arg(help_heading = RATE_LIMITS, long, env = "CODECRAFTER_CHAT_MESSAGES_PER_MIN", default_value_t = 30)]
    pub chat_messages_per_min: u64,

    /// Code execution: Docker, the sandbox's limits, the queue's. In the embedded mode this process
    /// runs the programs; with AMQP_URL the workers do, and the server checks submissions with the
    /// size, rate and queue limits.
    #[command(flatten, next_help_heading = EXECUTION)]
    pub exec: workers::exec::ExecArgs,

    /// Longest chat message, in characters (Unicode scalar values); longer ones are refused with `chat_too_long`; 0 = unlimited.
    #[arg(help_heading = WS_LIMITS, long, env = "CODECRAFTER_CHAT_MAX_CHARS", default_value_t = 2000)]
    pub chat_max_chars: usize,

    /// Browser origins allowed to call the API (CORS), comma-separated; `*` allows any.
    #[arg(
        help_heading = NETWORK,
        long,
        env = "CODECRAFTER_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:3000"
    )]
    pub cors_origins: Vec<String>,

    /// Largest HTTP request body, in bytes; larger ones get 413.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Milliseconds a connection has to deliver a complete request head, counted from when the server starts waiting for one: at accept, and after each response on a kept-alive connection (so this is also the keep-alive idle limit). Past it the connection is closed without an answer; 0 = no limit.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_HTTP_HEADER_TIMEOUT_MS", default_value_t = 30_000)]
    pub http_header_timeout_ms: u64,

    /// Milliseconds from a request's head to its response, reading the body included; past it: 408 if the body had not all arrived, else 503; 0 = no limit.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_HTTP_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub http_request_timeout_ms: u64,

    /// Milliseconds an HTTP response may wait for a client that does not read it before the connection is dropped; 0 = no limit. WebSockets have their own write deadline (two ping intervals).
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_HTTP_WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    pub http_write_timeout_ms: u64,

    /// Most plain HTTP connections open at once (a connection that upgrades to a WebSocket stops counting here and counts against --max-connections); more are answered 503 and closed; 0 = unlimited.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_MAX_HTTP_CONNECTIONS", default_value_t = 10_000)]
    pub max_http_connections: usize,

    /// Most plain HTTP connections open at once from one client IP (the TCP peer; IPv6 counted by /64). Not applied to peers in --trusted-proxies, nor at all with --proxy-hops or --trust-proxy (every connection then comes from a proxy). More are answered 503 and closed; 0 = unlimited.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_MAX_HTTP_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_http_connections_per_ip: usize,

    /// Reverse proxies to trust, comma-separated addresses or CIDR ranges (`10.0.0.0/8,fd00::/8`). From a peer in the list, the client IP is the right-most `X-Forwarded-For` address not in the list, and `X-Forwarded-Proto` says whether it used HTTPS (HSTS); from any other peer both headers are ignored.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_TRUSTED_PROXIES", value_delimiter = ',', conflicts_with_all = ["proxy_hops", "trust_proxy"])]
    pub trusted_proxies: Vec<crate::cidr::Cidr>,

    /// Number of reverse proxies in front of the server, whatever their addresses: the client IP is the N-th `X-Forwarded-For` entry from the right. Only when every connection comes through them; 0 = none.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_PROXY_HOPS", default_value_t = 0, conflicts_with = "trust_proxy")]
    pub proxy_hops: usize,

    /// One reverse proxy in front (same as `--proxy-hops 1`): the client IP is the right-most `X-Forwarded-For` entry, HTTPS from `X-Forwarded-Proto`. Kept for existing deployments; prefer --trusted-proxies.
    #[arg(help_heading = NETWORK, long, env = "CODECRAFTER_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// Log format.
    #[arg(help_heading = RUNTIME, long, env = "CODECRAFTER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// Defaults for a server on `bind` storing under `data_dir` (tests and embedding).
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from(["codecrafter"]);
        config.bind = Some("127.0.0.1:0".into());
        config.data_dir = data_dir.into();
        // The core's tests speak plain y-websocket from one IP; the auth tests switch these back.
        config.allow_anonymous = true;
        config.ws_connects_per_min = 0;
        config.rate_limit_requests = 0;
        config.ip_rate_limit_requests = 0;
        config.login_failures_per_account = 0;
        config.login_failures_per_ip = 0;
        config.register_rate_limit_requests = 0;
        config.refresh_rate_limit_requests = 0;
        // No Docker unless a test asks for it (`exec.docker_host`): a sandbox starts a warm pool.
        config.exec.docker_host = "none".to_owned();
        config
    }

    /// The listen address: `--bind`/`CODECRAFTER_BIND`, else `HOST`:`PORT` (each defaulted).
    pub fn bind_addr(&self) -> String {
        if let Some(bind) = &self.bind {
            return bind.clone();
        }
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        let port = self.port.unwrap_or(5000);
        // An IPv6 literal needs brackets before the port.
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// The Redis client for `--redis-url`, trusting `--redis-ca-file` for `rediss://` if given.
    pub fn redis_client(&self) -> anyhow::Result<Option<redis::Client>> {
        let Some(url) = &self.redis_url else { return Ok(None) };
        crate::redis_tls::client(url, self.redis_ca_file.as_deref()).map(Some)
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

    pub fn rate_limit_window(&self) -> Duration {
        Duration::from_secs(self.rate_limit_window_secs.max(1))
    }

    pub fn login_limits(&self) -> crate::auth::LoginLimits {
        crate::auth::LoginLimits {
            per_account: self.login_failures_per_account,
            per_ip: self.login_failures_per_ip,
            window: self.rate_limit_window(),
        }
    }

    pub fn account_check(&self) -> Duration {
        Duration::from_secs(self.account_check_secs.max(1))
    }

    /// Whether other nodes may share this server's state (then they must share its JWT secret).
    pub fn scaled_out(&self) -> bool {
        self.mongo_url.is_some() || self.redis_url.is_some() || self.amqp_url.is_some()
    }

    pub fn relay_publish_options(&self) -> relay::redis::PublishOptions {
        relay::redis::PublishOptions {
            coalesce: self.relay_coalesce,
            batch_delay: Duration::from_micros(self.relay_batch_delay_us),
        }
    }

    pub fn http_request_timeout(&self) -> Option<Duration> {
        (self.http_request_timeout_ms > 0).then(|| Duration::from_millis(self.http_request_timeout_ms))
    }

    /// How connections are served: timeouts and caps on plain HTTP connections.
    pub fn serve_settings(&self) -> crate::serve::ServeSettings {
        let millis = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        let shutdown = Duration::from_secs(self.shutdown_timeout_secs);
        crate::serve::ServeSettings {
            header_timeout: millis(self.http_header_timeout_ms),
            write_timeout: millis(self.http_write_timeout_ms),
            // A request in flight when shutdown starts may finish, within both limits.
            shutdown_grace: self.http_request_timeout().map_or(shutdown, |request| request.min(shutdown)),
            max_connections: self.max_http_connections,
            // Behind proxies, connections come from the proxies: a per-IP cap on them would be a
            // second, smaller total cap. Per-client budgets are the rate limits' job there. With
            // --proxy-hops (or --trust-proxy) every connection is a proxy's: no per-IP cap; with
            // --trusted-proxies only the listed peers are exempt.
            max_connections_per_ip: if self.proxy_hops > 0 || self.trust_proxy {
                0
            } else {
                self.max_http_connections_per_ip
            },
            per_ip_exempt: self.trusted_proxies.clone(),
        }
    }

    pub fn awareness_limits(&self) -> crdt::AwarenessLimits {
        crdt::AwarenessLimits {
            max_state_bytes: self.max_awareness_state_bytes,
            max_clients: self.max_awareness_clients,
        }
    }

    pub fn crdt_limits(&self) -> crdt::Limits {
        crdt::Limits { max_update_bytes: self.max_message_bytes, max_doc_bytes: self.max_doc_bytes }
    }
}
