//! Sessions as the API and the sockets see them: the store behind a read-through cache (24 h,
//! dropped on every change), optimistic updates that retry on a concurrent change, and the
//! propagation of every change to live sockets (see [`LiveGrants`]) on every node: a
//! change that concerns some users only (a collaborator added, removed or given another role) goes
//! to the nodes [`UserSockets`] says hold their sockets; one that concerns everyone (lock, owner,
//! deletion) goes to every node holding the room.

use std::sync::Arc;
use std::time::Duration;

use relay::{NodeId, Relay, RelayKind};
use storage::Store;
use storage::model::Session;
use workers::JobQueue;

use super::AccessError;
use super::live::LiveGrants;
use super::user_sockets::UserSockets;
use crate::cache::Cache;
use crate::room::Rooms;
use crate::room::persister::ActivityLog;

/// Attempts at an update that keeps meeting concurrent changes before giving up with 409.
const UPDATE_ATTEMPTS: usize = 16;

pub struct SessionDirectory {
    pub store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    cache_ttl: Duration,
    pub live: Arc<LiveGrants>,
    rooms: Arc<Rooms>,
    queue: Arc<dyn JobQueue>,
    /// Tells the other nodes that a session's permissions changed, for their live sockets.
    relay: Arc<dyn Relay>,
    user_sockets: Arc<UserSockets>,
}

/// Whose rights a session change may have changed.
#[derive(Debug, PartialEq, Eq)]
enum Concerned {
    Everyone,
    Users(Vec<String>),
}

impl SessionDirectory {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        cache_ttl: Duration,
        rooms: Arc<Rooms>,
        queue: Arc<dyn JobQueue>,
        relay: Arc<dyn Relay>,
        user_sockets: Arc<UserSockets>,
    ) -> Self {
        let live = Arc::new(LiveGrants::new(user_sockets.clone()));
        Self { store, cache, cache_ttl, live, rooms, queue, relay, user_sockets }
    }

    /// The session `id`, from the cache when it has it. A cache failure falls back to the store:
    /// the cache only saves time.
    pub async fn get(&self, id: &str) -> Result<Option<Session>, storage::Error> {
        if !storage::model::is_id(id) {
            return Ok(None);
        }
        let key = cache_key(id);
        match self.cache.get(&key).await {
            Ok(Some(bytes)) => {
                if let Ok(session) = serde_json::from_slice(&bytes) {
                    return Ok(Some(session));
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "session cache unavailable; reading the store"),
        }
        let session = self.store.session(id).await?;
        if let Some(session) = &session {
            let bytes = serde_json::to_vec(session).expect("sessions serialise");
            if let Err(error) = self.cache.set(&key, &bytes, self.cache_ttl).await {
                tracing::warn!(%error, "could not cache a session");
            }
        }
        Ok(session)
    }

    pub async fn create(&self, session: &Session) -> Result<(), AccessError> {
        self.store.create_session(session).await?;
        Ok(())
    }

    /// Apply `change` to the stored session and save it, retrying from a fresh read if another
    /// change won the race. `change` may refuse with an error of the caller's own type, which is
    /// returned as is.
    pub async fn update<E: From<AccessError>>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Session) -> Result<(), E>,
    ) -> Result<Session, E> {
        for _ in 0..UPDATE_ATTEMPTS {
            let mut session = self.fresh(id).await?;
            let before = session.clone();
            change(&mut session)?;
            session.updated_at = crate::clock::unix_ms() as i64;
            match self.store.replace_session(&session).await {
                Ok(Some(revision)) => {
                    session.revision = revision;
                    self.forget(id).await;
                    self.live.session_changed(&session);
                    self.tell_other_nodes(id, concerned(&before, &session)).await;
                    return Ok(session);
                }
                Ok(None) => return Err(AccessError::SessionNotFound.into()),
                Err(storage::Error::Stale) => continue,
                Err(other) => return Err(AccessError::from(other).into()),
            }
        }
        Err(AccessError::Busy.into())
    }

    /// Delete the session, close its sockets (4404), and drop its document for good.
    pub async fn delete(&self, id: &str) -> Result<bool, AccessError> {
        if !self.store.delete_session(id).await? {
            return Ok(false);
        }
        self.forget(id).await;
        self.live.session_deleted(id);
        self.relay.publish(RelayKind::Access, id, &[]);
        self.rooms.discard(id);
        // A snapshot job queued before the room was discarded must not land after the delete and
        // resurrect the document: wait until the workers have handled what was queued for it.
        if let Err(error) = self.queue.barrier(id).await {
            tracing::warn!(%error, session = id, "could not wait for the job queue before deleting a snapshot");
        }
        self.store.delete_snapshot(id).await?;
        Ok(true)
    }

    /// Make the other nodes apply session `id`'s change to their live sockets: only the nodes
    /// holding sockets of the users it concerns, or, if it concerns everyone or the record of
    /// where users are cannot be read, every node holding the room.
    async fn tell_other_nodes(&self, id: &str, concerned: Concerned) {
        if let Concerned::Users(users) = concerned {
            match self.nodes_holding(&users, id).await {
                Ok(nodes) => {
                    for node in nodes {
                        self.relay.send_to_node(node, RelayKind::Access, id, &[]);
                    }
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, session = id, "cannot read where users' sockets are; telling every node");
                }
            }
        }
        self.relay.publish(RelayKind::Access, id, &[]);
    }

    /// The other nodes holding a socket of any of `users` in room `id`.
    async fn nodes_holding(&self, users: &[String], id: &str) -> crate::cache::CacheResult<Vec<NodeId>> {
        let mut nodes = Vec::new();
        for user in users {
            for located in self.user_sockets.locate(user).await? {
                if located.node != self.user_sockets.node() && located.rooms.contains_key(id) {
                    nodes.push(located.node);
                }
            }
        }
        nodes.sort_unstable();
        nodes.dedup();
        Ok(nodes)
    }

    /// Another node changed session `id`: apply it as it now is to this node's live sockets (or
    /// close them, and drop the room, if it was deleted).
    pub async fn refresh_live(&self, id: &str) {
        self.forget(id).await;
        match self.store.session(id).await {
            Ok(Some(session)) => self.live.session_changed(&session),
            Ok(None) => {
                self.live.session_deleted(id);
                self.rooms.discard(id);
            }
            Err(error) => {
                tracing::error!(session = id, %error, "could not re-read a session changed elsewhere")
            }
        }
    }

    /// Read from the store, skipping the cache (an update needs the current revision).
    async fn fresh(&self, id: &str) -> Result<Session, AccessError> {
        if !storage::model::is_id(id) {
            return Err(AccessError::SessionNotFound);
        }
        self.store.session(id).await?.ok_or(AccessError::SessionNotFound)
    }

    async fn forget(&self, id: &str) {
        if let Err(error) = self.cache.delete(&cache_key(id)).await {
            tracing::error!(%error, session = id, "could not invalidate the cached session");
        }
    }
}

