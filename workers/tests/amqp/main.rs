//! The RabbitMQ backend against a real broker (`CODECRAFTER_TEST_AMQP_URL`, exported by
//! `scripts/services.sh`, which starts the node from the project's `rabbitmq.conf` and
//! `deploy/rabbitmq/definitions.json`). Each test declares its own queues under a unique prefix and
//! deletes them at the end; only `topology` looks at the contract's own names.

mod barrier;
mod queue;
mod routing;
mod topology;
mod worker_bin;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use protocol::job::{Job, SnapshotJob};
use workers::amqp::{AmqpConfig, Topology};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn broker_url() -> String {
    std::env::var("CODECRAFTER_TEST_AMQP_URL").unwrap_or_else(|_| {
        panic!(
            "CODECRAFTER_TEST_AMQP_URL is not set: these tests need a RabbitMQ broker. Start one with \
             `source scripts/services.sh && services_start` (installs rabbitmq-server with apt if missing, \
             runs it on its own ports from the project's rabbitmq.conf and exports the URL)"
        )
    })
}

/// A prefix no other test (or run) uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("test-{}-{nanos}-{}-", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A queue configuration under a unique prefix.
pub fn config(max_length: Option<u32>, prefetch: u16) -> AmqpConfig {
    AmqpConfig {
        prefix: unique_prefix(),
        prefetch,
        delivery_limit: 3,
        max_length,
        ..AmqpConfig::new(broker_url())
    }
}

/// Delete the queues and exchanges of `config`.
pub async fn delete_topology(config: &AmqpConfig) {
    let Ok(connection) = Connection::connect(&config.url, ConnectionProperties::default()).await else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else { return };
    let spec = Topology::new(config).spec();
    for queue in &spec.queues {
        let _ = channel.queue_delete(queue.name.as_str().into(), QueueDeleteOptions::default()).await;
    }
    for exchange in &spec.exchanges {
        let _ =
            channel.exchange_delete(exchange.name.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = connection.close(200, "done".into()).await;
}

pub fn snapshot(room: &str, seq: u64) -> Job {
    Job::Snapshot(SnapshotJob { room: room.into(), update: b"ok".to_vec(), changes: seq, dirty_since_ms: 0 })
}

/// Wait until `check` holds, polling, for at most [`TIMEOUT`].
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_within(TIMEOUT, what, check).await;
}

/// Wait until `check` holds, polling, for at most `timeout`.
pub async fn wait_within<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
