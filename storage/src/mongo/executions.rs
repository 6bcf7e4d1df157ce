//! Code executions in MongoDB: the `executions` collection, `_id` the job id (a string), upserted
//! as the job moves from queued to finished, read newest first through
//! `executions_sessionId_createdAt`; a finish counts in its session once (`finish_execution`).

use async_trait::async_trait;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};

use super::fields::{self, date, id_to_bson};
use super::{EXECUTIONS, MongoStore, SESSIONS, backend, find_sorted, is_duplicate_key};
use crate::Result;
use crate::model::{EXECUTION_FINAL_STATUSES, ExecutionCursor, ExecutionRecord, Millis};
use crate::records::ExecutionStore;

/// The document form of an [`ExecutionRecord`] (remote derive: the compiler checks the fields).
#[derive(Serialize, Deserialize)]
#[serde(remote = "ExecutionRecord", rename_all = "camelCase")]
struct ExecutionDocument {
    #[serde(rename = "_id")]
    id: String,
    #[serde(with = "fields::id")]
    session_id: String,
    #[serde(with = "fields::id")]
    user_id: String,
    language: String,
    code: String,
    status: String,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    timed_out: bool,
    #[serde(default)]
    oom_killed: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    duration_ms: Option<u64>,
    #[serde(with = "fields::time")]
    created_at: Millis,
    #[serde(default, with = "fields::optional_time")]
    started_at: Option<Millis>,
    #[serde(default, with = "fields::optional_time")]
    finished_at: Option<Millis>,
}

stored_in_collection!(executions, EXECUTIONS, ExecutionRecord, "ExecutionDocument");

#[async_trait]
impl ExecutionStore for MongoStore {
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<()> {
        let filter = doc! { "_id": &record.id };
        self.executions()
            .replace_one(filter, Stored(record.clone()))
            .upsert(true)
            .await
            .map(drop)
            .map_err(backend)
    }

    /// Atomicity: the record's write is one conditional upsert on its document (replace it only
    /// while its stored status is not final), so exactly one of any number of racing or repeated
    /// finishes is the one that made it final, and only that one counts. The count is a second
    /// write, on the session: a crash between the two leaves the run uncounted (its redelivery
    /// finds the record final), so the total may undercount by one, never count twice.
    async fn finish_execution(&self, record: &ExecutionRecord) -> Result<()> {
        let not_final = doc! { "_id": &record.id, "status": { "$nin": EXECUTION_FINAL_STATUSES.to_vec() } };
        let first_finish =
            match self.executions().replace_one(not_final, Stored(record.clone())).upsert(true).await {
                Ok(_) => true,
                // No unfinished copy matched, so the upsert tried to insert a second `_id`: the
                // stored copy is final already. Overwrite it, counting nothing.
                Err(error) if is_duplicate_key(&error) => false,
                Err(error) => return Err(backend(error)),
            };
        if !first_finish {
            return self.save_execution(record).await;
        }
        let Some(duration_ms) = record.duration_ms.filter(|_| record.is_finished()) else { return Ok(()) };
        self.count_in_session(record, duration_ms).await
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        let found = self.executions().find_one(doc! { "_id": id }).await.map_err(backend)?;
        Ok(found.map(Into::into))
    }

    async fn executions(
        &self,
        session_id: &str,
        before: Option<&ExecutionCursor>,
        limit: u64,
    ) -> Result<Vec<ExecutionRecord>> {
        let mut filter = doc! { "sessionId": id_to_bson(session_id) };
        if let Some(ExecutionCursor { created_at, id }) = before {
            // Strictly older in (createdAt, _id) order, the order of the sort below.
            filter.insert(
                "$or",
                vec![
                    doc! { "createdAt": { "$lt": date(*created_at) } },
                    doc! { "createdAt": date(*created_at), "_id": { "$lt": id.as_str() } },
                ],
            );
        }
        let sort = doc! { "createdAt": -1, "_id": -1 };
        let found = find_sorted(&self.executions(), filter, sort, 0, limit).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }
}

impl MongoStore {
    /// One more run in its session's total and running mean, in one update of the session (a
    /// pipeline update: every expression of the stage reads the values from before it).
    async fn count_in_session(&self, record: &ExecutionRecord, duration_ms: u64) -> Result<()> {
        let runs = doc! { "$ifNull": ["$metadata.totalExecutions", 0_i64] };
        let mean = doc! { "$ifNull": ["$metadata.averageExecutionTime", 0.0] };
        let finished_at = date(record.finished_at.unwrap_or(record.created_at));
        let stage = doc! { "$set": {
            "metadata.averageExecutionTime": { "$divide": [
                { "$add": [{ "$multiply": [mean, runs.clone()] }, duration_ms as f64] },
                { "$add": [runs.clone(), 1_i64] },
            ] },
            "metadata.totalExecutions": { "$add": [runs, 1_i64] },
            "metadata.lastActivity": { "$max": [
                { "$ifNull": ["$metadata.lastActivity", finished_at.clone()] },
                finished_at,
            ] },
        } };
        let sessions = self.db.collection::<mongodb::bson::Document>(SESSIONS);
        // No such session (a free room, or deleted meanwhile): nothing matches, nothing counts.
        sessions
            .update_one(doc! { "_id": id_to_bson(&record.session_id) }, vec![stage])
            .await
            .map(drop)
            .map_err(backend)
    }
}
