//! What a user may do in a session: the role it has there, and the per-connection [`Grant`] a live
//! socket checks on every update (one atomic load), which a permission change flips at once.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use storage::model::{CollaboratorRole, Session, UserRole};
use tokio::sync::Notify;

/// A user's standing in one session, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionRole {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl From<CollaboratorRole> for SessionRole {
    fn from(role: CollaboratorRole) -> Self {
        match role {
            CollaboratorRole::Viewer => Self::Viewer,
            CollaboratorRole::Editor => Self::Editor,
            CollaboratorRole::Admin => Self::Admin,
        }
    }
}

impl SessionRole {
    /// The role of `user_id` in `session`: owner, a collaborator's role (invited or joined), or —
    /// for site administrators — admin everywhere. `None`: no access.
    pub fn of(session: &Session, user_id: &str, site_role: UserRole) -> Option<Self> {
        if session.owner == user_id {
            return Some(Self::Owner);
        }
        if let Some(collaborator) = session.collaborator(user_id) {
            return Some(collaborator.role.into());
        }
        (site_role == UserRole::Admin).then_some(Self::Admin)
    }

    /// Whether this role may change the document: viewers never; a locked session only its owner.
    pub fn can_write(self, session: &Session) -> bool {
        match self {
            Self::Owner => true,
            Self::Viewer => false,
            Self::Editor | Self::Admin => !session.is_locked,
        }
    }

    /// Whether this role may change the session's settings and collaborators.
    pub fn can_manage(self) -> bool {
        self >= Self::Admin
    }
}

/// Why a live connection lost its access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Removed from the session (close 4403).
    Access,
    /// The session was deleted (close 4404).
    SessionDeleted,
    /// The user's account no longer exists (close 4401).
    AccountGone,
    /// The user's account was disabled (close 4403).
    AccountDisabled,
}

const NOT_REVOKED: u8 = 0;

/// One live connection's permission, shared between its task and [`super::LiveGrants`].
#[derive(Debug)]
pub struct Grant {
    writable: AtomicBool,
    revoked: AtomicU8,
    changed: Notify,
}

impl Grant {
    pub fn new(writable: bool) -> Self {
        Self {
            writable: AtomicBool::new(writable),
            revoked: AtomicU8::new(NOT_REVOKED),
            changed: Notify::new(),
        }
    }

    pub fn can_write(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    pub fn set_writable(&self, writable: bool) {
        self.writable.store(writable, Ordering::Release);
    }

    pub fn revoke(&self, why: Revoked) {
        let code = match why {
            Revoked::Access => 1,
            Revoked::SessionDeleted => 2,
            Revoked::AccountGone => 3,
            Revoked::AccountDisabled => 4,
        };
        self.writable.store(false, Ordering::Release);
        self.revoked.store(code, Ordering::Release);
        // A stored permit: the connection task sees it even if it is not waiting right now.
        self.changed.notify_one();
    }

    pub fn revocation(&self) -> Option<Revoked> {
        match self.revoked.load(Ordering::Acquire) {
            NOT_REVOKED => None,
            1 => Some(Revoked::Access),
            2 => Some(Revoked::SessionDeleted),
            3 => Some(Revoked::AccountGone),
            _ => Some(Revoked::AccountDisabled),
        }
    }

    /// Resolves once the connection's access is revoked.
    pub async fn revoked(&self) -> Revoked {
        loop {
            if let Some(why) = self.revocation() {
                return why;
            }
            self.changed.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(locked: bool) -> Session {
        Session {
            id: storage::model::new_id(),
            title: "t".into(),
            description: String::new(),
            language: Default::default(),
            owner: "owner".into(),
            collaborators: vec![storage::model::Collaborator {
                user_id: "ed".into(),
                username: "ed".into(),
                role: CollaboratorRole::Editor,
                joined_at: 0,
                is_active: true,
            }],
            is_public: false,
            is_locked: locked,
            max_collaborators: 10,
            status: Default::default(),
            metadata: Default::default(),
            created_at: 0,
            updated_at: 0,
            revision: 0,
        }
    }

    #[test]
    fn roles_and_writes() {
        let open = session(false);
        assert_eq!(SessionRole::of(&open, "owner", UserRole::User), Some(SessionRole::Owner));
        assert_eq!(SessionRole::of(&open, "ed", UserRole::User), Some(SessionRole::Editor));
        assert_eq!(SessionRole::of(&open, "stranger", UserRole::User), None);
        assert_eq!(SessionRole::of(&open, "stranger", UserRole::Admin), Some(SessionRole::Admin));
        assert!(SessionRole::Editor.can_write(&open));
        assert!(!SessionRole::Viewer.can_write(&open));
        let locked = session(true);
        assert!(SessionRole::Owner.can_write(&locked));
        assert!(!SessionRole::Editor.can_write(&locked));
        assert!(!SessionRole::Admin.can_write(&locked));
    }

    #[tokio::test]
    async fn revocation_wakes_the_waiter() {
        let grant = std::sync::Arc::new(Grant::new(true));
        let waiter = tokio::spawn({
            let grant = grant.clone();
            async move { grant.revoked().await }
        });
        tokio::task::yield_now().await;
        grant.revoke(Revoked::SessionDeleted);
        assert_eq!(waiter.await.unwrap(), Revoked::SessionDeleted);
        assert!(!grant.can_write());
    }
}
