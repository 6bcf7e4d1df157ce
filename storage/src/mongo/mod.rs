//! The MongoDB backend, for running several server and worker processes on one database.
//!
//! Documents follow the seeds' models (camelCase fields, `password` for the hash, ObjectId ids and
//! references, BSON dates), so the users mongo-init.js seeds and documents from the seeds' Node
//! code read back; each collection's mapping and trait live in its own file. Uniqueness is the
//! unique indexes' job (`indexes.rs`); snapshots larger than one document can hold are split into
//! chunks and swapped in atomically per room (`snapshots.rs`).

/// Declares `Stored`, a record in its document form (serialized through the remote-derived
/// mapping `$document`), and `MongoStore::$accessor`, its collection typed with it.
macro_rules! stored_in_collection {
    ($accessor:ident, $collection:expr, $record:ty, $document:literal) => {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Stored(#[serde(with = $document)] $record);

        impl From<Stored> for $record {
            fn from(Stored(record): Stored) -> Self {
                record
            }
        }

        impl MongoStore {
            fn $accessor(&self) -> mongodb::Collection<Stored> {
                self.db.collection($collection)
            }
        }
    };
}

mod executions;
mod fields;
mod indexes;
mod logs;
mod messages;
mod sessions;
mod snapshots;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

pub use indexes::{IndexSpec, mongo_index_plan};

use crate::low_priority::LowPriorityThread;
use crate::records::Store;
use crate::{Error, Result};

const USERS: &str = "users";
const SESSIONS: &str = "sessions";
const LOGS: &str = "logs";
/// One head document per room: which generation of chunks is the current snapshot.
const SNAPSHOTS: &str = "snapshots";
const SNAPSHOT_CHUNKS: &str = "snapshot_chunks";
const MESSAGES: &str = "messages";
const EXECUTIONS: &str = "executions";

/// Every collection the store uses, in the order they are created.
fn collection_names() -> [&'static str; 7] {
    [USERS, SESSIONS, LOGS, SNAPSHOTS, SNAPSHOT_CHUNKS, MESSAGES, EXECUTIONS]
}

/// Where the MongoDB store connects, and how it cuts snapshots.
#[derive(Clone)]
pub struct MongoConfig {
    /// A MongoDB connection string; its options (write concern, timeouts, TLS) apply as given.
    pub url: String,
    pub database: String,
    /// The largest piece of a snapshot kept in one document. A BSON document holds at most 16 MiB,
    /// so this stays below that with room for the chunk's other fields.
    pub snapshot_chunk_bytes: usize,
}

impl MongoConfig {
    /// 15 MiB: one document per snapshot up to that size, leaving 1 MiB of the 16 MiB BSON limit
    /// for the chunk's other fields.
    pub const DEFAULT_SNAPSHOT_CHUNK_BYTES: usize = 15 * 1024 * 1024;

    /// The largest chunk a document can carry with its other fields.
    pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;

    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            snapshot_chunk_bytes: Self::DEFAULT_SNAPSHOT_CHUNK_BYTES,
        }
    }
}

/// Leaves the password out of the URL: configs end up in logs.
impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &redacted(&self.url))
            .field("database", &self.database)
            .field("snapshot_chunk_bytes", &self.snapshot_chunk_bytes)
            .finish()
    }
}

/// `url` with any `user:password@` replaced by `***@`.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The MongoDB store. Cheap to clone: clones share the client's connection pool.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    snapshot_chunk_bytes: usize,
    /// Runs snapshot merges (CPU work: a CRDT merge of a whole document) at low priority, off the
    /// async workers, as the embedded store does.
    merger: Arc<LowPriorityThread<()>>,
}

