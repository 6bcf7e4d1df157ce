//! Code executions in MongoDB: the `executions` collection, `_id` the job id (a string), upserted
//! as the job moves from queued to finished.

use async_trait::async_trait;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};

use super::fields::{self, id_to_bson};
use super::{EXECUTIONS, MongoStore, backend, find_sorted};
use crate::Result;
use crate::model::{ExecutionRecord, Millis};
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

    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        let found = self.executions().find_one(doc! { "_id": id }).await.map_err(backend)?;
        Ok(found.map(Into::into))
    }

    async fn executions(&self, session_id: &str, limit: u64) -> Result<Vec<ExecutionRecord>> {
        let filter = doc! { "sessionId": id_to_bson(session_id) };
        let sort = doc! { "createdAt": -1, "_id": -1 };
        let found = find_sorted(&self.executions(), filter, sort, 0, limit).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }
}
