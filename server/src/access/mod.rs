//! Who may do what in a session, and how a change of that reaches live sockets on every node.
//!
//! - [`grant`]: a user's [`SessionRole`] in a session, and the per-connection [`Grant`] a socket
//!   checks on every update (one atomic load), flipped or revoked while it is connected.
//! - [`live`]: [`LiveGrants`], this node's live connections of each session and their grants.
//! - [`directory`]: [`SessionDirectory`], the only way sessions change: read-through cache,
//!   optimistic updates, deletion, and the propagation of every change to live sockets here and
//!   on the other nodes.
//! - [`user_sockets`]: [`UserSockets`], where each signed-in user's sockets are (node and room),
//!   mirrored into the cache so a change that concerns one user reaches exactly their nodes.
//!
//! Errors are [`AccessError`]; only `http/error.rs` turns them into HTTP answers.

pub mod directory;
pub mod grant;
pub mod live;
pub mod user_sockets;

pub use directory::{SessionDirectory, recheck_recorded};
pub use grant::{Grant, Revoked, SessionRole};
pub use live::{LiveGrants, Registration};
pub use user_sockets::UserSockets;

/// Why a session could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no such session")]
    SessionNotFound,
    /// Concurrent changes kept winning the optimistic update; the caller may try again.
    #[error("the session kept changing concurrently; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] storage::Error),
}
