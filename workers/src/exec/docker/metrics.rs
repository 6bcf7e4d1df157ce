//! The Docker sandbox's metrics: their descriptions and the handles its hot path holds.

use metrics::{Counter, Gauge, Histogram};

use crate::exec::languages::LANGUAGES;

/// HELP texts of the sandbox's metrics; [`crate::metrics::describe`] calls it.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "code_execution_pool_ready",
        "Warm containers started and waiting for a program, by language"
    );
    describe_gauge!(
        "code_execution_containers_running",
        "Runs in progress: their container being readied or their program running"
    );
    describe_counter!(
        "code_execution_sweeper_removed_total",
        "Leftover runner containers removed by the sweeper (an earlier life of this process, or expired)"
    );
    describe_histogram!(
        "code_execution_container_start_seconds",
        metrics::Unit::Seconds,
        "From a run's start to its container ready for the program: taken from the warm pool, or created, attached and started (cold)"
    );
}

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
