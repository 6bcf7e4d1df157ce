//! The records the stores keep, shared by the server (HTTP API, socket permissions) and the
//! workers. Field names and limits follow the seeds' models; times are Unix milliseconds.
//!
//! Ids are 24 lowercase hex digits (a MongoDB ObjectId's text form) in every backend, so a
//! session's id is also its room id and a URL-safe path segment.

use serde::{Deserialize, Serialize};

/// Unix time in milliseconds.
pub type Millis = i64;

/// A fresh id: 4 bytes of seconds since the epoch then 8 random bytes, as 24 hex digits. Sorts
/// roughly by creation time, like a MongoDB ObjectId (and parses as one).
pub fn new_id() -> String {
    use std::fmt::Write;
    let secs = crate::clock::unix_secs() as u32;
    let random: [u8; 8] = rand::random();
    let mut id = format!("{secs:08x}");
    for byte in random {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// Whether `id` has the shape of an id this crate hands out.
pub fn is_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    #[default]
    User,
    Admin,
    Moderator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    Light,
    Dark,
    Auto,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EditorSettings {
    pub font_size: u32,
    pub tab_size: u32,
    pub word_wrap: bool,
    pub auto_save: bool,
}

impl Default for EditorSettings {
    fn default() -> Self {
        Self { font_size: 14, tab_size: 2, word_wrap: true, auto_save: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Notifications {
    pub email: bool,
    pub browser: bool,
    pub collaborator_joined: bool,
    pub session_shared: bool,
}

impl Default for Notifications {
    fn default() -> Self {
        Self { email: true, browser: true, collaborator_joined: true, session_shared: true }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Preferences {
    pub theme: Theme,
    pub editor_settings: EditorSettings,
    pub notifications: Notifications,
}

/// An account. `email` is stored lowercased; `password_hash` is a PHC argon2id string, or a bcrypt
/// hash (`$2a$`/`$2b$`) as seeded by mongo-init.js, upgraded to argon2id at the next login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub role: UserRole,
    #[serde(default)]
    pub preferences: Preferences,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub last_login_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Javascript,
    Python,
    Java,
    Cpp,
    Csharp,
    Php,
    Ruby,
    Go,
    Rust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    #[default]
    Active,
    Paused,
    Completed,
    Archived,
}

/// A collaborator's role in one session. The owner is not a collaborator: it is `Session::owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CollaboratorRole {
    #[default]
    Viewer,
    Editor,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collaborator {
    pub user_id: String,
    /// The username when they were invited or joined, so that a session lists names without a
    /// user lookup per collaborator (as chat messages keep theirs). Empty in older records.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    pub role: CollaboratorRole,
    pub joined_at: Millis,
    /// Whether they have joined (an invited user has not yet).
    #[serde(default)]
    pub is_active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionMetadata {
    pub total_executions: u64,
    pub total_edits: u64,
    /// Chat messages stored, each id counted once (by [`MessageStore::save_message`]).
    ///
    /// [`MessageStore::save_message`]: crate::MessageStore::save_message
    pub total_messages: u64,
    pub average_execution_time: f64,
    pub last_activity: Millis,
}

/// A coding session: its id is the id of its room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub language: Language,
    /// The owner's user id.
    pub owner: String,
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    #[serde(default)]
    pub is_public: bool,
    #[serde(default)]
    pub is_locked: bool,
    pub max_collaborators: u32,
    #[serde(default)]
    pub status: SessionStatus,
    #[serde(default)]
    pub metadata: SessionMetadata,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Bumped by every successful [`SessionStore::replace_session`]; a replace carrying a stale
    /// revision is refused, so concurrent edits (two joins racing for the last seat) cannot lose
    /// each other.
    ///
    /// [`SessionStore::replace_session`]: crate::SessionStore::replace_session
    #[serde(default)]
    pub revision: u64,
}

impl Session {
    pub fn collaborator(&self, user_id: &str) -> Option<&Collaborator> {
        self.collaborators.iter().find(|c| c.user_id == user_id)
    }
}

/// One chat message of a session (persisted by the chat worker; idempotent by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub username: String,
    pub text: String,
    pub created_at: Millis,
}

/// Where a page of chat history ends: messages strictly older than this one, in the order
/// `(created_at, id)` (the id breaks ties between messages of the same millisecond).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCursor {
    pub created_at: Millis,
    pub id: String,
}

impl From<&ChatMessage> for MessageCursor {
    fn from(message: &ChatMessage) -> Self {
        Self { created_at: message.created_at, id: message.id.clone() }
    }
}

/// One code execution and, once finished, its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    /// The job id.
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub language: String,
    pub code: String,
    /// `queued` | `running` | `completed` | `failed` | `timed_out` | `cancelled` (the HTTP API's
    /// words): completed = the program ran to its end, whatever its exit code; failed = it could not
    /// be run or was killed for a limit other than time (memory, output); cancelled = its worker went
    /// away during the run.
    pub status: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default)]
    pub oom_killed: bool,
    /// Why the run failed when it is not the program's doing (unavailable, worker lost).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    pub created_at: Millis,
    #[serde(default)]
    pub started_at: Option<Millis>,
    #[serde(default)]
    pub finished_at: Option<Millis>,
}

impl ExecutionRecord {
    /// Whether the record holds a result: its status is one of [`EXECUTION_FINAL_STATUSES`].
    pub fn is_finished(&self) -> bool {
        EXECUTION_FINAL_STATUSES.contains(&self.status.as_str())
    }
}

/// The statuses of an execution that is over; `queued` and `running` are the others.
pub const EXECUTION_FINAL_STATUSES: [&str; 4] = ["completed", "failed", "timed_out", "cancelled"];

/// Where a page of a session's executions ends: executions strictly older than this one, in the
/// order `(created_at, id)` (the id breaks ties between executions of the same millisecond).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionCursor {
    pub created_at: Millis,
    pub id: String,
}

impl From<&ExecutionRecord> for ExecutionCursor {
    fn from(record: &ExecutionRecord) -> Self {
        Self { created_at: record.created_at, id: record.id.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    #[default]
    Info,
    Warn,
    Error,
    Debug,
    Security,
}

/// How long activity log entries are kept: the MongoDB TTL index (`expireAfterSeconds`) and the
/// embedded store's sweep both use this, and mongo-init.js must create the same TTL.
pub const LOG_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 60 * 60);

/// An activity log entry (kept [`LOG_RETENTION`]: a TTL index in MongoDB, a sweep in the embedded
/// store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub id: String,
    pub level: LogLevel,
    pub message: String,
    /// What happened, e.g. `user_login`, `session_create` (the seeds' action names).
    pub action: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    pub timestamp: Millis,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// Which slice of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub skip: u64,
    pub limit: u64,
}
