//! The MongoDB index plan: every index the store relies on, with an explicit name, created at
//! connect time and, identically, by mongo-init.js (a test compares the two both ways).
//!
//! The first 13 are the seeds' (guide-mongodb-rabbitmq-redis-config.md, mongo-init.js), adapted
//! to the field names the seeds' own models and this crate use:
//! - users `lastLoginAt`, not `lastLogin` (the user model's name);
//! - sessions `collaborators.userId`, not `participants.user` (the session model's array);
//! - sessions `status`, not `isActive` (the session model has a status, no isActive flag).
//!
//! The rest serve what the seeds do not have: snapshot chunks, chat messages, executions.

use std::time::Duration;

use mongodb::bson::Document;
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use super::{
    EXECUTIONS, LOGS, MESSAGES, SESSIONS, SNAPSHOT_CHUNKS, USERS, backend_context, collection_names,
};
use crate::Result;
use crate::model::LOG_RETENTION;

/// One index of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub collection: &'static str,
    pub name: &'static str,
    /// Field and direction (1 ascending, -1 descending), in order.
    pub fields: &'static [(&'static str, i32)],
    pub unique: bool,
    /// Documents expire this long after the date in the (single) indexed field.
    pub expire_after: Option<Duration>,
}

impl IndexSpec {
    /// The key document, as `createIndex` takes it and `listIndexes` returns it.
    pub fn keys(&self) -> Document {
        self.fields.iter().map(|&(field, direction)| (field.to_owned(), direction.into())).collect()
    }

    fn model(&self) -> IndexModel {
        let options = IndexOptions::builder()
            .name(self.name.to_owned())
            .unique(self.unique.then_some(true))
            .expire_after(self.expire_after)
            .build();
        IndexModel::builder().keys(self.keys()).options(options).build()
    }
}

const fn index(
    collection: &'static str,
    name: &'static str,
    fields: &'static [(&'static str, i32)],
) -> IndexSpec {
    IndexSpec { collection, name, fields, unique: false, expire_after: None }
}

const fn unique(
    collection: &'static str,
    name: &'static str,
    fields: &'static [(&'static str, i32)],
) -> IndexSpec {
    IndexSpec { collection, name, fields, unique: true, expire_after: None }
}

const PLAN: [IndexSpec; 16] = [
    // users (seeds: 4)
    unique(USERS, "users_email_unique", &[("email", 1)]),
    unique(USERS, "users_username_unique", &[("username", 1)]),
    index(USERS, "users_createdAt", &[("createdAt", 1)]),
    index(USERS, "users_lastLoginAt", &[("lastLoginAt", 1)]),
    // sessions (seeds: 5)
    index(SESSIONS, "sessions_owner_createdAt", &[("owner", 1), ("createdAt", -1)]),
    index(SESSIONS, "sessions_isPublic_updatedAt", &[("isPublic", 1), ("updatedAt", -1)]),
    index(SESSIONS, "sessions_createdAt", &[("createdAt", 1)]),
    index(SESSIONS, "sessions_collaborators_userId", &[("collaborators.userId", 1)]),
    index(SESSIONS, "sessions_status", &[("status", 1)]),
    // logs (seeds: 4, the first with a TTL)
    IndexSpec {
        collection: LOGS,
        name: "logs_timestamp_ttl",
        fields: &[("timestamp", 1)],
        unique: false,
        expire_after: Some(LOG_RETENTION),
    },
    index(LOGS, "logs_level_timestamp", &[("level", 1), ("timestamp", -1)]),
    index(LOGS, "logs_userId_timestamp", &[("userId", 1), ("timestamp", -1)]),
    index(LOGS, "logs_sessionId_timestamp", &[("sessionId", 1), ("timestamp", -1)]),
    // ours: a snapshot generation's chunks in order (unique: a chunk is written once)
    unique(
        SNAPSHOT_CHUNKS,
        "snapshot_chunks_room_generation_index",
        &[("room", 1), ("generation", 1), ("index", 1)],
    ),
    // ours: a session's newest messages and executions
    index(MESSAGES, "messages_sessionId_createdAt", &[("sessionId", 1), ("createdAt", -1)]),
    index(EXECUTIONS, "executions_sessionId_createdAt", &[("sessionId", 1), ("createdAt", -1)]),
];

/// Every index the store creates, in creation order. mongo-init.js creates the same ones.
pub fn mongo_index_plan() -> &'static [IndexSpec] {
    &PLAN
}

/// Which unique field an `E11000` on index `name` is about: `id` for `_id_`.
pub(super) fn duplicate_field(name: &str) -> Option<&'static str> {
    if name == "_id_" {
        return Some("id");
    }
    PLAN.iter()
        .find(|spec| spec.unique && spec.name == name)
        .and_then(|spec| spec.fields.last())
        .map(|&(f, _)| f)
}

/// Creates every collection and index of the plan that is missing. Idempotent: an index that
/// already exists with the same name, keys and options is left alone; one with the same name and
/// other keys or options is an error naming it (fix or drop it by hand rather than guess).
pub(super) async fn ensure_indexes(db: &Database) -> Result<()> {
    let existing = db.list_collection_names().await.map_err(backend_context("listing collections"))?;
    for collection in collection_names() {
        if !existing.iter().any(|name| name == collection) {
            // Racing another process creating it is fine: "already exists" is success.
            match db.create_collection(collection).await {
                Err(error) if !namespace_exists(&error) => {
                    return Err(backend_context(&format!("creating collection {collection}"))(error));
                }
                _ => {}
            }
        }
        let models: Vec<_> =
            PLAN.iter().filter(|spec| spec.collection == collection).map(IndexSpec::model).collect();
        if models.is_empty() {
            continue;
        }
        db.collection::<Document>(collection)
            .create_indexes(models)
            .await
            .map_err(backend_context(&format!("creating the indexes of {collection}")))?;
    }
    Ok(())
}

/// MongoDB's NamespaceExists (48): the collection was created meanwhile.
fn namespace_exists(error: &mongodb::error::Error) -> bool {
    matches!(&*error.kind, mongodb::error::ErrorKind::Command(command) if command.code == 48)
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    #[test]
    fn names_are_unique_and_duplicates_map_to_fields() {
        let mut names: Vec<_> = PLAN.iter().map(|spec| spec.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PLAN.len(), "index names are unique");
        assert_eq!(duplicate_field("users_email_unique"), Some("email"));
        assert_eq!(duplicate_field("users_username_unique"), Some("username"));
        assert_eq!(duplicate_field("_id_"), Some("id"));
        assert_eq!(duplicate_field("users_createdAt"), None, "not unique");
        assert_eq!(mongo_index_plan()[3].keys(), doc! { "lastLoginAt": 1 });
    }

    #[test]
    fn the_log_ttl_is_the_seeds_30_days() {
        let ttl: Vec<_> = PLAN.iter().filter_map(|spec| spec.expire_after).collect();
        assert_eq!(ttl, vec![Duration::from_secs(2_592_000)]);
    }
}
