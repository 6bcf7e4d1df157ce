//! Chat messages in the embedded store, keyed `(session, created_at, id)` so a page of history
//! is one backwards range scan.

use async_trait::async_trait;
use redb::ReadableTable;

use super::tables::{MESSAGE_IDS, MESSAGES, ScopedRange};
use super::{EmbeddedStore, backend, from_json, saturating_usize, to_json};
use crate::Result;
use crate::model::{ChatMessage, Millis};
use crate::records::MessageStore;

#[async_trait]
impl MessageStore for EmbeddedStore {
    async fn save_message(&self, message: &ChatMessage) -> Result<()> {
        let message = message.clone();
        self.write(move |txn| {
            let mut ids = txn.open_table(MESSAGE_IDS).map_err(backend)?;
            // A redelivered message keeps the first copy, even if it came back different.
            if ids.get(message.id.as_str()).map_err(backend)?.is_some() {
                return Ok(());
            }
            ids.insert(message.id.as_str(), ()).map_err(backend)?;
            let key = (message.session_id.as_str(), message.created_at, message.id.as_str());
            txn.open_table(MESSAGES)
                .map_err(backend)?
                .insert(key, to_json(&message)?.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn messages(
        &self,
        session_id: &str,
        before: Option<Millis>,
        limit: u64,
    ) -> Result<Vec<ChatMessage>> {
        let range = ScopedRange::new(session_id, before);
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
