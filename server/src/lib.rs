//! CodeCrafter collaboration server: Yjs rooms over WebSocket, operations endpoints, and the
//! wiring of rooms to their storage and job queue.
//!
//! `main.rs` parses [`Config`] and calls [`run`]; tests call [`run`] on a port-0 listener.

pub mod auth;
pub mod cache;
pub mod config;
pub mod directory;
pub mod http;
pub mod presence;
pub mod redis_tls;
pub mod relay;
pub mod room;
pub mod serve;
pub mod socket;
pub mod telemetry;
mod time;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::{DispatchConfig, Dispatcher, InProcessQueue, InProcessQueueConfig, JobQueue};

pub use config::Config;

use crate::http::AppState;
use crate::relay::Relay;
pub use crate::relay::local::LocalHub;
use crate::room::{RoomSettings, Rooms, janitor, persister, quarantine};
use crate::ws::connection::ConnectionSettings;

/// Serve on `listener` until `shutdown` is cancelled, then stop accepting, close every connection,
/// persist every changed room durably, and return.
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with_hub(listener, config, shutdown, LocalHub::new()).await
}

/// [`run`] as one node of `hub`: nodes started on the same hub in one process share rooms, as
/// nodes on one Redis do.
pub async fn run_with_hub(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    hub: LocalHub,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    telemetry::Metrics::get();
    // The secret first: a misconfigured cluster should say so before touching any backend.
    let secret = auth::secret::load(config.jwt_secret.as_deref(), &config.data_dir, config.scaled_out())?;
    let store = open_store(&config).await?;
    let cache = open_cache(&config).await?;
    let auth = Arc::new(auth::Auth {
        tokens: auth::AccessTokens::new(&secret, Duration::from_secs(config.access_token_ttl_secs)),
        refresh: auth::RefreshTokens::new(cache.clone(), Duration::from_secs(config.refresh_token_ttl_secs)),
        accounts: Arc::new(auth::Accounts::new(store.clone(), cache.clone(), config.account_check())),
        logins: auth::LoginAttempts::new(cache.clone(), config.login_limits()),
    });
    if config.auth_rate_limit_requests.is_some() {
        tracing::warn!(
            "--auth-rate-limit-requests is no longer used: see --login-failures-per-account, \
             --login-failures-per-ip, --register-rate-limit-requests, --refresh-rate-limit-requests"
        );
    }
    if config.allow_anonymous {
        tracing::warn!("--allow-anonymous: clients without a token may open any room that is not a session");
    }
    let background = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    // The same dispatcher and handlers a separate worker process runs.
    let snapshots = workers::snapshot::SnapshotHandler::new(store.clone() as Arc<dyn storage::SnapshotStore>);
    let queue = InProcessQueue::start(
        Dispatcher::new(DispatchConfig::default()).register(snapshots),
        InProcessQueueConfig::default(),
        &background,
        stop_workers.clone(),
    );

    let settings = RoomSettings {
        limits: config.crdt_limits(),
        awareness_limits: config.awareness_limits(),
        awareness_timeout_ms: config.awareness_timeout_ms,
        idle: config.room_idle(),
    };
    let (persist_tx, persist_rx) = tokio::sync::mpsc::unbounded_channel();
    let stop_relay = CancellationToken::new();
    let (relay, relayed): (Arc<dyn Relay>, _) = match config.redis_client()? {
        Some(client) => {
            let (relay, relayed) = relay::redis::RedisRelay::start(
                client,
                &config.redis_prefix,
                relay::new_node_id(),
                config.relay_publish_options(),
                &background,
                stop_relay.clone(),
            )
            .await
            .context("starting the Redis relay")?;
            (relay, relayed)
        }
        None => {
            let (relay, relayed) = hub.join(relay::new_node_id());
            (relay, relayed)
        }
    };
    let (rooms, failed_rooms) = Rooms::new(store.clone(), settings, persist_tx, relay.clone());
    let rooms = Arc::new(rooms);
    let (presence, newly_recorded) = presence::Presence::new(relay.node_id(), cache.clone());
    let sessions = Arc::new(directory::SessionDirectory::new(
        store.clone(),
        cache.clone(),
        Duration::from_secs(config.session_cache_secs),
        rooms.clone(),
        queue.clone(),
        relay.clone(),
        presence.clone(),
    ));
    let stop_rooms = CancellationToken::new();
    // Stopped once every connection has closed, so its last write removes this node's records.
    background.spawn(presence.run(stop_rooms.clone()));
    background.spawn(directory::recheck_recorded(newly_recorded, sessions.clone(), stop_rooms.clone()));
    background.spawn(relay::dispatch::run(
        relayed,
        rooms.clone(),
        relay.clone(),
        sessions.clone(),
        stop_rooms.clone(),
    ));
    background.spawn(persister::run(
        persist_rx,
        queue.clone(),
        sessions.clone(),
        config.persist_debounce(),
        stop_rooms.clone(),
    ));
    background.spawn(janitor::run(rooms.clone(), janitor_period(&config), stop_rooms.clone()));
    background.spawn(quarantine::run(failed_rooms, rooms.clone(), background.clone(), stop_rooms.clone()));
    background.spawn(auth::accounts::recheck_live(
        auth.accounts.clone(),
        sessions.live.clone(),
        stop_rooms.clone(),
    ));

    let state = Arc::new(AppState {
        connection_settings: Arc::new(ConnectionSettings {
            send_queue: config.send_queue,
            ping_interval: config.ping_interval(),
            max_messages_per_sec: config.max_messages_per_sec,
            message_burst: config.message_burst,
        }),
        connection_slots: Arc::new(Semaphore::new(config.max_connections)),
        connections: TaskTracker::new(),
        cancel: shutdown.clone(),
        store,
        cache,
        auth,
        sessions,
        relay: relay.clone(),
        rooms: rooms.clone(),
        accepting: AtomicBool::new(true),
        config: Arc::new(config.clone()),
    });

    println!("listening on {addr}");
    tracing::info!(
        %addr,
        store = state.store.backend_name(),
        cache = state.cache.backend_name(),
        anonymous = config.allow_anonymous,
        "codecrafter serving"
    );
    let app = http::router(state.clone());
    serve::serve(socket::SocketListener(listener), app, config.serve_settings(), shutdown.clone()).await;

    state.accepting.store(false, Ordering::Release);
    let deadline = Duration::from_secs(config.shutdown_timeout_secs);
    let drained = tokio::time::timeout(deadline, async {
        state.connections.close();
        state.connections.wait().await;
        stop_rooms.cancel();
        let evicted_or_err = rooms.persist_and_evict(rooms.all(), false).await;
        queue.flush().await?;
        stop_workers.cancel();
        stop_relay.cancel();
        background.close();
        background.wait().await;
        evicted_or_err.map(|_| ()).context("persisting rooms at shutdown")
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => {
            anyhow::bail!("shutdown did not finish within {deadline:?}; some rooms may not be persisted")
        }
    }
    tracing::info!("all rooms persisted; bye");
    Ok(())
}

/// MongoDB when `MONGO_URL` is set (indexes ensured at connect), else the embedded file.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn storage::Store>> {
    Ok(match &config.mongo_url {
        Some(url) => Arc::new(
            storage::MongoStore::connect(storage::MongoConfig::new(url, &config.mongo_db))
                .await
                .context("connecting to MongoDB")?,
        ),
        None => Arc::new(
            storage::EmbeddedStore::open_with_cache(&config.data_dir, config.store_cache_mb * 1024 * 1024)
                .context("opening the embedded store")?,
        ),
    })
}

/// Redis when `REDIS_URL` is set, else in memory.
async fn open_cache(config: &Config) -> anyhow::Result<Arc<dyn cache::Cache>> {
    Ok(match config.redis_client()? {
        Some(client) => Arc::new(
            cache::RedisCache::connect_client(client, &config.redis_prefix)
                .await
                .context("connecting to Redis")?,
        ),
        None => Arc::new(cache::MemoryCache::new()),
    })
}

/// How often the janitor looks at every room: often enough for the awareness timeout and the idle
/// eviction to be honoured within about a quarter of their length.
fn janitor_period(config: &Config) -> Duration {
    let shortest = config.awareness_timeout_ms.min(config.room_idle_secs.saturating_mul(1000)).max(100);
    Duration::from_millis((shortest / 4).clamp(50, 5000))
}
