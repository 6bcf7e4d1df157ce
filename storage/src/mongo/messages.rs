//! Chat messages in MongoDB: the `messages` collection, `_id` the message's own id (a string, as
//! the chat worker may use any id), read newest first through `messages_sessionId_createdAt`.

use async_trait::async_trait;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};

use super::fields::{self, date, id_to_bson};
use super::{MESSAGES, MongoStore, SESSIONS, backend, find_sorted, is_duplicate_key};
use crate::Result;
use crate::model::{ChatMessage, MessageCursor, Millis};
use crate::records::MessageStore;

/// The document form of a [`ChatMessage`] (remote derive: the compiler checks the fields match).
#[derive(Serialize, Deserialize)]
#[serde(remote = "ChatMessage", rename_all = "camelCase")]
struct MessageDocument {
    #[serde(rename = "_id")]
    id: String,
    #[serde(with = "fields::id")]
    session_id: String,
    #[serde(with = "fields::id")]
    user_id: String,
    #[serde(default)]
    username: String,
    text: String,
    #[serde(with = "fields::time")]
    created_at: Millis,
}

stored_in_collection!(messages, MESSAGES, ChatMessage, "MessageDocument");

#[async_trait]
impl MessageStore for MongoStore {
    async fn save_message(&self, message: &ChatMessage) -> Result<()> {
        match self.messages().insert_one(Stored(message.clone())).await {
            // Already stored (a redelivery): the first copy stays and was counted, as the contract says.
            Err(error) if is_duplicate_key(&error) => return Ok(()),
            result => result.map(drop).map_err(backend)?,
        }
        // Counted only by the insert that stored it. A crash right here leaves it uncounted (its
        // redelivery finds it stored): undercounting by one beats counting twice.
        let update = doc! {
            "$inc": { "metadata.totalMessages": 1_i64 },
            "$max": { "metadata.lastActivity": date(message.created_at) },
        };
        let sessions = self.db.collection::<mongodb::bson::Document>(SESSIONS);
        sessions
            .update_one(doc! { "_id": id_to_bson(&message.session_id) }, update)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn message(&self, id: &str) -> Result<Option<ChatMessage>> {
        let found = self.messages().find_one(doc! { "_id": id }).await.map_err(backend)?;
        Ok(found.map(Into::into))
    }

    async fn messages(
        &self,
        session_id: &str,
        before: Option<&MessageCursor>,
        limit: u64,
    ) -> Result<Vec<ChatMessage>> {
        let mut filter = doc! { "sessionId": id_to_bson(session_id) };
        if let Some(MessageCursor { created_at, id }) = before {
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
        let found = find_sorted(&self.messages(), filter, sort, 0, limit).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }
}
