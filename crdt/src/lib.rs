//! Room document engine on yrs: the pure core that holds each room's Yjs document and awareness.
//!
//! Nothing here does I/O or reads a clock: the server hands in bytes and the current time (u64
//! milliseconds) and gets bytes and values back.
//!
//! - [`validate_update`] walks an untrusted update before yrs sees it and refuses what yrs or Yjs
//!   would mishandle (`validate.rs`).
//! - [`RoomDoc`] wraps a `yrs::Doc` (UTF-16 offsets like Yjs, GC on). Every update is bounded in
//!   size and validated, and a rejected update leaves the document exactly as it was, even when
//!   yrs fails half-way through integrating it (`journal.rs`). It says what peers must be sent:
//!   the update's own bytes when it integrated exactly as sent, else yrs's encoding of what it
//!   added. Updates waiting for missing dependencies are kept as the bytes received rather than
//!   in yrs, whose encoding of them is broken (`ydoc.rs`, `replica.rs`). A panic inside yrs is
//!   caught and poisons the one document it happened in.
//! - [`merge_snapshots`] merges two stored v1 snapshots as a CRDT.
//! - [`AwarenessRegistry`] keeps y-protocols awareness state per Yjs client id, server side.

mod awareness;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod journal;
mod replica;
mod room;
pub mod validate;
mod ydoc;

pub use awareness::{Accepted, AwarenessChange, AwarenessLimits, AwarenessRegistry, Owner};
pub use room::{Applied, RoomDoc, is_self_contained, merge_snapshots, merge_updates};
pub use validate::{Invalid, validate_update};

/// Size bounds for one room's document. Both are counted in encoded v1 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single update accepted by [`RoomDoc::apply_update`] (one frame's payload).
    pub max_update_bytes: usize,
    /// Largest document, measured as the encoded state plus not-yet-measured accepted updates.
    pub max_doc_bytes: usize,
}

impl Default for Limits {
    /// 2 MiB per update leaves room for a large paste; 64 MiB per document keeps a room's memory
    /// (document, rollback journal and a snapshot being written) within a few hundred MiB.
    fn default() -> Self {
        Self { max_update_bytes: 2 * 1024 * 1024, max_doc_bytes: 64 * 1024 * 1024 }
    }
}

/// Everything this crate can refuse. Each rejection leaves the document or registry unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The update is larger than [`Limits::max_update_bytes`].
    #[error("update of {len} bytes is over the {max}-byte limit")]
    UpdateTooLarge { len: usize, max: usize },
    /// Accepting the update would take the document over [`Limits::max_doc_bytes`].
    #[error("document of about {size} bytes cannot take an update of {len} bytes (limit {max})")]
    DocTooLarge { size: usize, len: usize, max: usize },
    /// The bytes are not a v1 update (or snapshot).
    #[error("malformed update: {0}")]
    MalformedUpdate(#[source] yrs::encoding::read::Error),
    /// The update is one no well-behaved Yjs client sends and yrs or Yjs would mishandle (a clock
    /// range past 2^32, nesting past the stack, an encoding the two read differently...).
    #[error("update refused: {0}")]
    Refused(#[from] validate::Invalid),
    /// yrs panicked while reading or encoding this document: its state is broken. The document
    /// refuses every further call; the room must be dropped and reloaded from storage.
    #[error("document failed inside yrs and must be reloaded: {0}")]
    Poisoned(String),
    /// The update decoded but yrs refused to integrate it (for instance an item whose parent is
    /// not a shared type) or panicked. The partial integration was rolled back by rebuilding the
    /// document from the journal, which costs O(document): no Yjs client sends such an update, so
    /// the server should close the connection that did.
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    /// The bytes are not a v1 state vector.
    #[error("malformed state vector: {0}")]
    MalformedStateVector(#[source] yrs::encoding::read::Error),
    /// The bytes are not an awareness update payload.
    #[error("malformed awareness update: {0}")]
    MalformedAwareness(#[from] protocol::DecodeError),
    /// An awareness state is not JSON: browsers would throw on it part-way through the update.
    #[error("awareness state of client {client_id} is not JSON")]
    AwarenessStateNotJson { client_id: u64 },
    /// An awareness state is larger than [`AwarenessLimits::max_state_bytes`].
    #[error("awareness state of client {client_id} is {len} bytes, over the {max}-byte limit")]
    AwarenessStateTooLarge { client_id: u64, len: usize, max: usize },
    /// The update would make its connection hold more than [`AwarenessLimits::max_clients`] ids.
    #[error("a connection may hold {max} awareness client ids; this update makes {held}")]
    TooManyAwarenessClients { held: usize, max: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
