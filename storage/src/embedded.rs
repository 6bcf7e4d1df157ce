//! The embedded backend: a single redb file under the data directory, so `cargo run` needs nothing
//! else installed and rooms survive a restart.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::low_priority::LowPriorityThread;
use crate::snapshot::{MergeFn, SnapshotStore, SnapshotWrite};
use crate::{Error, Result};

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");

/// Page cache used by [`EmbeddedStore::open`].
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// File name of the database inside `--data-dir`.
pub const DATABASE_FILE: &str = "codecrafter.redb";

/// redb is synchronous, so no call runs on the async workers: reads (a room being opened, which a
/// client waits for) run on tokio's blocking pool; writes (background persistence) run one at a
/// time on a low-priority thread, as redb serialises write transactions anyway.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<LowPriorityThread<Arc<Database>>>,
}

impl EmbeddedStore {
    /// Open (or create) the database in `data_dir` with the default page cache.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_BYTES)
    }

    /// Open (or create) the database in `data_dir`, creating the directory if needed, with a page
    /// cache of at most `cache_bytes` (redb's own default is 1 GiB, which a server holding
    /// thousands of rooms would grow into).
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Backend(format!("create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DATABASE_FILE);
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| Error::Backend(format!("open {}: {e}", path.display())))?;
        // Create the table up front so readers never see "table does not exist".
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(SNAPSHOTS).map_err(backend)?;
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let writer = Arc::new(LowPriorityThread::spawn("store-writer", db.clone())?);
        Ok(Self { db, writer })
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db)).await.map_err(|e| Error::Task(e.to_string()))?
    }
}

fn backend(e: impl Into<redb::Error>) -> Error {
    Error::Backend(e.into().to_string())
}

#[async_trait]
impl SnapshotStore for EmbeddedStore {
    async fn load_snapshot(&self, room: &str) -> Result<Option<Vec<u8>>> {
        let room = room.to_owned();
        self.read(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(SNAPSHOTS).map_err(backend)?;
            Ok(table.get(room.as_str()).map_err(backend)?.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn merge_snapshots(&self, batch: Vec<SnapshotWrite>, merge: MergeFn) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.writer
            .run(move |db| {
                // One write transaction (one fsync) for the whole batch: the workers hand over many
                // rooms at once under load.
                let txn = db.begin_write().map_err(backend)?;
                {
                    let mut table = txn.open_table(SNAPSHOTS).map_err(backend)?;
                    for write in &batch {
                        let merged = match table.get(write.room.as_str()).map_err(backend)? {
                            Some(stored) => merge(stored.value(), &write.update),
                            None => write.update.clone(),
                        };
                        table.insert(write.room.as_str(), merged.as_slice()).map_err(backend)?;
                    }
                }
                txn.commit().map_err(backend)
            })
            .await
    }

    async fn delete_snapshot(&self, room: &str) -> Result<bool> {
        let room = room.to_owned();
        self.writer
            .run(move |db| {
                let txn = db.begin_write().map_err(backend)?;
                let existed = {
                    let mut table = txn.open_table(SNAPSHOTS).map_err(backend)?;
                    table.remove(room.as_str()).map_err(backend)?.is_some()
                };
                txn.commit().map_err(backend)?;
                Ok(existed)
            })
            .await
    }
}
