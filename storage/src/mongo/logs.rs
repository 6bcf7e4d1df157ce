//! Activity logs in MongoDB: the `logs` collection, shaped like the seeds' log model. The TTL
//! index on `timestamp` (a BSON date) removes entries after
//! [`LOG_RETENTION`](crate::model::LOG_RETENTION); the other three indexes serve the filters.

use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};

use super::fields::{self, id_to_bson};
use super::{LOGS, MongoStore, backend, find_sorted};
use crate::model::{LogEntry, LogLevel, Millis};
use crate::records::{LogFilter, LogStore};
use crate::{Error, Result};

/// The document form of a [`LogEntry`] (remote derive: the compiler checks the fields match).
#[derive(Serialize, Deserialize)]
#[serde(remote = "LogEntry", rename_all = "camelCase")]
struct LogDocument {
    #[serde(rename = "_id", with = "fields::id")]
    id: String,
    #[serde(default)]
    level: LogLevel,
    message: String,
    #[serde(default)]
    action: String,
    #[serde(default, with = "fields::optional_id")]
    user_id: Option<String>,
    #[serde(default, with = "fields::optional_id")]
    session_id: Option<String>,
    #[serde(with = "fields::time")]
    timestamp: Millis,
    #[serde(default)]
    metadata: serde_json::Value,
}

stored_in_collection!(logs, LOGS, LogEntry, "LogDocument");

fn filter_document(filter: &LogFilter) -> Result<Document> {
    let mut document = Document::new();
    if let Some(level) = filter.level {
        // The level's stored form is its serde name ("error"), as in the seeds.
        let level =
            mongodb::bson::to_bson(&level).map_err(|e| Error::Backend(format!("encoding a level: {e}")))?;
        document.insert("level", level);
    }
    if let Some(user) = &filter.user_id {
        document.insert("userId", id_to_bson(user));
    }
    if let Some(session) = &filter.session_id {
        document.insert("sessionId", id_to_bson(session));
    }
    Ok(document)
}

#[async_trait]
impl LogStore for MongoStore {
    async fn append_log(&self, entry: &LogEntry) -> Result<()> {
        self.logs().insert_one(Stored(entry.clone())).await.map(drop).map_err(backend)
    }

    async fn logs(&self, filter: &LogFilter, limit: u64) -> Result<Vec<LogEntry>> {
        let sort = doc! { "timestamp": -1, "_id": -1 };
        let found = find_sorted(&self.logs(), filter_document(filter)?, sort, 0, limit).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }
}
