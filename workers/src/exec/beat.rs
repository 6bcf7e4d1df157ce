//! What a worker that runs programs tells the servers, so that `/ready`, the languages list and
//! the refusal of runs nobody could take hold in the broker mode too: a heartbeat in Redis (hash
//! `{prefix}exec:runners`, one field per runner, refreshed every [`BEAT_EVERY`]).

use std::time::Duration;

use crate::exec::{LanguageInfo, SandboxStatus};

/// The Redis hash (after the key prefix) that holds one [`RunnerBeat`] per runner.
pub const RUNNERS_KEY: &str = "exec:runners";

/// How often a runner writes its beat.
pub const BEAT_EVERY: Duration = Duration::from_secs(5);

/// A beat older than this is a runner gone.
pub const BEAT_STALE: Duration = Duration::from_secs(15);

/// One runner's state, as JSON in its field of [`RUNNERS_KEY`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunnerBeat {
    /// The runner's owner id (its containers' `codecrafter.owner` label).
    pub owner: String,
    /// When the beat was written (unix ms).
    pub at_ms: i64,
    pub status: SandboxStatus,
    pub languages: Vec<LanguageInfo>,
    /// Runs it takes at once.
    pub concurrency: usize,
}
