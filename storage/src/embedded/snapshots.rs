//! Room snapshots in the embedded store: one value per room, merged in place.

use async_trait::async_trait;
use redb::ReadableTable;

use super::tables::SNAPSHOTS;
use super::{EmbeddedStore, backend};
use crate::Result;
use crate::snapshot::{MergeFn, SnapshotStore, SnapshotWrite};

#[async_trait]
impl SnapshotStore for EmbeddedStore {
    async fn load_snapshot(&self, room: &str) -> Result<Option<Vec<u8>>> {
        let room = room.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(SNAPSHOTS).map_err(backend)?;
            Ok(table.get(room.as_str()).map_err(backend)?.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn merge_snapshots(&self, batch: Vec<SnapshotWrite>, merge: MergeFn) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // One write transaction (one fsync) for the whole batch: the workers hand over many rooms
        // at once under load.
        self.write(move |txn| {
            let mut table = txn.open_table(SNAPSHOTS).map_err(backend)?;
            for write in &batch {
                let merged = match table.get(write.room.as_str()).map_err(backend)? {
                    Some(stored) => merge(stored.value(), &write.update),
                    None => write.update.clone(),
                };
                table.insert(write.room.as_str(), merged.as_slice()).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_snapshot(&self, room: &str) -> Result<bool> {
        let room = room.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(SNAPSHOTS).map_err(backend)?;
            Ok(table.remove(room.as_str()).map_err(backend)?.is_some())
        })
        .await
    }
}
