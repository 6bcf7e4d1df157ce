//! Rooms that failed (see [`super::Room::fail`]): each is dropped from memory without being
//! persisted, so storage keeps its last good snapshot, and reloaded from it at once, so its
//! clients find it again when they reconnect. A room whose reload fails (its snapshot cannot be
//! read, or storage is away) stays quarantined and is tried again with backoff; meanwhile `/ready`
//! reports `degraded` and joins to it are refused with 1011.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Room, Rooms};

/// First wait before trying a failed reload again; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(60);

pub async fn run(
    mut failures: mpsc::UnboundedReceiver<Arc<Room>>,
    rooms: Arc<Rooms>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    loop {
        let room = tokio::select! {
            room = failures.recv() => match room { Some(room) => room, None => return },
            () = cancel.cancelled() => return,
        };
        if rooms.quarantine(&room) {
            let id = room.id().to_owned();
            tracker.spawn(reload(rooms.clone(), id, cancel.clone()));
        }
    }
}

/// Open the room afresh from storage (a join that leaves at once); the join ends the quarantine.
async fn reload(rooms: Arc<Rooms>, id: String, cancel: CancellationToken) {
    let mut wait = FIRST_RETRY;
    loop {
        match rooms.join(&id).await {
            Ok(lease) => {
                drop(lease);
                return;
            }
            Err(error) => {
                tracing::error!(room = id, %error, retry_in = ?wait, "could not reload a failed room")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return,
        }
        wait = (wait * 2).min(MAX_RETRY);
    }
}
