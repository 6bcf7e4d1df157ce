//! The application assembled: [`App::build`] opens the backends a [`Config`] selects, starts the
//! background tasks, and returns the [`AppState`] the routes and sockets share; [`App::shutdown`]
//! stops it in named phases so that nothing a client sent is lost.
//!
//! Shutdown phases, in order (each waits for the one before):
//! 1. stop accepting: the listener is closed by `serve` (the `shutdown` token given to `build`),
//!    `/ready` answers 503, every WebSocket closes with 1001 (the same token, via the
//!    [`Gateway`]) and its task is waited for (`Gateway::connections`);
//! 2. flush rooms: the room tasks stop (`stop_rooms`: persister, janitor, quarantine, cluster,
//!    user-socket records, live re-checks) and every changed room is persisted durably;
//! 3. flush queue: every job published is handled durably, then the in-process workers stop
//!    (`stop_workers`) and the runs in progress end (each by its timeout at the latest);
//! 4. stop relay: the relay stops last (`stop_relay`), so the sync replies and flushes of the
//!    phases before still reach the other nodes; every background task is waited for
//!    (`background`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use relay::{LocalHub, Relay};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::{DispatchConfig, Dispatcher, InProcessQueue, InProcessQueueConfig, JobQueue, RoomOutput};

use crate::access::{SessionDirectory, UserSockets, recheck_recorded};
use crate::auth::{self, Auth};
use crate::cache::{self, Cache};
use crate::config::Config;
use crate::exec::{Executions, SubmitLimits};

use crate::room::output::RoomsOutput;
use crate::room::{RoomSettings, Rooms, janitor, persister, quarantine};
use crate::ws::chat::history::ChatHistory;
use crate::ws::chat::{ChatHandler, ChatParts, ChatSettings};
use crate::ws::run::RunHandler;
use crate::ws::{ConnectionSettings, Gateway, app::AppHandlers};
use crate::{cluster, telemetry};

/// What every route and socket shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn storage::Store>,
    pub cache: Arc<dyn Cache>,
    pub auth: Arc<Auth>,
    pub sessions: Arc<SessionDirectory>,
    pub rooms: Arc<Rooms>,
    pub relay: Arc<dyn Relay>,
    pub queue: Arc<dyn JobQueue>,
    /// Code execution: submissions, the runners, the languages.
    pub executions: Arc<Executions>,
    /// The realtime side: what every WebSocket connection shares.
    pub gateway: Arc<Gateway>,
    /// False once shutdown starts: `/ready` then answers 503.
    pub accepting: AtomicBool,
}

/// A running application: its shared state and what stops it.
pub struct App {
    pub state: Arc<AppState>,
    /// Phase 2: stops the room tasks, once every connection has closed.
    stop_rooms: CancellationToken,
    /// Phase 3: stops the in-process workers, once the queue is flushed.
    stop_workers: CancellationToken,
    /// Phase 4: stops the relay, last.
    stop_relay: CancellationToken,
    /// Every background task (room tasks, workers, relay), waited for at the end of phase 4.
    background: TaskTracker,
    /// The runs this process carries out (embedded mode): phase 3 lets them end (each ends by its
    /// timeout at the latest) so no container outlives the process.
    runs: Option<workers::exec::ExecutionHandler>,
}

