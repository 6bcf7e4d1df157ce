//! The snapshot worker: CRDT-merges a room's state into its stored snapshot, never overwriting, so
//! snapshots from several nodes (or a stale one) cannot lose each other's edits.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::job::Job;
use storage::{SnapshotStore, SnapshotWrite};

pub struct SnapshotWorker {
    store: Arc<dyn SnapshotStore>,
}

impl SnapshotWorker {
    pub fn new(store: Arc<dyn SnapshotStore>) -> Self {
        Self { store }
    }

    /// Write every snapshot job of the batch in one store call.
    pub async fn handle(&self, jobs: &[Job]) -> storage::Result<()> {
        let writes: Vec<SnapshotWrite> = jobs
            .iter()
            .map(|job| match job {
                Job::Snapshot(s) => SnapshotWrite { room: s.room.clone(), update: s.update.clone() },
            })
            .collect();
        self.store.merge_snapshots(writes, merge).await?;
        let now = unix_ms();
        for Job::Snapshot(s) in jobs {
            metrics::counter!("codecrafter_persist_writes_total").increment(1);
            let lag = Duration::from_millis(now.saturating_sub(s.dirty_since_ms));
            metrics::histogram!("codecrafter_persist_lag_seconds").record(lag.as_secs_f64());
        }
        Ok(())
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The [`storage::MergeFn`] the workers use. If one side cannot be decoded the other is kept, so
/// a corrupt stored snapshot cannot block a room's persistence forever; the event is logged and
/// counted because it means data was damaged before it reached us.
pub fn merge(stored: &[u8], incoming: &[u8]) -> Vec<u8> {
    match crdt::merge_snapshots(stored, incoming) {
        Ok(merged) => merged,
        Err(error) => {
            metrics::counter!("codecrafter_persist_errors_total", "kind" => "merge").increment(1);
            let incoming_ok = crdt::merge_snapshots(&[], incoming).is_ok();
            tracing::error!(%error, keep = if incoming_ok { "incoming" } else { "stored" }, "snapshot merge failed");
            if incoming_ok { incoming.to_vec() } else { stored.to_vec() }
        }
    }
}
