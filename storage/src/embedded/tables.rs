//! Every redb table of the embedded store, with the shape of its keys, and the key ranges the
//! listings scan.

use std::ops::Bound;

use redb::{MultimapTableDefinition, TableDefinition, WriteTransaction};

use super::backend;
use crate::Result;
use crate::model::Millis;

/// Room id → the room's CRDT snapshot.
pub(super) const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");

/// User id → the user as JSON.
pub(super) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// Email → user id: keeps emails unique and finds a user at login.
pub(super) const USER_EMAILS: TableDefinition<&str, &str> = TableDefinition::new("user_emails");
/// Username → user id.
pub(super) const USER_NAMES: TableDefinition<&str, &str> = TableDefinition::new("user_names");

/// Session id → the session as JSON.
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// User id → `(created_at, session id)` of every session the user owns or collaborates on. A
/// multimap keeps a user's values sorted, so the newest page is read from the end and the total is
/// the value count, without touching other users' sessions.
pub(super) const SESSION_MEMBERS: MultimapTableDefinition<&str, (Millis, &str)> =
    MultimapTableDefinition::new("session_members");

/// `(session id, created_at, message id)` → the message as JSON: a session's messages before a
/// time are one range scan.
pub(super) const MESSAGES: TableDefinition<(&str, Millis, &str), &[u8]> = TableDefinition::new("messages");
/// Message id → nothing: makes saving a message idempotent by id whatever its key.
pub(super) const MESSAGE_IDS: TableDefinition<&str, ()> = TableDefinition::new("message_ids");
/// Message id → `(session id, created_at)`: the rest of its key in [`MESSAGES`], to find one
/// message by id (a history page's cursor).
pub(super) const MESSAGE_KEYS: TableDefinition<&str, (&str, Millis)> = TableDefinition::new("message_keys");

/// Execution id → the execution as JSON.
pub(super) const EXECUTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("executions");
/// `(session id, created_at, execution id)` → nothing: a session's executions in order.
pub(super) const SESSION_EXECUTIONS: TableDefinition<(&str, Millis, &str), ()> =
    TableDefinition::new("session_executions");

/// `(timestamp, log id)` → the entry as JSON: newest first is the table read backwards, and the
/// expired entries are the front of the table.
pub(super) const LOGS: TableDefinition<(Millis, &str), &[u8]> = TableDefinition::new("logs");

/// Creates every table that does not exist yet.
pub(super) fn create_all(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(SNAPSHOTS).map_err(backend)?;
    txn.open_table(USERS).map_err(backend)?;
    txn.open_table(USER_EMAILS).map_err(backend)?;
    txn.open_table(USER_NAMES).map_err(backend)?;
    txn.open_table(SESSIONS).map_err(backend)?;
    txn.open_multimap_table(SESSION_MEMBERS).map_err(backend)?;
    txn.open_table(MESSAGES).map_err(backend)?;
    txn.open_table(MESSAGE_IDS).map_err(backend)?;
    txn.open_table(MESSAGE_KEYS).map_err(backend)?;
    txn.open_table(EXECUTIONS).map_err(backend)?;
    txn.open_table(SESSION_EXECUTIONS).map_err(backend)?;
    txn.open_table(LOGS).map_err(backend)?;
    Ok(())
}

/// The key range, in a table keyed `(scope, time, id)`, of one scope's keys before `(time, id)`
/// (all of them if `None`). Build it with [`ScopedRange::before_key`] and borrow it with
/// [`ScopedRange::bounds`].
pub(super) struct ScopedRange {
    scope: String,
    /// The smallest string after `scope` (`scope` plus a NUL byte, as strings compare bytewise):
    /// `(next_scope, MIN, "")` is the first key past every key of `scope`.
    next_scope: String,
    before: Option<(Millis, String)>,
}

type ScopedKey<'a> = (&'a str, Millis, &'a str);

impl ScopedRange {
    /// The keys of `scope` strictly before `(time, id)` (all of them if `None`).
    pub(super) fn before_key(scope: &str, before: Option<(Millis, String)>) -> Self {
        Self { scope: scope.to_owned(), next_scope: format!("{scope}\0"), before }
    }

    pub(super) fn bounds(&self) -> (Bound<ScopedKey<'_>>, Bound<ScopedKey<'_>>) {
        let start = Bound::Included((self.scope.as_str(), Millis::MIN, ""));
        let end = match &self.before {
            Some((time, id)) => Bound::Excluded((self.scope.as_str(), *time, id.as_str())),
            None => Bound::Excluded((self.next_scope.as_str(), Millis::MIN, "")),
        };
        (start, end)
    }
}
