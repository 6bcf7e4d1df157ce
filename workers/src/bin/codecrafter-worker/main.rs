//! The `codecrafter-worker` binary: parse config, set up logs and metrics, open the store (and the
//! relay), the sandbox and its heartbeat, serve `/health` `/ready` `/metrics`, and consume the work
//! queues until SIGTERM/SIGINT, then let the runs in progress end.
//!
//! Any number of these share the queues: `message_save` and `execution_jobs` are dealt out among
//! them, `snapshot_save` is taken by one at a time (the next one takes over when it goes).

mod config;
mod ops;
mod supervisor;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::exec::beat::run_beats;
use workers::exec::{DockerConfig, DockerSandbox, ExecutionConfig, ExecutionHandler, Sandbox};
use workers::{HandlerDeps, RelayOutput, RoomOutput};

use crate::config::Config;
use crate::ops::Health;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    workers::process::init_tracing(config.log_format);
    ops::install_recorder();
    let shutdown = CancellationToken::new();
    tokio::spawn(workers::process::cancel_on_signal(shutdown.clone(), "finishing the jobs in hand"));

    let store = config.open_store().await?;
    let background = TaskTracker::new();
    let stop_relay = CancellationToken::new();
    let output = room_output(&config, &background, &stop_relay).await?;
    let owner = config.exec.owner_or(&config.port.to_string());
    // Stopped once the runs have ended: it then removes its warm containers.
    let stop_sandbox = CancellationToken::new();
    let sandbox = (!config.exec.disabled()).then(|| {
        let docker = DockerConfig::new(&config.exec, owner.clone());
        DockerSandbox::start(docker, &background, stop_sandbox.clone()) as Arc<dyn Sandbox>
    });
    let execution = sandbox.as_ref().map(|sandbox| {
        let store = store.clone() as Arc<dyn storage::ExecutionStore>;
        ExecutionHandler::new(
            sandbox.clone(),
            store,
            output.clone(),
            ExecutionConfig::from_args(&config.exec),
        )
    });
    let stop_beats = CancellationToken::new();
    if let (Some(sandbox), Some(url)) = (&sandbox, &config.redis_url) {
        let client = redis::Client::open(url.as_str()).context("REDIS_URL")?;
        let (prefix, concurrency) = (config.redis_prefix.clone(), config.exec.concurrency);
        background.spawn(run_beats(client, prefix, owner, sandbox.clone(), concurrency, stop_beats.clone()));
    }
    let deps = HandlerDeps { store: store.clone(), output, execution: execution.clone() };

    let health = Arc::new(Health::new(store, sandbox));
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    tracing::info!(addr = %listener.local_addr()?, "ops endpoints listening");
    let stop_ops = CancellationToken::new();
    background.spawn(ops::serve(listener, health.clone(), stop_ops.clone()));

    supervisor::run(&config, &deps, &health, &shutdown).await;

    if let Some(execution) = &execution {
        // Runs started before the stop go to their end (their timeout at most): their output
        // still reaches the room, so the relay stays up until then.
        tracing::info!(running = execution.running(), "waiting for the runs in progress");
        execution.wait_for_runs().await;
    }
    tracing::info!("work queues drained; stopping");
    stop_sandbox.cancel();
    stop_beats.cancel();
    stop_ops.cancel();
    stop_relay.cancel();
    background.close();
    background.wait().await;
    Ok(())
}

/// The relay over Redis when `REDIS_URL` is set (handlers then reach rooms on every server node);
/// else an output that reaches no room, which is what a room nobody holds gets anyway.
async fn room_output(
    config: &Config,
    background: &TaskTracker,
    stop: &CancellationToken,
) -> anyhow::Result<Arc<dyn RoomOutput>> {
    let Some(url) = &config.redis_url else { return Ok(Arc::new(NoRooms)) };
    let client = redis::Client::open(url.as_str()).context("REDIS_URL")?;
    let (relay, mut incoming) = relay::redis::RedisRelay::start(
        client,
        &config.redis_prefix,
        relay::new_node_id(),
        relay::redis::PublishOptions::default(),
        background,
        stop.clone(),
    )
    .await
    .context("starting the Redis relay")?;
    // A worker holds no room: what other nodes send it (resync requests) needs no answer.
    background.spawn(async move { while incoming.recv().await.is_some() {} });
    Ok(Arc::new(RelayOutput::new(relay)))
}

struct NoRooms;

#[async_trait::async_trait]
impl RoomOutput for NoRooms {
    async fn send(
        &self,
        room: &str,
        _message: &protocol::app::AppMessage,
    ) -> Result<(), workers::OutputError> {
        tracing::debug!(room, "no REDIS_URL: a room message reaches no one");
        Ok(())
    }
}
