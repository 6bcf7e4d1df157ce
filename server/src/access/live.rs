//! The live connections of each session and their grants, so that a permission change made over
//! HTTP (collaborator removed, role lowered, session locked or deleted) reaches their sockets at
//! once rather than at their next reconnect. Every registration is also counted in
//! [`UserSockets`], so other nodes can find this node's sockets of a user.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use storage::model::{Session, UserRole};

use super::grant::{Grant, Revoked, SessionRole};
use super::user_sockets::UserSockets;
use crate::room::ConnId;

struct LiveConnection {
    conn: ConnId,
    user_id: Arc<str>,
    site_role: UserRole,
    grant: Arc<Grant>,
}

pub struct LiveGrants {
    sessions: DashMap<String, Vec<LiveConnection>>,
    user_sockets: Arc<UserSockets>,
    /// Bumped after every session change or deletion has been applied to the registered
    /// connections: an admission that read its session before a change and registered after it
    /// sees the bump and reads again (see [`LiveGrants::changes`]).
    changes: AtomicU64,
}

/// Keeps a connection registered; unregisters it when dropped.
pub struct Registration {
    live: Arc<LiveGrants>,
    session_id: String,
    conn: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut user = None;
        let emptied = match self.live.sessions.get_mut(&self.session_id) {
            Some(mut connections) => {
                if let Some(at) = connections.iter().position(|c| c.conn == self.conn) {
                    user = Some(connections.swap_remove(at).user_id);
                }
                connections.is_empty()
            }
            None => false,
        };
        if emptied {
            self.live.sessions.remove_if(&self.session_id, |_, connections| connections.is_empty());
        }
        if let Some(user) = user {
            self.live.user_sockets.leave(&user, &self.session_id);
        }
    }
}

impl LiveGrants {
    pub fn new(user_sockets: Arc<UserSockets>) -> Self {
        Self { sessions: DashMap::new(), user_sockets, changes: AtomicU64::new(0) }
    }

    pub fn register(
        self: &Arc<Self>,
        session_id: &str,
        conn: ConnId,
        user_id: &str,
        site_role: UserRole,
        grant: Arc<Grant>,
    ) -> Registration {
        self.user_sockets.enter(user_id, session_id);
        self.sessions.entry(session_id.to_owned()).or_default().push(LiveConnection {
            conn,
            user_id: user_id.into(),
            site_role,
            grant,
        });
        Registration { live: self.clone(), session_id: session_id.to_owned(), conn }
    }

    /// Re-derive every live connection's rights from the session as it now is.
    pub fn session_changed(&self, session: &Session) {
        if let Some(connections) = self.sessions.get(&session.id) {
            for live in connections.iter() {
                match SessionRole::of(session, &live.user_id, live.site_role) {
                    Some(role) => live.grant.set_writable(role.can_write(session)),
                    None => live.grant.revoke(Revoked::Access),
                }
            }
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    pub fn session_deleted(&self, session_id: &str) {
        if let Some(connections) = self.sessions.get(session_id) {
            for live in connections.iter() {
                live.grant.revoke(Revoked::SessionDeleted);
            }
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// How many changes have been applied so far. An admission reads this before it reads the
    /// session and again after it registers: if it moved, a change may have missed the new
    /// registration, and the session must be read again.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Every signed-in user with a live connection here, once each (their accounts are re-checked).
    pub fn users(&self) -> Vec<Arc<str>> {
        let mut users: Vec<Arc<str>> = self
            .sessions
            .iter()
            .flat_map(|entry| entry.iter().map(|c| c.user_id.clone()).collect::<Vec<_>>())
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Revoke every live connection of `user_id`, in every session (its account can no longer act).
    pub fn revoke_user(&self, user_id: &str, why: Revoked) {
        for connections in self.sessions.iter() {
            for live in connections.iter().filter(|c| &*c.user_id == user_id) {
                live.grant.revoke(why);
            }
        }
    }

    /// Live connections of `session_id` (metrics and tests).
    pub fn count(&self, session_id: &str) -> usize {
        self.sessions.get(session_id).map_or(0, |c| c.len())
    }
}
