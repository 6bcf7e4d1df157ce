//! Code executions in the embedded store: records by id, plus a `(session, created_at, id)` index
//! for a session's history, newest first. Finishing a record and counting it in its session is one
//! write transaction, so the count can neither be lost nor taken twice.

use async_trait::async_trait;
use redb::WriteTransaction;

use super::tables::{EXECUTIONS, SESSION_EXECUTIONS, SESSIONS, ScopedRange};
use super::{EmbeddedStore, backend, get_json, saturating_usize, to_json};
use crate::model::{ExecutionCursor, ExecutionRecord, Session};
use crate::records::ExecutionStore;
use crate::{Error, Result};

#[async_trait]
impl ExecutionStore for EmbeddedStore {
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<()> {
        let record = record.clone();
        self.write(move |txn| put(txn, &record).map(drop)).await
    }

    async fn finish_execution(&self, record: &ExecutionRecord) -> Result<()> {
        let record = record.clone();
        self.write(move |txn| {
            let previous = put(txn, &record)?;
            let finished_before = previous.as_ref().is_some_and(ExecutionRecord::is_finished);
            if !finished_before && record.is_finished() {
                count_in_session(txn, &record)?;
            }
            Ok(())
        })
        .await
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        self.record(EXECUTIONS, id).await
    }

    async fn executions(
        &self,
        session_id: &str,
        before: Option<&ExecutionCursor>,
        limit: u64,
    ) -> Result<Vec<ExecutionRecord>> {
        let before = before.map(|cursor| (cursor.created_at, cursor.id.clone()));
        let range = ScopedRange::before_key(session_id, before);
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

/// Stores `record` over any earlier copy, keeping the session index right, and returns the copy it
/// replaced.
fn put(txn: &WriteTransaction, record: &ExecutionRecord) -> Result<Option<ExecutionRecord>> {
    let mut records = txn.open_table(EXECUTIONS).map_err(backend)?;
    let mut index = txn.open_table(SESSION_EXECUTIONS).map_err(backend)?;
    // The overwritten copy may have had another session or creation time: drop its entry.
    let previous = get_json::<ExecutionRecord>(&records, &record.id)?;
    if let Some(old) = &previous {
        index.remove((old.session_id.as_str(), old.created_at, old.id.as_str())).map_err(backend)?;
    }
    index.insert((record.session_id.as_str(), record.created_at, record.id.as_str()), ()).map_err(backend)?;
    records.insert(record.id.as_str(), to_json(record)?.as_slice()).map_err(backend)?;
    Ok(previous)
}

/// One more run in the session's total and mean, when the run has a duration.
fn count_in_session(txn: &WriteTransaction, record: &ExecutionRecord) -> Result<()> {
    let Some(duration_ms) = record.duration_ms else { return Ok(()) };
    let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
    // A run of a free room (no session) or of a session deleted meanwhile counts nowhere.
    let Some(mut session) = get_json::<Session>(&sessions, &record.session_id)? else { return Ok(()) };
    let metadata = &mut session.metadata;
    let runs = metadata.total_executions as f64;
    metadata.average_execution_time =
        (metadata.average_execution_time * runs + duration_ms as f64) / (runs + 1.0);
    metadata.total_executions = metadata.total_executions.saturating_add(1);
    metadata.last_activity = metadata.last_activity.max(record.finished_at.unwrap_or(record.created_at));
    sessions.insert(record.session_id.as_str(), to_json(&session)?.as_slice()).map_err(backend)?;
    Ok(())
}
