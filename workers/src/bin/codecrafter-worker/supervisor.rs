//! The worker's main loop: connect one consumer per work queue, each driving its own dispatcher
//! (its own prefetch: see `Config::amqp_for`) with every handler registered, poll the queues' lengths, and when the broker connection drops,
//! reconnect with backoff (`/ready` says 503 meanwhile) instead of exiting. On shutdown the
//! dispatchers stop taking jobs, finish and ack those in hand, and close their connections.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::amqp::{AmqpConfig, AmqpConsumer, Topology, WorkQueue};
use workers::{Dispatcher, HandlerDeps, register_handlers};

use crate::config::Config;
use crate::ops::Health;

/// First wait before reconnecting; doubles up to `--max-reconnect-secs`.
const FIRST_RECONNECT: Duration = Duration::from_millis(500);

/// Consume until `shutdown`, reconnecting whenever the broker goes.
pub async fn run(config: &Config, deps: &HandlerDeps, health: &Health, shutdown: &CancellationToken) {
    let amqp = config.amqp();
    let mut backoff = FIRST_RECONNECT;
    loop {
        match consume(config, &amqp, deps, health, shutdown).await {
            Ok(()) if shutdown.is_cancelled() => return,
            Ok(()) => {
                tracing::warn!("lost the broker; reconnecting");
                backoff = FIRST_RECONNECT;
            }
            Err(error) => tracing::warn!(%error, retry_in = ?backoff, "cannot reach the broker"),
        }
        health.set_broker(false);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(config.max_reconnect());
    }
}

/// One connected session: returns when `shutdown` fires (after draining) or when any consumer or
/// the lag poller loses the broker (the others are then drained too, and the caller reconnects).
async fn consume(
    config: &Config,
    amqp: &AmqpConfig,
    deps: &HandlerDeps,
    health: &Health,
    shutdown: &CancellationToken,
) -> Result<(), workers::QueueError> {
    // A worker that runs no programs leaves execution_jobs to those that do.
    let queues: Vec<WorkQueue> = WorkQueue::ALL
        .into_iter()
        .filter(|queue| *queue != WorkQueue::ExecutionJobs || deps.execution.is_some())
        .collect();
    let mut consumers = Vec::with_capacity(queues.len());
    for &queue in &queues {
        consumers.push(AmqpConsumer::connect(&config.amqp_for(queue), queue).await?);
    }
    let monitor = lapin::Connection::connect(&amqp.url, lapin::ConnectionProperties::default())
        .await
        .map_err(|error| workers::QueueError::Backend(format!("connect the lag poller: {error}")))?;
    health.set_broker(true);
    tracing::info!(queues = ?queues.iter().map(|queue| queue.base_name()).collect::<Vec<_>>(), "consuming");

    let stop = shutdown.child_token();
    let tasks = TaskTracker::new();
    for consumer in consumers {
        let dispatcher = register_handlers(Dispatcher::new(config.dispatch()), deps);
        let stop = stop.clone();
        tasks.spawn(async move {
            dispatcher.run(consumer, stop.clone()).await;
            // This queue's connection is gone (or we are stopping): stop the others too.
            stop.cancel();
        });
    }
    let topology = Topology::new(amqp);
    let period = config.lag_poll();
    tasks.spawn(poll_lag(monitor, topology, period, stop.clone()));
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Set `codecrafter_queue_messages_ready{queue}` from a passive declare of each work queue, every
/// `period`, until `stop` or until the broker stops answering (which stops the session).
async fn poll_lag(
    connection: lapin::Connection,
    topology: Topology,
    period: Duration,
    stop: CancellationToken,
) {
    let names = WorkQueue::ALL.map(|queue| topology.queue(queue));
    let gauges = names.clone().map(|name| workers::metrics::queue_messages_ready(&name));
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let mut ticks = tokio::time::interval(period);
    let channel = match connection.create_channel().await {
        Ok(channel) => channel,
        Err(error) => {
            tracing::warn!(%error, "lag poller: no channel");
            stop.cancel();
            return;
        }
    };
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => break,
        }
        for (name, gauge) in names.iter().zip(&gauges) {
            match channel.queue_declare(name.as_str().into(), passive, FieldTable::default()).await {
                Ok(queue) => gauge.set(f64::from(queue.message_count())),
                Err(error) => {
                    tracing::warn!(%error, queue = %name, "lag poller lost the broker");
                    stop.cancel();
                    return;
                }
            }
        }
    }
    let _ = connection.close(200, "worker stopping".into()).await;
}
