//! The snapshot store: one CRDT snapshot (a Yjs v1 update) per room.

use async_trait::async_trait;

use crate::Result;

/// Combines the stored snapshot with an incoming one. Supplied by the caller (the workers use a CRDT
/// merge) so that storage needs no CRDT code and a write never overwrites another node's edits.
/// It must not fail: a merge that cannot decode one side keeps the side it can read, and says so in
/// its own logs.
pub type MergeFn = fn(stored: &[u8], incoming: &[u8]) -> Vec<u8>;

/// One snapshot to merge into a room's stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotWrite {
    pub room: String,
    pub update: Vec<u8>,
}

#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// The stored snapshot of `room`, if any.
    async fn load_snapshot(&self, room: &str) -> Result<Option<Vec<u8>>>;

    /// Merge every write into its room's stored snapshot (read, `merge`, write, atomically per
    /// room) and return only once all of them are durable. A room with no snapshot stores the
    /// incoming bytes as they are. Writes for the same room in one batch are merged in order.
    async fn merge_snapshots(&self, batch: Vec<SnapshotWrite>, merge: MergeFn) -> Result<()>;

    /// Remove a room's snapshot; true if there was one.
    async fn delete_snapshot(&self, room: &str) -> Result<bool>;
}
