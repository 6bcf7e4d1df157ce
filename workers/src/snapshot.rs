//! The snapshot handler: CRDT-merges a room's state into its stored snapshot, never overwriting, so
//! snapshots from several nodes (or a stale one) cannot lose each other's edits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use protocol::job::SnapshotJob;
use storage::clock::unix_ms;
use storage::{SnapshotStore, SnapshotWrite};

use crate::handler::{Attempt, Handled, JobHandler, Transient};
use crate::metrics::Metrics;

pub struct SnapshotHandler {
    store: Arc<dyn SnapshotStore>,
}

impl SnapshotHandler {
    pub fn new(store: Arc<dyn SnapshotStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl JobHandler for SnapshotHandler {
    type Job = SnapshotJob;

    /// Writes every snapshot of the batch in one store call. A store failure is transient, however
    /// long it lasts: a snapshot is never dead-lettered for an outage.
    async fn handle(&self, batch: &[Attempt<'_, SnapshotJob>]) -> Result<Handled, Transient> {
        let writes: Vec<SnapshotWrite> = batch
            .iter()
            .map(|attempt| SnapshotWrite {
                room: attempt.job.room.clone(),
                update: attempt.job.update.clone(),
            })
            .collect();
        self.store.merge_snapshots(writes, merge).await.map_err(Transient::new)?;
        let now = unix_ms();
        let metrics = Metrics::get();
        for attempt in batch {
            metrics.persist_writes.increment(1);
            metrics.persist_updates.increment(attempt.job.changes);
            let lag = Duration::from_millis(now.saturating_sub(attempt.job.dirty_since_ms));
            metrics.persist_lag.record(lag.as_secs_f64());
        }
        Ok(Handled::all())
    }
}

/// The [`storage::MergeFn`] the workers use. If the merge fails, the stored side is kept, or the
/// incoming one if the stored one is what cannot be decoded and the incoming one is a whole state,
/// so a corrupt stored snapshot cannot block a room's persistence forever; the event is logged and
/// counted because it means data was damaged before it reached us.
///
/// A panic inside yrs counts as a failed merge too: it runs on the store's writer, which every
/// room's persistence shares, so it must never unwind out of here.
pub fn merge(stored: &[u8], incoming: &[u8]) -> Vec<u8> {
    match contained_merge(stored, incoming) {
        Ok(merged) => merged,
        Err(error) => {
            Metrics::get().merge_errors.increment(1);
            // The stored state is kept unless it is the broken side AND the incoming one stands
            // alone (a room's whole state): an incoming job may be one increment of many (a
            // room's journal), and replacing a snapshot with it would drop everything else.
            let keep_incoming = contained_merge(stored, &[]).is_err() && crdt::is_self_contained(incoming);
            tracing::error!(%error, keep = if keep_incoming { "incoming" } else { "stored" }, "snapshot merge failed");
            if keep_incoming { incoming.to_vec() } else { stored.to_vec() }
        }
    }
}

fn contained_merge(stored: &[u8], incoming: &[u8]) -> Result<Vec<u8>, crdt::Error> {
    std::panic::catch_unwind(|| crdt::merge_snapshots(stored, incoming))
        .unwrap_or_else(|_| Err(crdt::Error::Poisoned("yrs panicked while merging snapshots".into())))
}
