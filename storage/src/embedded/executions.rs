//! Code executions in the embedded store: records by id, plus a `(session, created_at, id)` index
//! for a session's newest executions.

use async_trait::async_trait;

use super::tables::{EXECUTIONS, SESSION_EXECUTIONS, ScopedRange};
use super::{EmbeddedStore, backend, get_json, saturating_usize, to_json};
use crate::model::ExecutionRecord;
use crate::records::ExecutionStore;
use crate::{Error, Result};

#[async_trait]
impl ExecutionStore for EmbeddedStore {
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<()> {
        let record = record.clone();
        self.write(move |txn| {
            let mut records = txn.open_table(EXECUTIONS).map_err(backend)?;
            let mut index = txn.open_table(SESSION_EXECUTIONS).map_err(backend)?;
            // The overwritten copy may have had another session or creation time: drop its entry.
            if let Some(old) = get_json::<ExecutionRecord>(&records, &record.id)? {
                index.remove((old.session_id.as_str(), old.created_at, old.id.as_str())).map_err(backend)?;
            }
            index
                .insert((record.session_id.as_str(), record.created_at, record.id.as_str()), ())
                .map_err(backend)?;
            records.insert(record.id.as_str(), to_json(&record)?.as_slice()).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        self.record(EXECUTIONS, id).await
    }

    async fn executions(&self, session_id: &str, limit: u64) -> Result<Vec<ExecutionRecord>> {
        let range = ScopedRange::new(session_id, None);
        self.read(move |txn| {
            let index = txn.open_table(SESSION_EXECUTIONS).map_err(backend)?;
            let records = txn.open_table(EXECUTIONS).map_err(backend)?;
            let newest_first = index.range(range.bounds()).map_err(backend)?.rev();
            newest_first
                .take(saturating_usize(limit))
                .map(|entry| {
                    let key = entry.map_err(backend)?.0;
                    let (_, _, id) = key.value();
                    get_json(&records, id)?.ok_or_else(|| {
                        Error::Backend(format!("execution index names a missing execution {id}"))
                    })
                })
                .collect()
        })
        .await
    }
}
