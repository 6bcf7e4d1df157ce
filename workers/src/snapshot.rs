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
        let writes = one_write_per_room(batch);
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

/// The batch's jobs as one write per room: a room's updates are merged first (yrs's block-level
/// merge, microseconds), so the store decodes and re-encodes each room's snapshot once per batch
/// rather than once per job, which is what bounds a worker's throughput on large documents. If a
/// room's updates cannot be merged that way, they are written one by one, as before.
fn one_write_per_room(batch: &[Attempt<'_, SnapshotJob>]) -> Vec<SnapshotWrite> {
    let mut rooms: Vec<(&str, Vec<&[u8]>)> = Vec::new();
    for attempt in batch {
        let job = &attempt.job;
        match rooms.iter_mut().find(|(room, _)| *room == job.room) {
            Some((_, updates)) => updates.push(&job.update),
            None => rooms.push((&job.room, vec![&job.update])),
        }
    }
    let mut writes = Vec::with_capacity(rooms.len());
    for (room, updates) in rooms {
        let merged = match updates.as_slice() {
            [only] => Ok(only.to_vec()),
            many => crdt::merge_updates(many.iter().copied()),
        };
        match merged {
            Ok(update) => writes.push(SnapshotWrite { room: room.to_owned(), update }),
            Err(error) => {
                tracing::warn!(%error, room, "could not pre-merge a room's updates; writing them one by one");
                writes.extend(
                    updates.into_iter().map(|u| SnapshotWrite { room: room.to_owned(), update: u.to_vec() }),
                );
            }
        }
    }
    writes
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
