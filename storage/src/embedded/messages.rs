//! Chat messages in the embedded store, keyed `(session, created_at, id)` so a page of history
//! is one backwards range scan; a new message counts in its session's metadata in the same
//! transaction.

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};

use super::tables::{MESSAGE_IDS, MESSAGE_KEYS, MESSAGES, SESSIONS, ScopedRange};
use super::{EmbeddedStore, backend, from_json, get_json, saturating_usize, to_json};
use crate::Result;
use crate::model::{ChatMessage, MessageCursor, Session};
use crate::records::MessageStore;

#[async_trait]
impl MessageStore for EmbeddedStore {
    async fn save_message(&self, message: &ChatMessage) -> Result<()> {
        self.save_messages(std::slice::from_ref(message)).await
    }

    async fn save_messages(&self, messages: &[ChatMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let messages = messages.to_vec();
        // One write transaction (one fsync) for the whole batch, as for snapshots.
        self.write(move |txn| {
            for message in &messages {
                insert_message(txn, message)?;
            }
            Ok(())
        })
        .await
    }

    async fn message(&self, id: &str) -> Result<Option<ChatMessage>> {
        let id = id.to_owned();
        self.read(move |txn| {
            let Some(key) =
                txn.open_table(MESSAGE_KEYS).map_err(backend)?.get(id.as_str()).map_err(backend)?
            else {
                return Ok(None);
            };
            let (session_id, created_at) = key.value();
            let messages = txn.open_table(MESSAGES).map_err(backend)?;
            let found = messages.get((session_id, created_at, id.as_str())).map_err(backend)?;
            found.map(|bytes| from_json(bytes.value())).transpose()
        })
        .await
    }

    async fn messages(
        &self,
        session_id: &str,
        before: Option<&MessageCursor>,
        limit: u64,
    ) -> Result<Vec<ChatMessage>> {
        let before = before.map(|cursor| (cursor.created_at, cursor.id.clone()));
        let range = ScopedRange::before_key(session_id, before);
        self.read(move |txn| {
            let table = txn.open_table(MESSAGES).map_err(backend)?;
            let newest_first = table.range(range.bounds()).map_err(backend)?.rev();
            newest_first
                .take(saturating_usize(limit))
                .map(|entry| from_json(entry.map_err(backend)?.1.value()))
                .collect()
        })
        .await
    }
}

/// Stores `message` unless its id is stored already (a redelivered message keeps the first copy,
/// even if it came back different), and counts it in its session.
fn insert_message(txn: &WriteTransaction, message: &ChatMessage) -> Result<()> {
    let mut ids = txn.open_table(MESSAGE_IDS).map_err(backend)?;
    if ids.get(message.id.as_str()).map_err(backend)?.is_some() {
        return Ok(());
    }
    ids.insert(message.id.as_str(), ()).map_err(backend)?;
    let id = message.id.as_str();
    let session_id = message.session_id.as_str();
    txn.open_table(MESSAGE_KEYS)
        .map_err(backend)?
        .insert(id, (session_id, message.created_at))
        .map_err(backend)?;
    txn.open_table(MESSAGES)
        .map_err(backend)?
        .insert((session_id, message.created_at, id), to_json(message)?.as_slice())
        .map_err(backend)?;
    let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
    // A message of a free room (no session) or of a session deleted meanwhile counts nowhere.
    if let Some(mut session) = get_json::<Session>(&sessions, session_id)? {
        let metadata = &mut session.metadata;
        metadata.total_messages = metadata.total_messages.saturating_add(1);
        metadata.last_activity = metadata.last_activity.max(message.created_at);
        sessions.insert(session_id, to_json(&session)?.as_slice()).map_err(backend)?;
    }
    Ok(())
}
