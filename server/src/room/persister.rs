//! Debounced persistence: a room's first unsaved change schedules one snapshot job, sent to the
//! job queue at most `debounce` later, whatever happens to the room in between. Every update is
//! already durable through the room's journal (`journal.rs`); this whole-state snapshot is the
//! safety net behind it (a journal batch that could not be merged, a writer given up at
//! shutdown) and counts the session's edits in its metadata.

use std::sync::Arc;
use std::time::Duration;

use protocol::job::{Job, SnapshotJob};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use workers::JobQueue;

use super::Room;
use crate::clock::unix_ms;
use crate::telemetry::Metrics;

/// Where the persister counts a session's edits (its metadata); the session directory in the
/// server. A trait so the room layer needs nothing of the layer above it.
#[async_trait::async_trait]
pub trait ActivityLog: Send + Sync + 'static {
    /// Count `edits` more edits of session `id` at `at_ms`. Informative only: failures are the
    /// implementation's to log.
    async fn record_activity(&self, id: &str, edits: u64, at_ms: i64);
}

/// Rooms arrive in the order they became dirty, so their deadlines are in order too and a FIFO
/// with one sleep per entry is enough.
pub async fn run(
    mut dirty: mpsc::UnboundedReceiver<Arc<Room>>,
    queue: Arc<dyn JobQueue>,
    activity: Arc<dyn ActivityLog>,
    debounce: Duration,
    cancel: CancellationToken,
) {
    loop {
        let room = tokio::select! {
            room = dirty.recv() => match room { Some(room) => room, None => return },
            () = cancel.cancelled() => return,
        };
        let deadline = room.dirty_since_ms() + debounce.as_millis() as u64;
        let wait = Duration::from_millis(deadline.saturating_sub(unix_ms()));
        // Only sleep when the deadline is ahead: even a zero sleep waits for the next timer tick
        // (1 ms), which would make a backlog of 10,000 due rooms take 10 s to drain.
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // Shutdown persists every room directly; this one included.
                () = cancel.cancelled() => return,
            }
        }
        // None when eviction or shutdown already wrote it.
        let Some(job) = room.take_snapshot() else { continue };
        let (changes, dirty_since_ms) = (job.changes, job.dirty_since_ms);
        // The room's journal already made each of these updates durable and counted it
        // (`codecrafter_persist_updates_total`); this whole-state snapshot adds none.
        let job = SnapshotJob { changes: 0, ..job };
        if let Err(error) = queue.publish(Job::Snapshot(job)).await {
            Metrics::get().persist_errors.increment(1);
            tracing::error!(room = room.id(), %error, "could not queue snapshot; will retry");
            room.restore_dirty(changes, dirty_since_ms);
            tokio::time::sleep(debounce).await;
            continue;
        }
        // A session's metadata counts its edits (free rooms have no session record). Off the
        // loop: a slow store must not hold back the next room's snapshot.
        if changes > 0 && storage::model::is_id(room.id()) {
            let activity = activity.clone();
            let id = room.id().to_owned();
            tokio::spawn(async move {
                activity.record_activity(&id, changes, unix_ms() as i64).await;
            });
        }
    }
}
