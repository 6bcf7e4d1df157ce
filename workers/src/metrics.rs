//! The workers' metrics: their descriptions, for whichever process installs the recorder (the
//! server's `telemetry.rs` calls [`describe`]; a worker process will too), and their handles.
//!
//! Handles are resolved once, on first use rather than at startup: a handle binds to the recorder
//! installed when it is resolved, and the server installs its Prometheus recorder before it starts
//! the queue.

use std::sync::OnceLock;

use metrics::{Counter, Histogram};

use crate::kind::JobKind;

/// HELP texts of every metric this crate registers. Call once, after installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_histogram!(
        "codecrafter_persist_lag_seconds",
        "From a room's first unsaved change to its snapshot being durable"
    );
    describe_counter!("codecrafter_persist_errors_total", "Failed snapshot writes and merges");
    describe_counter!(
        "codecrafter_persist_writes_total",
        "Room snapshots written durably by the snapshot worker"
    );
    describe_counter!(
        "codecrafter_chat_writes_total",
        "Chat messages written to the store by the chat worker (a redelivery counts again)"
    );
    describe_counter!(
        "codecrafter_jobs_dead_lettered_total",
        "Jobs set aside because they can never succeed (poison, no handler for their kind, a handler panic), by kind"
    );
}

pub(crate) struct Metrics {
    pub persist_writes: Counter,
    pub persist_lag: Histogram,
    pub merge_errors: Counter,
    pub chat_writes: Counter,
    dead_lettered: [Counter; JobKind::COUNT],
}

impl Metrics {
    pub(crate) fn get() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(|| Metrics {
            persist_writes: metrics::counter!("codecrafter_persist_writes_total"),
            persist_lag: metrics::histogram!("codecrafter_persist_lag_seconds"),
            merge_errors: metrics::counter!("codecrafter_persist_errors_total", "kind" => "merge"),
            chat_writes: metrics::counter!("codecrafter_chat_writes_total"),
            dead_lettered: JobKind::ALL.map(
                |kind| metrics::counter!("codecrafter_jobs_dead_lettered_total", "kind" => kind.as_str()),
            ),
        })
    }

    pub(crate) fn dead_lettered(&self, kind: JobKind) -> &Counter {
        &self.dead_lettered[kind as usize]
    }
}