impl App {
    /// Open the backends `config` selects, join `hub` when no Redis relay is configured (a
    /// single-node hub by default), and start every background task. `shutdown` is the signal
    /// that starts phase 1.
    pub async fn build(config: Config, hub: LocalHub, shutdown: CancellationToken) -> anyhow::Result<Self> {
        telemetry::Metrics::get();
        // The secret first: a misconfigured cluster should say so before touching any backend.
        let secret = auth::secret::load(config.jwt_secret.as_deref(), &config.data_dir, config.scaled_out())?;
        let store = open_store(&config).await?;
        let cache = open_cache(&config).await?;
        let auth = Arc::new(Auth {
            tokens: auth::AccessTokens::new(&secret, Duration::from_secs(config.access_token_ttl_secs)),
            refresh: auth::RefreshTokens::new(
                cache.clone(),
                Duration::from_secs(config.refresh_token_ttl_secs),
            ),
            accounts: Arc::new(auth::Accounts::new(store.clone(), cache.clone(), config.account_check())),
            logins: auth::LoginAttempts::new(cache.clone(), config.login_limits()),
        });
        warn_about_flags(&config);
        let background = TaskTracker::new();
        let stop_rooms = CancellationToken::new();
        let stop_workers = CancellationToken::new();
        let stop_relay = CancellationToken::new();
        let queue = open_queue(&config, &store, &background, &stop_workers)?;

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
        let settings = RoomSettings {
            limits: config.crdt_limits(),
            awareness_limits: config.awareness_limits(),
            awareness_timeout_ms: config.awareness_timeout_ms,
            fanout_split_peers: config.fanout_split_peers,
            idle: config.room_idle(),
            barrier_before_load: config.amqp_url.is_some() && config.queue_barrier_timeout_ms > 0,
        };
        let (persist_tx, persist_rx) = tokio::sync::mpsc::unbounded_channel();
        let (rooms, failed_rooms) =
            Rooms::new(store.clone(), settings, persist_tx, relay.clone(), queue.clone());
        let rooms = Arc::new(rooms);
        let (user_sockets, newly_recorded) = UserSockets::new(relay.node_id(), cache.clone());
        let sessions = Arc::new(SessionDirectory::new(
            store.clone(),
            cache.clone(),
            Duration::from_secs(config.session_cache_secs),
            rooms.clone(),
            queue.clone(),
            relay.clone(),
            user_sockets.clone(),
        ));
        // Stopped once every connection has closed, so its last write removes this node's records.
        background.spawn(user_sockets.run(stop_rooms.clone()));
        background.spawn(recheck_recorded(newly_recorded, sessions.clone(), stop_rooms.clone()));
        background.spawn(cluster::run(
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
        background.spawn(quarantine::run(
            failed_rooms,
            rooms.clone(),
            background.clone(),
            stop_rooms.clone(),
        ));
        background.spawn(auth::accounts::recheck_live(
            auth.accounts.clone(),
            sessions.live.clone(),
            stop_rooms.clone(),
        ));

        let room_output: Arc<dyn RoomOutput> = Arc::new(RoomsOutput::new(rooms.clone(), relay.clone()));
        let mut app_handlers = AppHandlers::default();
        let chat = ChatHandler::new(
            ChatParts {
                settings: ChatSettings {
                    max_chars: config.chat_max_chars,
                    messages_per_min: config.chat_messages_per_min,
                },
                rooms: rooms.clone(),
                cache: cache.clone(),
                queue: queue.clone(),
                output: room_output.clone(),
                history: ChatHistory::new(cache.clone(), store.clone() as Arc<dyn storage::MessageStore>),
                tasks: background.clone(),
            },
            stop_rooms.clone(),
        );
        app_handlers.register("chat", Arc::new(chat));
        let execution =
            crate::exec::open(&config, &store, &cache, &queue, &room_output, &background, &stop_workers);
        let runs = execution.runs;
        let executions = Arc::new(Executions {
            store: store.clone(),
            rooms: rooms.clone(),
            cache: cache.clone(),
            queue: execution.queue,
            runners: execution.runners,
            backlog: execution.backlog,
            limits: SubmitLimits::from_args(&config.exec),
        });
        app_handlers.register(
            "run",
            Arc::new(RunHandler::new(
                executions.clone(),
                sessions.clone(),
                rooms.clone(),
                background.clone(),
            )),
        );
        let gateway = Arc::new(Gateway {
            rooms: rooms.clone(),
            sessions: sessions.clone(),
            auth: auth.clone(),
            queue: queue.clone(),
            app_handlers,
            room_output,
            settings: ConnectionSettings {
                send_queue: config.send_queue,
                ping_interval: config.ping_interval(),
                rate: crate::ws::Rate::new(config.max_messages_per_sec, config.message_burst),
                allow_anonymous: config.allow_anonymous,
                auth_timeout: Duration::from_millis(config.auth_timeout_ms),
                max_message_bytes: config.max_message_bytes,
            },
            slots: Arc::new(Semaphore::new(config.max_connections)),
            connections: TaskTracker::new(),
            shutdown,
        });
        let state = Arc::new(AppState {
            config: Arc::new(config),
            store,
            cache,
            auth,
            sessions,
            rooms,
            relay,
            queue,
            executions,
            gateway,
            accepting: AtomicBool::new(true),
        });
        Ok(Self { state, stop_rooms, stop_workers, stop_relay, background, runs })
    }

    /// Phases 1 (after `serve` has stopped accepting) to 4, within `deadline`. `Ok` means every
    /// changed room and every queued job is durable.
    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        let Self { state, stop_rooms, stop_workers, stop_relay, background, runs } = self;
        let phases = async {
            // 1. Stop accepting: the listener is closed; close and wait for every connection.
            state.accepting.store(false, Ordering::Release);
            state.gateway.connections.close();
            state.gateway.connections.wait().await;
            // 2. Flush rooms.
            stop_rooms.cancel();
            let persisted = state.rooms.persist_and_evict(state.rooms.all(), false).await;
            // 3. Flush queue; let the runs in progress end.
            state.queue.flush().await?;
            stop_workers.cancel();
            if let Some(runs) = &runs {
                runs.wait_for_runs().await;
            }
            // 4. Stop relay, then wait for every background task.
            stop_relay.cancel();
            background.close();
            background.wait().await;
            persisted.map(|_| ()).context("persisting rooms at shutdown")
        };
        match tokio::time::timeout(deadline, phases).await {
            Ok(result) => result,
            Err(_) => {
                anyhow::bail!("shutdown did not finish within {deadline:?}; some rooms may not be persisted")
            }
        }
    }
}

fn warn_about_flags(config: &Config) {
    if config.auth_rate_limit_requests.is_some() {
        tracing::warn!(
            "--auth-rate-limit-requests is no longer used: see --login-failures-per-account, \
             --login-failures-per-ip, --register-rate-limit-requests, --refresh-rate-limit-requests"
        );
    }
    if config.allow_anonymous {
        tracing::warn!("--allow-anonymous: clients without a token may open any room that is not a session");
    }
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

/// RabbitMQ (behind the on-disk outbox) when `AMQP_URL` is set: `codecrafter-worker` processes run
/// the handlers. Else the in-process queue, running the same dispatcher and handlers a worker
/// process runs, on this process's tasks.
fn open_queue(
    config: &Config,
    store: &Arc<dyn storage::Store>,
    background: &TaskTracker,
    stop_workers: &CancellationToken,
) -> anyhow::Result<Arc<dyn JobQueue>> {
    if let Some(url) = &config.amqp_url {
        // The workers write the store this server loads rooms from: it must be the shared one.
        anyhow::ensure!(
            config.mongo_url.is_some(),
            "AMQP_URL needs MONGO_URL: codecrafter-worker processes write the snapshots and chat to \
             MongoDB, and the server must load rooms from the same store"
        );
        let outbox = workers::outbox::OutboxConfig {
            path: config.data_dir.join("outbox.redb"),
            max_bytes: config.outbox_max_mb.saturating_mul(1024 * 1024),
            replay_batch: 256,
            max_reconnect_delay: Duration::from_secs(5),
            barrier_timeout: Duration::from_millis(config.queue_barrier_timeout_ms),
        };
        let connect = workers::amqp::connector(workers::amqp::AmqpConfig::new(url.clone()));
        std::fs::create_dir_all(&config.data_dir).context("creating the data dir for the outbox")?;
        // Stopped with the relay, after the rooms' last jobs went in.
        let queue = workers::outbox::OutboxQueue::start(outbox, connect, background, stop_workers.clone())
            .context("opening the outbox")?;
        return Ok(queue);
    }
    Ok(InProcessQueue::start(
        workers::register_store_handlers(Dispatcher::new(DispatchConfig::default()), store),
        InProcessQueueConfig {
            linger: Duration::from_millis(config.group_commit_ms),
            ..InProcessQueueConfig::default()
        },
        background,
        stop_workers.clone(),
    ))
}

/// Redis when `REDIS_URL` is set, else in memory with the refresh tokens journaled under the data
/// dir (a restart signs nobody out).
async fn open_cache(config: &Config) -> anyhow::Result<Arc<dyn Cache>> {
    Ok(match config.redis_client()? {
        Some(client) => Arc::new(
            cache::RedisCache::connect_client(client, &config.redis_prefix)
                .await
                .context("connecting to Redis")?,
        ),
        None => {
            let journal = config.data_dir.join("refresh-tokens.journal");
            Arc::new(
                cache::JournaledCache::open(&journal, auth::refresh::DURABLE_PREFIXES)
                    .await
                    .with_context(|| format!("opening {}", journal.display()))?,
            )
        }
    })
}

/// How often the janitor looks at every room: often enough for the awareness timeout and the idle
/// eviction to be honoured within about a quarter of their length.
fn janitor_period(config: &Config) -> Duration {
    let shortest = config.awareness_timeout_ms.min(config.room_idle_secs.saturating_mul(1000)).max(100);
    Duration::from_millis((shortest / 4).clamp(50, 5000))
}
