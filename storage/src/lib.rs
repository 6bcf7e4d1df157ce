//! Persistence for CodeCrafter: the store traits and their backends.
//!
//! The server (accounts, sessions, loading a room) and the workers (merging snapshots, saving chat
//! and executions) both use these traits, which is why storage is its own crate. Each backend lives
//! beside its I/O dependency; every backend must pass the one suite in `conformance` (feature `conformance`, tests only).

pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod embedded;
mod low_priority;
pub mod model;
mod mongo;
mod records;
mod snapshot;

pub use embedded::{DATABASE_FILE, EmbeddedStore};
pub use mongo::{IndexSpec, MongoConfig, MongoStore, mongo_index_plan};
pub use records::{ExecutionStore, LogFilter, LogStore, MessageStore, SessionStore, Store, UserStore};
pub use snapshot::{MergeFn, SnapshotStore, SnapshotWrite};

/// What can go wrong talking to a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("storage task failed: {0}")]
    Task(String),
    /// A unique field (`email`, `username`) already belongs to another record.
    #[error("{field} is already taken")]
    Duplicate { field: &'static str },
    /// The record changed since it was read (optimistic concurrency): re-read and retry.
    #[error("the record changed concurrently")]
    Stale,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
