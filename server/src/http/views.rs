//! What the API returns: records as clients see them (no password hash; ISO 8601 times).

use serde::Serialize;
use storage::model::{Millis, Session, User};
use utoipa::ToSchema;

use crate::access::SessionRole;

/// ISO 8601 / RFC 3339 in UTC with milliseconds.
pub fn iso(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[schema(example = "6740a1f2c3d4e5f6a7b8c9d0")]
    pub id: String,
    #[schema(example = "ada_l")]
    pub username: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `user`, `admin` or `moderator`.
    #[schema(value_type = String, example = "user")]
    pub role: storage::model::UserRole,
    /// theme (`light`/`dark`/`auto`), editorSettings {fontSize, tabSize, wordWrap, autoSave},
    /// notifications {email, browser, collaboratorJoined, sessionShared}.
    #[schema(value_type = Object)]
    pub preferences: storage::model::Preferences,
    pub is_active: bool,
    pub email_verified: bool,
    pub last_login_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            role: user.role,
            preferences: user.preferences.clone(),
            is_active: user.is_active,
            email_verified: user.email_verified,
            last_login_at: user.last_login_at.map(iso),
            created_at: iso(user.created_at),
            updated_at: iso(user.updated_at),
        }
    }
}

/// A signed-in user and their tokens.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub user: UserView,
    #[serde(flatten)]
    pub tokens: TokenPair,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// JWT (HS256) for `Authorization: Bearer` and the WebSocket's `?token=`.
    pub access_token: String,
    /// Opaque; single use: every refresh returns a new one.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollaboratorView {
    pub user_id: String,
    /// Their username when they were invited or joined; absent in records from before it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `viewer`, `editor` or `admin`.
    #[schema(value_type = String, example = "editor")]
    pub role: storage::model::CollaboratorRole,
    pub joined_at: String,
    /// False until an invited user joins.
    pub is_active: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataView {
    pub total_executions: u64,
    pub total_edits: u64,
    /// Chat messages stored.
    pub total_messages: u64,
    pub average_execution_time: f64,
    pub last_activity: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Also the room id: connect to `/ws/{id}`.
    #[schema(example = "6740a1f2c3d4e5f6a7b8c9d0")]
    pub id: String,
    pub title: String,
    pub description: String,
    /// javascript, python, java, cpp, csharp, php, ruby, go or rust.
    #[schema(value_type = String, example = "python")]
    pub language: storage::model::Language,
    /// The owner's user id.
    pub owner: String,
    pub collaborators: Vec<CollaboratorView>,
    pub is_public: bool,
    pub is_locked: bool,
    pub max_collaborators: u32,
    /// active, paused, completed or archived.
    #[schema(value_type = String, example = "active")]
    pub status: storage::model::SessionStatus,
    pub metadata: MetadataView,
    /// The caller's role here; absent for a public session it has not joined.
    pub your_role: Option<SessionRole>,
    /// Whether the caller may change the document now (roles and the lock).
    pub can_write: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl SessionView {
    pub fn new(session: &Session, role: Option<SessionRole>) -> Self {
        Self {
            id: session.id.clone(),
            title: session.title.clone(),
            description: session.description.clone(),
            language: session.language,
            owner: session.owner.clone(),
            collaborators: session
                .collaborators
                .iter()
                .map(|c| CollaboratorView {
                    user_id: c.user_id.clone(),
                    username: (!c.username.is_empty()).then(|| c.username.clone()),
                    role: c.role,
                    joined_at: iso(c.joined_at),
                    is_active: c.is_active,
                })
                .collect(),
            is_public: session.is_public,
            is_locked: session.is_locked,
            max_collaborators: session.max_collaborators,
            status: session.status,
            metadata: MetadataView {
                total_executions: session.metadata.total_executions,
                total_edits: session.metadata.total_edits,
                total_messages: session.metadata.total_messages,
                average_execution_time: session.metadata.average_execution_time,
                last_activity: iso(session.metadata.last_activity),
            },
            your_role: role,
            can_write: role.is_some_and(|r| r.can_write(session)),
            created_at: iso(session.created_at),
            updated_at: iso(session.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub current_page: u64,
    pub total_pages: u64,
    pub total_items: u64,
    pub has_next: bool,
    pub has_prev: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
    pub pagination: Pagination,
}
