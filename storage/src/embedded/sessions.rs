//! Coding sessions in the embedded store: sessions by id, plus the membership index (user →
//! sessions) that lists a user's sessions without scanning everyone's.

use async_trait::async_trait;
use redb::{MultimapTable, WriteTransaction};

use super::tables::{SESSION_MEMBERS, SESSIONS};
use super::{EmbeddedStore, backend, get_json, saturating_usize, to_json};
use crate::model::{Millis, Page, Session};
use crate::records::SessionStore;
use crate::{Error, Result};

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        let session = session.clone();
        self.write(move |txn| {
            if get_json::<Session>(&txn.open_table(SESSIONS).map_err(backend)?, &session.id)?.is_some() {
                return Err(Error::Duplicate { field: "id" });
            }
            put(txn, &session)
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<Session>> {
        self.record(SESSIONS, id).await
    }

    async fn replace_session(&self, session: &Session) -> Result<Option<u64>> {
        let mut session = session.clone();
        self.write(move |txn| {
            let Some(stored) = get_json::<Session>(&txn.open_table(SESSIONS).map_err(backend)?, &session.id)?
            else {
                return Ok(None);
            };
            if stored.revision != session.revision {
                return Err(Error::Stale);
            }
            session.revision += 1;
            remove(txn, &stored)?;
            put(txn, &session)?;
            Ok(Some(session.revision))
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |txn| {
            let Some(stored) = get_json::<Session>(&txn.open_table(SESSIONS).map_err(backend)?, &id)? else {
                return Ok(false);
            };
            remove(txn, &stored)?;
            Ok(true)
        })
        .await
    }

    async fn sessions_of_user(&self, user_id: &str, page: Page) -> Result<(Vec<Session>, u64)> {
        let user_id = user_id.to_owned();
        self.read(move |txn| {
            let members = txn.open_multimap_table(SESSION_MEMBERS).map_err(backend)?;
            let sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let of_user = members.get(user_id.as_str()).map_err(backend)?;
            let total = of_user.len();
            let mut page_of_sessions = Vec::new();
            // Values sort by (created_at, id) ascending, so newest first is the end backwards.
            for entry in of_user.rev().skip(saturating_usize(page.skip)).take(saturating_usize(page.limit)) {
                let entry = entry.map_err(backend)?;
                let (_, id) = entry.value();
                match get_json::<Session>(&sessions, id)? {
                    Some(session) => page_of_sessions.push(session),
                    None => {
                        return Err(Error::Backend(format!("session index names a missing session {id}")));
                    }
                }
            }
            Ok((page_of_sessions, total))
        })
        .await
    }

    async fn record_activity(&self, id: &str, edits: u64, at: Millis) -> Result<()> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            // Activity on a session deleted meanwhile has nothing left to count.
            let Some(mut session) = get_json::<Session>(&sessions, &id)? else {
                return Ok(());
            };
            let metadata = &mut session.metadata;
            metadata.total_edits = metadata.total_edits.saturating_add(edits);
            metadata.last_activity = metadata.last_activity.max(at);
            sessions.insert(id.as_str(), to_json(&session)?.as_slice()).map_err(backend)?;
            Ok(())
        })
        .await
    }
}

/// Stores `session` and lists it under each of its members.
fn put(txn: &WriteTransaction, session: &Session) -> Result<()> {
    let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
    sessions.insert(session.id.as_str(), to_json(session)?.as_slice()).map_err(backend)?;
    let mut members = txn.open_multimap_table(SESSION_MEMBERS).map_err(backend)?;
    for_each_member(&mut members, session, |members, user, entry| members.insert(user, entry).map(drop))
}

/// Removes the stored `session` and its membership entries (keyed by its stored `created_at`).
fn remove(txn: &WriteTransaction, session: &Session) -> Result<()> {
    txn.open_table(SESSIONS).map_err(backend)?.remove(session.id.as_str()).map_err(backend)?;
    let mut members = txn.open_multimap_table(SESSION_MEMBERS).map_err(backend)?;
    for_each_member(&mut members, session, |members, user, entry| members.remove(user, entry).map(drop))
}

type Members<'txn> = MultimapTable<'txn, &'static str, (Millis, &'static str)>;

/// Applies `change` to the membership entry of the owner and of every collaborator. A user listed
/// twice (owner and collaborator) has one entry: the multimap holds each value once.
fn for_each_member(
    members: &mut Members<'_>,
    session: &Session,
    change: impl Fn(&mut Members<'_>, &str, (Millis, &str)) -> Result<(), redb::StorageError>,
) -> Result<()> {
    let entry = (session.created_at, session.id.as_str());
    let collaborators = session.collaborators.iter().map(|c| c.user_id.as_str());
    for user in std::iter::once(session.owner.as_str()).chain(collaborators) {
        change(members, user, entry).map_err(backend)?;
    }
    Ok(())
}
