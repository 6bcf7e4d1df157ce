//! The workers' metrics: their descriptions, for whichever process installs the recorder (the
//! server's `telemetry.rs` calls [`describe`]; a worker process will too), and their handles.
//!
//! Handles are resolved once, on first use rather than at startup: a handle binds to the recorder
//! installed when it is resolved, and the server installs its Prometheus recorder before it starts
//! the queue.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};

use crate::kind::JobKind;

/// HELP texts of every metric this crate registers. Call once, after installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "codecrafter_persist_lag_seconds",
        "From a room's first unsaved change to its snapshot being durable"
    );
    describe_counter!("codecrafter_persist_errors_total", "Failed snapshot writes and merges");
    describe_counter!(
        "codecrafter_persist_writes_total",
        "Room snapshots written durably by the snapshot worker"
    );
    describe_counter!("codecrafter_jobs_handled_total", "Jobs a handler completed (acked), by kind");
    describe_counter!(
        "codecrafter_jobs_failed_total",
        "Jobs in a batch that failed transiently and is retried with backoff, by kind (each retry counts again)"
    );
    describe_histogram!(
        "codecrafter_job_handler_seconds",
        metrics::Unit::Seconds,
        "Time a handler took for one batch of jobs, by kind"
    );
    describe_gauge!(
        "codecrafter_queue_messages_ready",
        "Messages ready in a broker work queue (the queue's lag), by queue; polled by codecrafter-worker"
    );
    describe_counter!(
        "codecrafter_persist_updates_total",
        "Document updates those snapshot writes carried (a room's journal batches many into one job)"
    );
    describe_gauge!(
        "codecrafter_outbox_jobs",
        "Jobs held on disk because the broker was unreachable, waiting to be published"
    );
    describe_gauge!("codecrafter_outbox_bytes", "Bytes of jobs held in the outbox");
    describe_gauge!(
        "codecrafter_outbox_max_bytes",
        "The outbox's cap (--outbox-max-mb): past it, new jobs are refused while the broker is away"
    );
    describe_counter!(
        "codecrafter_outbox_replayed_total",
        "Jobs published from the outbox once the broker was back"
    );
    describe_counter!(
        "codecrafter_outbox_refused_total",
        "Jobs refused because the outbox was full (chat refused; a room's journal retries from memory)"
    );
    describe_gauge!("codecrafter_broker_connected", "1 while this process has a working link to the broker");
    describe_counter!(
        "codecrafter_chat_writes_total",
        "Chat messages written to the store by the chat worker (a redelivery counts again)"
    );
    describe_counter!(
        "code_executions_total",
        "Code runs ended, by language and outcome: completed (ran to its end, any exit code), timed_out, oom_killed, output_truncated, failed (the sandbox could not run it or broke mid-run), cancelled (its worker stopped during the run)"
    );
    describe_histogram!(
        "code_execution_duration_seconds",
        metrics::Unit::Seconds,
        "Wall-clock time of a code run, compile included, by language"
    );
    describe_histogram!(
        "code_execution_first_byte_seconds",
        metrics::Unit::Seconds,
        "From a run's submission to its first output reaching the worker, by language"
    );
    describe_gauge!("code_executions_running", "Code runs in progress on this process");
    describe_histogram!(
        "code_execution_queue_wait_seconds",
        metrics::Unit::Seconds,
        "From a run's submission to its start on a worker"
    );
    describe_counter!(
        "code_execution_store_gave_up_total",
        "Execution record writes abandoned after their retries (the run's result is then missing from history)"
    );
    describe_counter!(
        "codecrafter_jobs_dead_lettered_total",
        "Jobs set aside because they can never succeed (poison, no handler for their kind, a handler panic), by kind"
    );
    // The Docker sandbox's (`exec/docker/metrics.rs`).
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
    describe_gauge!(
        "code_execution_queue_depth",
        "Runs waiting to start: the in-process execution queue, or the broker's execution_jobs as last read"
    );
}

/// The histogram buckets of the workers' metrics, for every recorder that exports them (the worker
/// binary's, and the server's, which runs the same jobs in process when it has no broker): without
/// them the exporter renders summaries, which cannot be aggregated across processes.
pub fn histogram_buckets() -> [(&'static str, &'static [f64]); 6] {
    const HANDLER: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    const LAG: &[f64] = &[0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0];
    // A run lasts up to its timeout (10 s by default); its first byte and its wait in the queue
    // are what a user feels as "Run" being slow.
    const RUN: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0];
    [
        ("codecrafter_job_handler_seconds", HANDLER),
        ("codecrafter_persist_lag_seconds", LAG),
        ("code_execution_duration_seconds", RUN),
        ("code_execution_first_byte_seconds", RUN),
        ("code_execution_queue_wait_seconds", RUN),
        ("code_execution_container_start_seconds", HANDLER),
    ]
}

/// Resolve every handle now (after the recorder is installed), so `/metrics` lists each job kind's
/// counters at zero from the start rather than from their first increment.
pub fn register() {
    Metrics::get();
}

pub(crate) struct Metrics {
    pub persist_writes: Counter,
    pub persist_updates: Counter,
    pub persist_lag: Histogram,
    pub merge_errors: Counter,
    pub chat_writes: Counter,
    dead_lettered: [Counter; JobKind::COUNT],
    handled: [Counter; JobKind::COUNT],
    failed: [Counter; JobKind::COUNT],
    handler_seconds: [Histogram; JobKind::COUNT],
}

