//! Persistence for CodeCrafter: the store traits and their backends.
//!
//! The server (loading a room) and the workers (merging snapshots) both use these traits, which is
//! why storage is its own crate. Each backend lives beside its I/O dependency; every backend must
//! pass the one suite in [`conformance`].

pub mod conformance;
mod embedded;
mod low_priority;
mod snapshot;

pub use embedded::EmbeddedStore;
pub use snapshot::{MergeFn, SnapshotStore, SnapshotWrite};

/// What can go wrong talking to a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("storage task failed: {0}")]
    Task(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
