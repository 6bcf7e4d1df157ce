//! Coding sessions in MongoDB: the `sessions` collection, shaped like the seeds' session model
//! (`owner` and `collaborators.userId` are ObjectIds, so the seeds' indexes and users fit).

use async_trait::async_trait;
use mongodb::bson::{Bson, doc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fields::{self, date, id_to_bson};
use super::{MongoStore, SESSIONS, backend, fields_to_set, find_sorted, saturating_i64, write_error};
use crate::model::{
    Collaborator, CollaboratorRole, Language, Millis, Page, Session, SessionMetadata, SessionStatus,
};
use crate::records::SessionStore;
use crate::{Error, Result};

/// The document form of a [`Session`] (remote derive: the compiler checks the fields match).
#[derive(Serialize, Deserialize)]
#[serde(remote = "Session", rename_all = "camelCase")]
struct SessionDocument {
    #[serde(rename = "_id", with = "fields::id")]
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    language: Language,
    #[serde(with = "fields::id")]
    owner: String,
    #[serde(default, with = "collaborator_list")]
    collaborators: Vec<Collaborator>,
    #[serde(default)]
    is_public: bool,
    #[serde(default)]
    is_locked: bool,
    #[serde(default = "seeds_max_collaborators")]
    max_collaborators: u32,
    #[serde(default)]
    status: SessionStatus,
    #[serde(default, with = "MetadataDocument")]
    metadata: SessionMetadata,
    #[serde(default, with = "fields::time")]
    created_at: Millis,
    #[serde(default, with = "fields::time")]
    updated_at: Millis,
    /// Missing in sessions other code created: they read as revision 0 (see [`revision_is`]).
    #[serde(default)]
    revision: u64,
}

/// The seeds' session model's default.
fn seeds_max_collaborators() -> u32 {
    10
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Collaborator", rename_all = "camelCase")]
struct CollaboratorDocument {
    #[serde(with = "fields::id")]
    user_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(default)]
    role: CollaboratorRole,
    #[serde(default, with = "fields::time")]
    joined_at: Millis,
    #[serde(default)]
    is_active: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "SessionMetadata", rename_all = "camelCase")]
struct MetadataDocument {
    #[serde(default)]
    total_executions: u64,
    #[serde(default)]
    total_edits: u64,
    #[serde(default)]
    total_messages: u64,
    #[serde(default)]
    average_execution_time: f64,
    #[serde(default, with = "fields::time")]
    last_activity: Millis,
}

/// A `Vec<Collaborator>` through [`CollaboratorDocument`] (serde's remote derive covers one value,
/// not a list).
mod collaborator_list {
    use super::*;

    struct Out<'a>(&'a Collaborator);

    impl Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            CollaboratorDocument::serialize(self.0, serializer)
        }
    }

    #[derive(Deserialize)]
    struct In(#[serde(with = "CollaboratorDocument")] Collaborator);

    pub fn serialize<S: Serializer>(list: &[Collaborator], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(list.iter().map(Out))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Collaborator>, D::Error> {
        Ok(Vec::<In>::deserialize(deserializer)?.into_iter().map(|In(c)| c).collect())
    }
}

stored_in_collection!(sessions, SESSIONS, Session, "SessionDocument");

/// The filter value matching a stored revision. Sessions created by other code have no
/// `revision` field and read as 0, so 0 also matches a missing one (`null` matches missing).
fn revision_is(revision: u64) -> Bson {
    match revision {
        0 => Bson::Document(doc! { "$in": [0_i64, Bson::Null] }),
        n => Bson::Int64(saturating_i64(n)),
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        self.sessions().insert_one(Stored(session.clone())).await.map(drop).map_err(write_error)
    }

    async fn session(&self, id: &str) -> Result<Option<Session>> {
        let found = self.sessions().find_one(doc! { "_id": id_to_bson(id) }).await.map_err(backend)?;
        Ok(found.map(Into::into))
    }

    async fn replace_session(&self, session: &Session) -> Result<Option<u64>> {
        let mut next = session.clone();
        next.revision = session.revision.saturating_add(1);
        let id = id_to_bson(&session.id);
        // The revision check and the write are one conditional update: of racing replaces with
        // the same revision, the server lets exactly one match.
        let filter = doc! { "_id": id.clone(), "revision": revision_is(session.revision) };
        let update = doc! { "$set": fields_to_set(&Stored(next.clone()))? };
        let result = self.sessions().update_one(filter, update).await.map_err(write_error)?;
        if result.matched_count == 1 {
            return Ok(Some(next.revision));
        }
        // No match: either the revision moved on, or there is no such session.
        let exists = self.sessions().count_documents(doc! { "_id": id }).limit(1).await.map_err(backend)? > 0;
        if exists { Err(Error::Stale) } else { Ok(None) }
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let result = self.sessions().delete_one(doc! { "_id": id_to_bson(id) }).await.map_err(backend)?;
        Ok(result.deleted_count == 1)
    }

    async fn sessions_of_user(&self, user_id: &str, page: Page) -> Result<(Vec<Session>, u64)> {
        let user = id_to_bson(user_id);
        // Served by the owner and collaborators.userId indexes.
        let filter = doc! { "$or": [{ "owner": user.clone() }, { "collaborators.userId": user }] };
        let total = self.sessions().count_documents(filter.clone()).await.map_err(backend)?;
        let sort = doc! { "createdAt": -1, "_id": -1 };
        let found = find_sorted(&self.sessions(), filter, sort, page.skip, page.limit).await?;
        Ok((found.into_iter().map(Into::into).collect(), total))
    }

    async fn record_activity(&self, id: &str, edits: u64, at: Millis) -> Result<()> {
        // One atomic update: counts add up under concurrency and the time never goes back,
        // without touching the revision.
        let update = doc! {
            "$inc": { "metadata.totalEdits": saturating_i64(edits) },
            "$max": { "metadata.lastActivity": date(at) },
        };
        self.sessions().update_one(doc! { "_id": id_to_bson(id) }, update).await.map(drop).map_err(backend)
    }
}
