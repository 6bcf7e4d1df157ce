//! Periodic upkeep: expire stale awareness states, persist and evict idle rooms, drain the metrics
//! recorder.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Rooms;
use crate::clock::unix_ms;

pub async fn run(rooms: Arc<Rooms>, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cancel.cancelled() => return,
        }
        // Histogram samples pile up in the recorder until drained: drain them even when no one
        // scrapes /metrics, so an unscraped server does not grow.
        crate::telemetry::prometheus().run_upkeep();
        let now = unix_ms();
        for room in rooms.all() {
            room.expire_awareness(now);
        }
        let idle = rooms.idle_rooms(now);
        if idle.is_empty() {
            continue;
        }
        match rooms.persist_and_evict(idle, true).await {
            Ok(0) => {}
            Ok(evicted) => tracing::debug!(evicted, remaining = rooms.len(), "evicted idle rooms"),
            Err(error) => tracing::error!(%error, "could not persist idle rooms; keeping them in memory"),
        }
    }
}
