//! The chat handler (the seeds' `message_save` worker): writes each chat message to the
//! [`MessageStore`], idempotently by its id, so a redelivered job never stores a second copy.
//!
//! A store failure is transient however long it lasts: a message is never dead-lettered for an
//! outage. Only a job that can never be stored (no id, no room) is poison.

use std::sync::Arc;

use async_trait::async_trait;
use protocol::job::ChatJob;
use storage::MessageStore;
use storage::model::ChatMessage;

use crate::handler::{Attempt, Handled, JobHandler, Transient};
use crate::metrics::Metrics;

pub struct ChatHandler {
    store: Arc<dyn MessageStore>,
}

impl ChatHandler {
    pub fn new(store: Arc<dyn MessageStore>) -> Self {
        Self { store }
    }
}

/// Why `job` can never be stored, if it cannot. The server only publishes checked messages, so
/// this guards against a foreign or corrupted producer.
fn poison_reason(job: &ChatJob) -> Option<&'static str> {
    if !storage::model::is_id(&job.id) {
        Some("chat job without a valid message id")
    } else if job.room.is_empty() {
        Some("chat job without a room")
    } else {
        None
    }
}

fn record(job: &ChatJob) -> ChatMessage {
    ChatMessage {
        id: job.id.clone(),
        session_id: job.room.clone(),
        user_id: job.user_id.clone(),
        username: job.username.clone(),
        text: job.text.clone(),
        created_at: job.created_at,
    }
}

#[async_trait]
impl JobHandler for ChatHandler {
    type Job = ChatJob;

    /// Stores the batch's messages in order, in one store write (one transaction in the embedded
    /// store). A failure retries the whole batch: messages already stored are stored again, which
    /// changes nothing (idempotent by id).
    async fn handle(&self, batch: &[Attempt<'_, ChatJob>]) -> Result<Handled, Transient> {
        let mut handled = Handled::all();
        let mut records = Vec::with_capacity(batch.len());
        for (index, attempt) in batch.iter().enumerate() {
            match poison_reason(attempt.job) {
                Some(reason) => handled.poison(index, reason),
                None => records.push(record(attempt.job)),
            }
        }
        self.store.save_messages(&records).await.map_err(Transient::new)?;
        Metrics::get().chat_writes.increment(records.len() as u64);
        Ok(handled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, room: &str) -> ChatJob {
        ChatJob {
            id: id.into(),
            room: room.into(),
            user_id: "u".into(),
            username: "ann".into(),
            text: "hi".into(),
            created_at: 1,
        }
    }

    #[test]
    fn only_jobs_that_can_never_be_stored_are_poison() {
        let id = storage::model::new_id();
        assert_eq!(poison_reason(&job(&id, "room")), None);
        assert!(poison_reason(&job("not-an-id", "room")).is_some());
        assert!(poison_reason(&job(&id, "")).is_some());
    }
}