impl MongoStore {
    /// Connects, checks the server answers, and creates the collections and indexes that are
    /// missing (idempotent; the server calls this at startup).
    pub async fn connect(config: MongoConfig) -> Result<Self> {
        if !(1..=MongoConfig::MAX_SNAPSHOT_CHUNK_BYTES).contains(&config.snapshot_chunk_bytes) {
            return Err(Error::Backend(format!(
                "snapshot_chunk_bytes must be between 1 and {}, not {}",
                MongoConfig::MAX_SNAPSHOT_CHUNK_BYTES,
                config.snapshot_chunk_bytes
            )));
        }
        let context = format!("MongoDB at {} (database {})", redacted(&config.url), config.database);
        let mut options = ClientOptions::parse(&config.url).await.map_err(backend_context(&context))?;
        options.app_name.get_or_insert_with(|| "codecrafter".to_owned());
        let client = Client::with_options(options).map_err(backend_context(&context))?;
        let db = client.database(&config.database);
        db.run_command(doc! { "ping": 1 }).await.map_err(backend_context(&context))?;
        indexes::ensure_indexes(&db).await?;
        let merger = Arc::new(LowPriorityThread::spawn("mongo-merger", ())?);
        Ok(Self { db, snapshot_chunk_bytes: config.snapshot_chunk_bytes, merger })
    }

    /// The database this store uses (tests drop it at the end).
    pub fn database(&self) -> &Database {
        &self.db
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map(drop).map_err(backend)
    }

    fn backend_name(&self) -> &'static str {
        "mongodb"
    }
}

fn backend(error: mongodb::error::Error) -> Error {
    Error::Backend(error.to_string())
}

/// Like [`backend`], saying what was being done.
fn backend_context(context: &str) -> impl Fn(mongodb::error::Error) -> Error + '_ {
    move |error| Error::Backend(format!("{context}: {error}"))
}

/// A write's error: a duplicate key (`E11000`) becomes [`Error::Duplicate`] naming the field of
/// the unique index it hit.
fn write_error(error: mongodb::error::Error) -> Error {
    match duplicate_key_message(&error).map(duplicate_index_name) {
        Some(Some(field)) => Error::Duplicate { field },
        _ => backend(error),
    }
}

/// The server's message if `error` is a duplicate key error.
fn duplicate_key_message(error: &mongodb::error::Error) -> Option<&str> {
    const DUPLICATE_KEY: i32 = 11000;
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY => Some(&e.message),
        ErrorKind::Command(e) if e.code == DUPLICATE_KEY => Some(&e.message),
        _ => None,
    }
}

/// The field of the index named in "E11000 duplicate key error collection: db.users index:
/// users_email_unique dup key: { ... }".
fn duplicate_index_name(message: &str) -> Option<&'static str> {
    let after = message.split_once("index: ")?.1;
    indexes::duplicate_field(after.split_whitespace().next()?)
}

/// `true` if `error` is a duplicate key error, whatever the index.
fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    duplicate_key_message(error).is_some()
}

/// The fields of `document` (a record's stored form) except `_id`, to overwrite with `$set`. A
/// `$set` rather than a replacement keeps the fields other code (the seeds' Node models, an admin
/// in the shell) added to the document.
fn fields_to_set(document: &impl serde::Serialize) -> Result<Document> {
    let mut fields = mongodb::bson::to_document(document)
        .map_err(|e| Error::Backend(format!("encoding a record: {e}")))?;
    fields.remove("_id");
    Ok(fields)
}

/// At most `limit` documents matching `filter`, in `sort` order, after skipping `skip`.
async fn find_sorted<T>(
    collection: &Collection<T>,
    filter: Document,
    sort: Document,
    skip: u64,
    limit: u64,
) -> Result<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    // MongoDB reads a limit of 0 as "no limit"; the traits mean an empty page.
    if limit == 0 {
        return Ok(Vec::new());
    }
    let cursor =
        collection.find(filter).sort(sort).skip(skip).limit(saturating_i64(limit)).await.map_err(backend)?;
    cursor.try_collect().await.map_err(backend)
}

/// A count from the traits as MongoDB's signed limit/skip.
fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_messages_name_the_field() {
        let message = r#"E11000 duplicate key error collection: cc.users index: users_email_unique dup key: { email: "a" }"#;
        assert_eq!(duplicate_index_name(message), Some("email"));
        assert_eq!(duplicate_index_name("E11000 duplicate key error index: _id_ dup key"), Some("id"));
        assert_eq!(duplicate_index_name("E11000 something else"), None);
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let config = MongoConfig::new("mongodb://app:s3cret@db.internal:27017/?tls=true", "codecrafter");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret") && shown.contains("mongodb://***@db.internal:27017"), "{shown}");
        assert_eq!(config.snapshot_chunk_bytes, 15 * 1024 * 1024);
    }
}
