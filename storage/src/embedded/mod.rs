//! The embedded backend: a single redb file under the data directory, so `cargo run` needs nothing
//! else installed and rooms, accounts and sessions survive a restart.
//!
//! Records are JSON (the model's serde form) keyed by id; the lookups the traits need (email,
//! username, a user's sessions, a session's messages and executions, logs by time) are index
//! tables kept in the same write transaction as the records, so they never disagree. The tables are
//! listed in `tables.rs`; each collection's trait lives in its own file.

mod executions;
mod logs;
mod messages;
mod sessions;
mod snapshots;
mod tables;
mod users;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::low_priority::LowPriorityThread;
use crate::records::Store;
use crate::{Error, Result};

/// Page cache used by [`EmbeddedStore::open`].
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// File name of the database inside `--data-dir`.
pub const DATABASE_FILE: &str = "codecrafter.redb";

/// redb is synchronous, so no call runs on the async workers: reads (a room being opened, a page
/// of sessions, which a client waits for) run on tokio's blocking pool; writes run one at a time on
/// a low-priority thread, as redb serialises write transactions anyway. That one writer is also
/// what makes every read-modify-write here (merge, revision check, unique index) atomic.
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
    /// thousands of rooms would grow into). Removes log entries past their retention.
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Backend(format!("create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DATABASE_FILE);
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| Error::Backend(format!("open {}: {e}", path.display())))?;
        // Create every table up front so readers never see "table does not exist".
        let txn = db.begin_write().map_err(backend)?;
        tables::create_all(&txn)?;
        logs::sweep_expired(&txn)?;
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let writer = Arc::new(LowPriorityThread::spawn("store-writer", db.clone())?);
        Ok(Self { db, writer })
    }

    /// Runs `work` in a read transaction on tokio's blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db.begin_read().map_err(backend)?))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// The JSON record stored under `id` in `table`.
    async fn record<T: DeserializeOwned + Send + 'static>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        id: &str,
    ) -> Result<Option<T>> {
        let id = id.to_owned();
        self.read(move |txn| get_json(&txn.open_table(table).map_err(backend)?, &id)).await
    }

    /// Runs `work` in one write transaction on the writer thread and commits it (one fsync) if
    /// `work` succeeds; an error drops the transaction, which rolls it back.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.writer
            .run(move |db| {
                let txn = db.begin_write().map_err(backend)?;
                let out = work(&txn)?;
                txn.commit().map_err(backend)?;
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> Result<()> {
        self.read(|txn| txn.open_table(tables::USERS).map(drop).map_err(backend)).await
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
    }
}

fn backend(e: impl Into<redb::Error>) -> Error {
    Error::Backend(e.into().to_string())
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Backend(format!("encoding a record: {e}")))
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Backend(format!("decoding a stored record: {e}")))
}

/// The record stored under `id` in a table of JSON records.
fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<T>> {
    table.get(id).map_err(backend)?.map(|bytes| from_json(bytes.value())).transpose()
}

/// A count from the traits (`u64`) as an iterator bound.
fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
