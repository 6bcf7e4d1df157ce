//! The Docker sandbox's metrics: their descriptions and the handles its hot path holds.

use metrics::{Counter, Gauge, Histogram};

use crate::exec::languages::LANGUAGES;

/// Resolved once per sandbox: a handle binds to the recorder installed when it is resolved.
pub(super) struct SandboxMetrics {
    pub pool_ready: [Gauge; LANGUAGES.len()],
    pub running: Gauge,
    pub swept: Counter,
    pub start_warm: Histogram,
    pub start_cold: Histogram,
}

impl SandboxMetrics {
    pub(super) fn new() -> Self {
        Self {
            pool_ready: LANGUAGES
                .map(|language| metrics::gauge!("code_execution_pool_ready", "language" => language.id)),
            running: metrics::gauge!("code_execution_containers_running"),
            swept: metrics::counter!("code_execution_sweeper_removed_total"),
            start_warm: metrics::histogram!("code_execution_container_start_seconds", "path" => "warm"),
            start_cold: metrics::histogram!("code_execution_container_start_seconds", "path" => "cold"),
        }
    }
}