impl Metrics {
    pub(crate) fn get() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(|| Metrics {
            persist_writes: metrics::counter!("codecrafter_persist_writes_total"),
            persist_updates: metrics::counter!("codecrafter_persist_updates_total"),
            persist_lag: metrics::histogram!("codecrafter_persist_lag_seconds"),
            merge_errors: metrics::counter!("codecrafter_persist_errors_total", "kind" => "merge"),
            chat_writes: metrics::counter!("codecrafter_chat_writes_total"),
            dead_lettered: JobKind::ALL.map(
                |kind| metrics::counter!("codecrafter_jobs_dead_lettered_total", "kind" => kind.as_str()),
            ),
            handled: JobKind::ALL
                .map(|kind| metrics::counter!("codecrafter_jobs_handled_total", "kind" => kind.as_str())),
            failed: JobKind::ALL
                .map(|kind| metrics::counter!("codecrafter_jobs_failed_total", "kind" => kind.as_str())),
            handler_seconds: JobKind::ALL
                .map(|kind| metrics::histogram!("codecrafter_job_handler_seconds", "kind" => kind.as_str())),
        })
    }

    pub(crate) fn dead_lettered(&self, kind: JobKind) -> &Counter {
        &self.dead_lettered[kind as usize]
    }

    pub(crate) fn handled(&self, kind: JobKind) -> &Counter {
        &self.handled[kind as usize]
    }

    pub(crate) fn failed(&self, kind: JobKind) -> &Counter {
        &self.failed[kind as usize]
    }

    pub(crate) fn handler_seconds(&self, kind: JobKind) -> &Histogram {
        &self.handler_seconds[kind as usize]
    }
}

/// The lag gauge of one broker work queue (`queue` is its name), set by whoever polls the broker.
pub fn queue_messages_ready(queue: &str) -> metrics::Gauge {
    metrics::gauge!("codecrafter_queue_messages_ready", "queue" => queue.to_owned())
}

/// The outbox's handles (`outbox/`), resolved when an outbox starts.
pub(crate) struct OutboxMetrics {
    pub jobs: Gauge,
    pub bytes: Gauge,
    pub replayed: Counter,
    pub refused: Counter,
    pub connected: Gauge,
    pub max_bytes: Gauge,
}

impl OutboxMetrics {
    pub(crate) fn get() -> Self {
        Self {
            jobs: metrics::gauge!("codecrafter_outbox_jobs"),
            bytes: metrics::gauge!("codecrafter_outbox_bytes"),
            replayed: metrics::counter!("codecrafter_outbox_replayed_total"),
            refused: metrics::counter!("codecrafter_outbox_refused_total"),
            connected: metrics::gauge!("codecrafter_broker_connected"),
            max_bytes: metrics::gauge!("codecrafter_outbox_max_bytes"),
        }
    }
}

/// Why a run ended: the `outcome` label of `code_executions_total`, a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOutcome {
    Completed,
    TimedOut,
    OomKilled,
    OutputTruncated,
    Failed,
    Cancelled,
}

impl RunOutcome {
    const ALL: [RunOutcome; 6] = [
        RunOutcome::Completed,
        RunOutcome::TimedOut,
        RunOutcome::OomKilled,
        RunOutcome::OutputTruncated,
        RunOutcome::Failed,
        RunOutcome::Cancelled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::TimedOut => "timed_out",
            RunOutcome::OomKilled => "oom_killed",
            RunOutcome::OutputTruncated => "output_truncated",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
        }
    }
}

/// One language's run handles.
struct LanguageMetrics {
    outcomes: [Counter; RunOutcome::ALL.len()],
    duration: Histogram,
    first_byte: Histogram,
}

impl LanguageMetrics {
    fn new(language: &str) -> Self {
        let label = || language.to_owned();
        Self {
            outcomes: RunOutcome::ALL.map(|outcome| {
                metrics::counter!("code_executions_total", "language" => label(), "outcome" => outcome.as_str())
            }),
            duration: metrics::histogram!("code_execution_duration_seconds", "language" => label()),
            first_byte: metrics::histogram!("code_execution_first_byte_seconds", "language" => label()),
        }
    }
}

/// The execution handler's handles, resolved once when it is built (after the recorder), one set per
/// language the sandbox knows and one, `other`, for any other id: a job's language is the server's
/// word, but a label must never take values from input without a bound.
pub(crate) struct ExecMetrics {
    languages: std::collections::HashMap<String, LanguageMetrics>,
    other: LanguageMetrics,
    pub running: Gauge,
    pub queue_wait: Histogram,
    pub store_gave_up: Counter,
}

impl ExecMetrics {
    pub(crate) fn new(languages: impl IntoIterator<Item = String>) -> Self {
        let languages = languages.into_iter().map(|id| (id.clone(), LanguageMetrics::new(&id))).collect();
        Self {
            languages,
            other: LanguageMetrics::new("other"),
            running: metrics::gauge!("code_executions_running"),
            queue_wait: metrics::histogram!("code_execution_queue_wait_seconds"),
            store_gave_up: metrics::counter!("code_execution_store_gave_up_total"),
        }
    }

    fn language(&self, language: &str) -> &LanguageMetrics {
        self.languages.get(language).unwrap_or(&self.other)
    }

    pub(crate) fn ended(&self, language: &str, outcome: RunOutcome) -> &Counter {
        &self.language(language).outcomes[outcome as usize]
    }

    pub(crate) fn duration(&self, language: &str) -> &Histogram {
        &self.language(language).duration
    }

    pub(crate) fn first_byte(&self, language: &str) -> &Histogram {
        &self.language(language).first_byte
    }
}
