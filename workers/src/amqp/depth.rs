//! How many messages wait in one work queue, read from the broker every so often (a passive
//! declare answers the count): what a server checks `--exec-queue-max` against without a round
//! trip per submission. While the broker cannot be read the depth is unknown (`u64::MAX`), and the
//! poller reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::{AmqpConfig, Topology, WorkQueue, connect};

/// The value while the depth is not known.
pub const UNKNOWN: u64 = u64::MAX;

/// Polls `queue`'s depth every `period` into the returned counter until `stop`.
pub fn poll_depth(
    config: AmqpConfig,
    queue: WorkQueue,
    period: Duration,
    tracker: &tokio_util::task::TaskTracker,
    stop: CancellationToken,
) -> Arc<AtomicU64> {
    let depth = Arc::new(AtomicU64::new(UNKNOWN));
    tracker.spawn(poll(config, queue, period, depth.clone(), stop));
    depth
}

async fn poll(
    config: AmqpConfig,
    queue: WorkQueue,
    period: Duration,
    depth: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let name = Topology::new(&config).queue(queue);
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    while !stop.is_cancelled() {
        if let Ok(connection) = connect(&config, "codecrafter queue depth").await
            && let Ok(channel) = connection.create_channel().await
        {
            let mut ticks = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stop.cancelled() => break,
                }
                match channel.queue_declare(name.as_str().into(), passive, FieldTable::default()).await {
                    Ok(declared) => depth.store(u64::from(declared.message_count()), Ordering::Relaxed),
                    Err(error) => {
                        tracing::debug!(%error, queue = %name, "queue depth unreadable; reconnecting");
                        break;
                    }
                }
            }
            let _ = connection.close(200, "stopping".into()).await;
        }
        depth.store(UNKNOWN, Ordering::Relaxed);
        tokio::select! {
            () = tokio::time::sleep(period.max(Duration::from_secs(1))) => {}
            () = stop.cancelled() => {}
        }
    }
}