/// The persister counts a session's edits here (its metadata); failures are logged, as the
/// counters are informative only.
#[async_trait::async_trait]
impl ActivityLog for SessionDirectory {
    async fn record_activity(&self, id: &str, edits: u64, at_ms: storage::model::Millis) {
        match self.store.record_activity(id, edits, at_ms).await {
            Ok(()) => self.forget(id).await,
            Err(error) => tracing::warn!(session = id, %error, "could not record session activity"),
        }
    }
}

/// Re-apply each session whose room [`UserSockets`] just recorded for a user (see its module docs
/// for the race this closes), until `cancel`.
pub async fn recheck_recorded(
    mut rooms: tokio::sync::mpsc::UnboundedReceiver<String>,
    sessions: Arc<SessionDirectory>,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let room = tokio::select! {
            room = rooms.recv() => match room { Some(room) => room, None => return },
            () = cancel.cancelled() => return,
        };
        sessions.refresh_live(&room).await;
    }
}

fn cache_key(id: &str) -> String {
    format!("session:{id}")
}

/// Whose rights the change from `before` to `after` may have changed: everyone's if the owner or
/// the lock changed (see [`crate::access::SessionRole`]), else the users whose collaborator role
/// appeared, disappeared or changed.
fn concerned(before: &Session, after: &Session) -> Concerned {
    if before.owner != after.owner || before.is_locked != after.is_locked {
        return Concerned::Everyone;
    }
    let roles = |session: &Session| -> Vec<(String, storage::model::CollaboratorRole)> {
        session.collaborators.iter().map(|c| (c.user_id.clone(), c.role)).collect()
    };
    let (old, new) = (roles(before), roles(after));
    let mut users: Vec<String> = old
        .iter()
        .filter(|entry| !new.contains(entry))
        .chain(new.iter().filter(|entry| !old.contains(entry)))
        .map(|(user, _)| user.clone())
        .collect();
    users.sort_unstable();
    users.dedup();
    Concerned::Users(users)
}

#[cfg(test)]
mod tests {
    use storage::model::{Collaborator, CollaboratorRole};

    use super::*;

    fn session(collaborators: &[(&str, CollaboratorRole)]) -> Session {
        let mut session: Session = serde_json::from_value(serde_json::json!({
            "id": "s", "title": "t", "owner": "owner", "maxCollaborators": 10,
            "createdAt": 0, "updatedAt": 0,
        }))
        .expect("a minimal session");
        session.collaborators = collaborators
            .iter()
            .map(|&(user, role)| Collaborator {
                user_id: user.into(),
                username: String::new(),
                role,
                joined_at: 0,
                is_active: true,
            })
            .collect();
        session
    }

    #[test]
    fn a_change_concerns_the_users_whose_role_changed() {
        use CollaboratorRole::{Editor, Viewer};
        let before = session(&[("ann", Editor), ("bob", Viewer), ("cy", Editor)]);
        let after = session(&[("ann", Editor), ("bob", Editor), ("dan", Viewer)]);
        let users = |list: &[&str]| Concerned::Users(list.iter().map(|u| u.to_string()).collect());
        assert_eq!(concerned(&before, &after), users(&["bob", "cy", "dan"]));
        assert_eq!(concerned(&before, &before.clone()), users(&[]), "a title change concerns no one");

        let mut locked = before.clone();
        locked.is_locked = true;
        assert_eq!(concerned(&before, &locked), Concerned::Everyone);
        let mut handed_over = before.clone();
        handed_over.owner = "ann".into();
        assert_eq!(concerned(&before, &handed_over), Concerned::Everyone);
    }
}
