//! Activity logs in the embedded store, keyed `(timestamp, id)`, kept for
//! [`LOG_RETENTION`](crate::model::LOG_RETENTION).
//!
//! Retention is a sweep of the front of the table (the oldest entries): once when the database is
//! opened, and on every append, which costs one look at the first key when nothing has expired.
//! So the first append after an entry expires removes it, and a server that only restarts still
//! drops what expired while it was down.

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};

use super::tables::LOGS;
use super::{EmbeddedStore, backend, from_json, saturating_usize, to_json};
use crate::Result;
use crate::model::{LOG_RETENTION, LogEntry, Millis};
use crate::records::{LogFilter, LogStore};

#[async_trait]
impl LogStore for EmbeddedStore {
    async fn append_log(&self, entry: &LogEntry) -> Result<()> {
        let entry = entry.clone();
        self.write(move |txn| {
            let key = (entry.timestamp, entry.id.as_str());
            txn.open_table(LOGS)
                .map_err(backend)?
                .insert(key, to_json(&entry)?.as_slice())
                .map_err(backend)?;
            sweep_expired(txn)
        })
        .await
    }

    async fn logs(&self, filter: &LogFilter, limit: u64) -> Result<Vec<LogEntry>> {
        let filter = filter.clone();
        self.read(move |txn| {
            let table = txn.open_table(LOGS).map_err(backend)?;
            let mut found = Vec::new();
            // A scan from the newest entry back: the logs are an admin's view, bounded by the
            // retention, so no per-field index tables (MongoDB has indexes for them).
            for entry in table.iter().map_err(backend)?.rev() {
                if found.len() >= saturating_usize(limit) {
                    break;
                }
                let entry: LogEntry = from_json(entry.map_err(backend)?.1.value())?;
                if matches(&filter, &entry) {
                    found.push(entry);
                }
            }
            Ok(found)
        })
        .await
    }
}

fn matches(filter: &LogFilter, entry: &LogEntry) -> bool {
    filter.level.is_none_or(|level| entry.level == level)
        && filter.user_id.as_ref().is_none_or(|user| entry.user_id.as_ref() == Some(user))
        && filter.session_id.as_ref().is_none_or(|session| entry.session_id.as_ref() == Some(session))
}

/// Removes every entry older than the retention. Cheap when none is: one look at the first key.
pub(super) fn sweep_expired(txn: &WriteTransaction) -> Result<()> {
    let cutoff = crate::clock::now_millis()
        .saturating_sub(Millis::try_from(LOG_RETENTION.as_millis()).unwrap_or(Millis::MAX));
    let mut table = txn.open_table(LOGS).map_err(backend)?;
    let oldest = table.first().map_err(backend)?.map(|(key, _)| key.value().0);
    if oldest.is_some_and(|oldest| oldest < cutoff) {
        // "" is the smallest id, so this is every key with a timestamp before the cutoff.
        table.retain_in(..(cutoff, ""), |_, _| false).map_err(backend)?;
    }
    Ok(())
}
