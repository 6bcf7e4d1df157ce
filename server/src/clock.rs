//! Wall-clock time in the one unit the pure crates take as an argument: the workspace's one clock,
//! [`storage::clock`].

pub use storage::clock::{unix_ms, unix_secs};
