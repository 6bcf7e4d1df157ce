//! Every room held in memory, keyed by id: opening (loading the stored snapshot once, however many
//! clients join at the same moment), leases for connected clients, and persist-then-evict.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dashmap::DashMap;
use relay::Relay;
use storage::{SnapshotStore, SnapshotWrite};
use tokio::sync::mpsc;
use workers::JobQueue;

use super::Room;
use crate::clock::unix_ms;
use crate::telemetry::Metrics;

#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub limits: crdt::Limits,
    pub awareness_limits: crdt::AwarenessLimits,
    pub awareness_timeout_ms: u64,
    /// How long a room with no clients stays in memory.
    pub idle: Duration,
    /// Before loading a room from the store, wait for the queue's barrier on it: with a broker,
    /// updates acknowledged by any node may still be on their way to the store.
    pub barrier_before_load: bool,
    /// Split a round's writes into parts of at least this many clients, written by several
    /// worker threads at once; 0 writes every round on one thread.
    pub fanout_split_peers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("storage unavailable: {0}")]
    Storage(#[from] storage::Error),
    #[error("stored snapshot of this room is unreadable: {0}")]
    CorruptSnapshot(#[from] crdt::Error),
    #[error("the job queue could not confirm the room's queued updates are stored: {0}")]
    Queue(#[from] workers::QueueError),
}

pub struct Rooms {
    map: DashMap<Arc<str>, Arc<Room>>,
    store: Arc<dyn SnapshotStore>,
    persist_tx: mpsc::UnboundedSender<Arc<Room>>,
    failures_tx: mpsc::UnboundedSender<Arc<Room>>,
    /// Rooms that failed and have not been reloaded yet (see `quarantine.rs`), with when.
    quarantined: DashMap<Arc<str>, u64>,
    settings: RoomSettings,
    relay: Arc<dyn Relay>,
    /// Where every room's journal makes its updates durable.
    queue: Arc<dyn JobQueue>,
}

/// A connected client's hold on a room: while any lease exists the room is not evicted.
pub struct RoomLease {
    room: Arc<Room>,
}

impl std::ops::Deref for RoomLease {
    type Target = Arc<Room>;
    fn deref(&self) -> &Arc<Room> {
        &self.room
    }
}

impl Drop for RoomLease {
    fn drop(&mut self) {
        if self.room.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.room.idle_since_ms.store(unix_ms(), Ordering::Release);
        }
    }
}

impl Rooms {
    /// The registry, and the receiver of rooms that failed, for [`super::quarantine::run`].
    pub fn new(
        store: Arc<dyn SnapshotStore>,
        settings: RoomSettings,
        persist_tx: mpsc::UnboundedSender<Arc<Room>>,
        relay: Arc<dyn Relay>,
        queue: Arc<dyn JobQueue>,
    ) -> (Self, mpsc::UnboundedReceiver<Arc<Room>>) {
        let (failures_tx, failures) = mpsc::unbounded_channel();
        let quarantined = DashMap::new();
        let rooms =
            Self { map: DashMap::new(), store, persist_tx, failures_tx, quarantined, settings, relay, queue };
        (rooms, failures)
    }

    /// How many rooms failed and are not reloaded yet.
    pub fn quarantined(&self) -> usize {
        self.quarantined.len()
    }

    /// Drop a room that failed from memory, unpersisted, and mark it quarantined until a join
    /// reloads it. Returns whether it was still the room held under its id.
    pub(super) fn quarantine(&self, room: &Arc<Room>) -> bool {
        self.quarantined.insert(Arc::from(room.id()), unix_ms());
        Metrics::get().rooms_quarantined.set(self.quarantined.len() as f64);
        let removed = self.map.remove_if(room.id(), |_, current| Arc::ptr_eq(current, room)).is_some();
        if removed {
            if room.loaded.initialized() {
                self.relay.unsubscribe(room.id());
            }
            Metrics::get().rooms.decrement(1.0);
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Room>> {
        self.map.get(id).map(|room| room.clone())
    }

    /// Take a lease on room `id`, creating it and loading its snapshot if it is not in memory.
    pub async fn join(&self, id: &str) -> Result<RoomLease, OpenError> {
        let room = {
            // The count goes up under the map's shard lock, so eviction (which checks it under the
            // same lock) can never remove a room that a client is joining.
            let entry = self.map.entry(Arc::from(id)).or_insert_with(|| {
                Metrics::get().rooms.increment(1.0);
                Arc::new(Room::new(
                    Arc::from(id),
                    &self.settings,
                    self.persist_tx.clone(),
                    self.failures_tx.clone(),
                    self.relay.clone(),
                    self.queue.clone(),
                ))
            });
            entry.connections.fetch_add(1, Ordering::AcqRel);
            entry.clone()
        };
        let lease = RoomLease { room };
        lease
            .loaded
            .get_or_try_init(|| async {
                if self.settings.barrier_before_load {
                    self.queue.barrier(id).await?;
                }
                let snapshot = self.store.load_snapshot(id).await?;
                lease.load(snapshot.as_deref(), &self.settings)?;
                // Snapshot first, then subscribe, then ask the other nodes for what the snapshot
                // lacks: an update made anywhere in between arrives one way or the other.
                self.relay.subscribe(id);
                lease.ask_peers(true);
                Ok::<_, OpenError>(())
            })
            .await?;
        if !self.quarantined.is_empty() && self.quarantined.remove(id).is_some() {
            tracing::info!(room = id, "failed room reloaded from storage");
            Metrics::get().rooms_quarantined.set(self.quarantined.len() as f64);
        }
        Ok(lease)
    }

    /// Forget room `id` for good (its session was deleted): it is dropped from memory and never
    /// persisted again, whatever its clients do before they are closed.
    pub fn discard(&self, id: &str) {
        if let Some((_, room)) = self.map.remove(id) {
            room.discarded.store(true, Ordering::Release);
            if room.loaded.initialized() {
                self.relay.unsubscribe(room.id());
            }
            Metrics::get().rooms.decrement(1.0);
        }
    }

    /// Every room, for periodic work.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.map.iter().map(|entry| entry.value().clone()).collect()
    }

    /// Rooms with no clients for longer than the idle setting.
    pub fn idle_rooms(&self, now_ms: u64) -> Vec<Arc<Room>> {
        let idle_ms = self.settings.idle.as_millis() as u64;
        self.map
            .iter()
            .filter(|entry| {
                let room = entry.value();
                room.connections() == 0
                    && now_ms.saturating_sub(room.idle_since_ms.load(Ordering::Acquire)) >= idle_ms
            })
            .map(|entry| entry.value().clone())
            .collect()
    }

    /// Write the snapshots of `rooms` straight to the store in one durable batch (bypassing the
    /// queue, so a room evicted now and reopened a moment later loads everything), then drop from
    /// memory those still without clients and unchanged. Returns how many were evicted.
    pub async fn persist_and_evict(
        &self,
        rooms: Vec<Arc<Room>>,
        evict: bool,
    ) -> Result<usize, storage::Error> {
        self.persist_direct(&rooms).await?;
        if !evict {
            return Ok(0);
        }
        let mut evicted = 0;
        for room in rooms {
            let removed = self.map.remove_if(room.id(), |_, current| {
                Arc::ptr_eq(current, &room) && current.connections() == 0 && !current.is_dirty()
            });
            if removed.is_some() {
                if room.loaded.initialized() {
                    self.relay.unsubscribe(room.id());
                }
                evicted += 1;
                Metrics::get().rooms.decrement(1.0);
                Metrics::get().evictions.increment(1);
            }
        }
        Ok(evicted)
    }

    async fn persist_direct(&self, rooms: &[Arc<Room>]) -> Result<(), storage::Error> {
        // What to put back if the write fails; the snapshots themselves move into the batch.
        let mut taken = Vec::new();
        let mut writes = Vec::new();
        for room in rooms {
            if let Some(job) = room.take_snapshot() {
                taken.push((room, job.changes, job.dirty_since_ms));
                writes.push(SnapshotWrite { room: job.room, update: job.update });
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.store.merge_snapshots(writes, workers::snapshot::merge).await {
            Metrics::get().persist_errors.increment(1);
            for (room, changes, dirty_since_ms) in taken {
                room.restore_dirty(changes, dirty_since_ms);
            }
            return Err(error);
        }
        Ok(())
    }
}
