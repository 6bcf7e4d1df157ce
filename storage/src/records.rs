//! The record stores: accounts, sessions, and the collections later features write (chat
//! messages, executions, activity logs). One trait per collection, one [`Store`] over them all.

use async_trait::async_trait;

use crate::Result;
use crate::model::{
    ChatMessage, ExecutionCursor, ExecutionRecord, LogEntry, LogLevel, MessageCursor, Millis, Page, Session,
    User,
};
use crate::snapshot::SnapshotStore;

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Insert a new user. [`Error::Duplicate`](crate::Error::Duplicate) names `email` or
    /// `username` when either is taken (both unique; email is compared as stored, lowercase).
    async fn create_user(&self, user: &User) -> Result<()>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// Overwrite the user with `user.id`. False if there is none;
    /// [`Error::Duplicate`](crate::Error::Duplicate) if the new email or username is taken by
    /// another user.
    async fn replace_user(&self, user: &User) -> Result<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Insert a new session (its `revision` is stored as given, normally 0).
    async fn create_session(&self, session: &Session) -> Result<()>;
    async fn session(&self, id: &str) -> Result<Option<Session>>;
    /// Overwrite the stored session if its revision still equals `session.revision`; the stored
    /// copy gets `revision + 1`, which is returned. [`Error::Stale`](crate::Error::Stale) if the
    /// revision moved on (the caller re-reads and retries), `Ok(None)` if there is no such session.
    async fn replace_session(&self, session: &Session) -> Result<Option<u64>>;
    /// Delete a session; true if it existed. Its snapshot is deleted separately.
    async fn delete_session(&self, id: &str) -> Result<bool>;
    /// Sessions `user_id` owns or collaborates on, newest first (`created_at`, then id, both
    /// descending), and how many there are in all.
    async fn sessions_of_user(&self, user_id: &str, page: Page) -> Result<(Vec<Session>, u64)>;
    /// Count `edits` more edits and move `metadata.last_activity` forward to `at` (never back).
    /// Leaves `revision` alone: activity must not make a concurrent settings edit stale.
    async fn record_activity(&self, id: &str, edits: u64, at: Millis) -> Result<()>;
}

#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Store a chat message; storing the same id again changes nothing (workers may redeliver).
    /// A newly stored message also counts in its session's `metadata.total_messages` and moves
    /// its `last_activity` forward (never back). The embedded store does both in one transaction;
    /// MongoDB counts right after the insert, so a crash between the two may undercount by one,
    /// never count twice.
    async fn save_message(&self, message: &ChatMessage) -> Result<()>;
    /// [`save_message`](Self::save_message) for each, in order, with the same idempotence; in
    /// one durable write where the backend can (the embedded store: one transaction, one fsync).
    async fn save_messages(&self, messages: &[ChatMessage]) -> Result<()> {
        for message in messages {
            self.save_message(message).await?;
        }
        Ok(())
    }
    /// The message with this id, if stored.
    async fn message(&self, id: &str) -> Result<Option<ChatMessage>>;
    /// A session's messages strictly older than `before` in `(created_at, id)` order (all if
    /// `None`), newest first, at most `limit`.
    async fn messages(
        &self,
        session_id: &str,
        before: Option<&MessageCursor>,
        limit: u64,
    ) -> Result<Vec<ChatMessage>>;
}

#[async_trait]
pub trait ExecutionStore: Send + Sync + 'static {
    /// Insert or overwrite the execution with `record.id` (its status moves queued → running →
    /// finished). Counts nothing: a finished record goes through
    /// [`finish_execution`](Self::finish_execution).
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<()>;
    /// Save a finished `record` like [`save_execution`](Self::save_execution) and, the first time
    /// its id is saved finished ([`ExecutionRecord::is_finished`]), count it in its session: one
    /// more `metadata.total_executions` and its `duration_ms` in the running mean
    /// `metadata.average_execution_time`, and `last_activity` moved forward to its `finished_at`.
    /// Saving it again (a retried write, a redelivered job) counts nothing. A record without a
    /// `duration_ms` (the program never ran, or its worker died) is saved but counts nowhere, so
    /// the mean is over the same runs as the total. A session that does not exist is no error.
    async fn finish_execution(&self, record: &ExecutionRecord) -> Result<()>;
    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>>;
    /// A session's executions strictly older than `before` in `(created_at, id)` order (all if
    /// `None`), newest first, at most `limit`.
    async fn executions(
        &self,
        session_id: &str,
        before: Option<&ExecutionCursor>,
        limit: u64,
    ) -> Result<Vec<ExecutionRecord>>;
}

/// Which log entries to list; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub level: Option<LogLevel>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
}

#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    async fn append_log(&self, entry: &LogEntry) -> Result<()>;
    /// Matching entries, newest first, at most `limit`. Entries older than the retention (30 days)
    /// may be gone.
    async fn logs(&self, filter: &LogFilter, limit: u64) -> Result<Vec<LogEntry>>;
}

/// Everything the server and workers keep. Both backends implement all of it and pass
/// [`crate::conformance::store_suite`].
#[async_trait]
pub trait Store: UserStore + SessionStore + SnapshotStore + MessageStore + ExecutionStore + LogStore {
    /// Whether the backend answers (for `/ready`).
    async fn ping(&self) -> Result<()>;
    /// Which backend this is, for logs and `/ready`: `embedded` or `mongodb`.
    fn backend_name(&self) -> &'static str;
}
