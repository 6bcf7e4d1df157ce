//! Logs and metrics: tracing setup, the Prometheus recorder, and pre-registered metric handles so
//! the hot path increments counters without looking up names or labels.
//!
//! Every metric any crate of the workspace registers is described here (HELP text), the relay's
//! by `relay::metrics::describe` and the workers' by `workers::metrics::describe`, called from
//! here: a test scans the sources for `counter!`/`gauge!`/`histogram!` names and fails on one
//! without a description.

mod process;

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use protocol::MessageKind;

/// The log format and setup every CodeCrafter process shares.
pub use workers::process::{LogFormat, init_tracing};

/// What `/metrics` serves: the recorder's metrics, then the `process_*` ones.
pub fn render() -> String {
    Metrics::get();
    let mut text = prometheus().render();
    text.push_str(&process::render());
    text
}

/// The process-wide Prometheus recorder (installed once: several servers in one test process share it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let latency = [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5];
        let journal = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0];
        // The workers' histograms too: this process runs their jobs itself when it has no broker.
        let recorder = workers::metrics::histogram_buckets()
            .into_iter()
            .chain([
                ("codecrafter_fanout_seconds", &latency[..]),
                ("codecrafter_journal_seconds", &journal[..]),
            ])
            .try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
                b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            })
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is already global (an embedding program's): keep theirs.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        relay::metrics::describe();
        // Every job kind's counters at zero from the start, as the worker binary lists them.
        workers::metrics::register();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    // The job queue's and workers' own (persistence, dead letters), described where they live.
    workers::metrics::describe();
    describe_gauge!(
        "codecrafter_build_info",
        "Always 1; the labels name the running build (version, profile, target arch and os)"
    );
    describe_gauge!("codecrafter_connections", "Open WebSocket connections");
    describe_gauge!("codecrafter_rooms", "Rooms held in memory");
    describe_counter!("codecrafter_messages_in_total", "Yjs/app messages received, by type");
    describe_counter!("codecrafter_messages_out_total", "Frames delivered to clients, by type");
    describe_counter!(
        "codecrafter_fanout_rounds_total",
        "Rounds of the fan-out written (one frame per client, or a few merged ones, in one writev each)"
    );
    describe_counter!(
        "codecrafter_fanout_merged_total",
        "Updates that queued while a round was being written and went out merged into one frame, by type"
    );
    describe_counter!("codecrafter_bytes_in_total", "WebSocket payload bytes received");
    describe_counter!("codecrafter_bytes_out_total", "WebSocket payload bytes queued to clients");
    describe_histogram!(
        "codecrafter_fanout_seconds",
        "From receiving an update to writing it to every other client of the room (or queueing it for a full socket)"
    );
    describe_counter!("codecrafter_room_evictions_total", "Idle rooms persisted and evicted from memory");
    describe_counter!(
        "codecrafter_presence_write_errors_total",
        "Failed writes of this node's user-socket records to the cache"
    );
    describe_counter!(
        "codecrafter_slow_consumers_closed_total",
        "Clients closed with 1013 because they fell too far behind"
    );
    describe_counter!("codecrafter_connections_closed_total", "Connections closed by the server, by reason");
    describe_counter!(
        "codecrafter_rate_limited_total",
        "API requests and WebSocket connects refused with 429"
    );
    describe_counter!(
        "codecrafter_permission_denied_total",
        "Document updates refused because the client may not write"
    );
    describe_gauge!(
        "codecrafter_http_connections",
        "Open plain HTTP connections (a connection upgraded to a WebSocket counts in codecrafter_connections instead)"
    );
    describe_counter!(
        "codecrafter_http_connections_refused_total",
        "HTTP connections answered 503 at accept, by the cap they would pass (total, per_ip)"
    );
    describe_counter!(
        "codecrafter_http_timeouts_total",
        "HTTP connections or requests cut by a timeout: header (no complete request head in time, idle keep-alive included), request (408/503), write (client not reading)"
    );
    describe_counter!(
        "codecrafter_room_failures_total",
        "Rooms whose document failed inside the CRDT library (or whose handling panicked): clients closed with 1011, room reloaded from storage"
    );
    describe_gauge!(
        "codecrafter_rooms_quarantined",
        "Failed rooms not reloaded from storage yet (/ready is degraded while above 0)"
    );
    describe_counter!(
        "codecrafter_journal_batches_total",
        "Batches of accepted updates made durable by the rooms' journals (each one job, persisted: broker confirm or store commit)"
    );
    describe_counter!(
        "codecrafter_journal_updates_total",
        "Accepted updates made durable by the rooms' journals"
    );
    describe_counter!(
        "codecrafter_journal_errors_total",
        "Journal batches that failed to persist and are retried (broker or store unavailable)"
    );
    describe_histogram!(
        "codecrafter_journal_seconds",
        "From the oldest update of a journal batch being accepted to the batch being durable (the saved acknowledgement's delay)"
    );
    describe_counter!(
        "codecrafter_awareness_refused_total",
        "Awareness updates relayed without entries for client ids another connection holds"
    );
    describe_counter!("codecrafter_chat_messages_total", "Chat messages accepted and broadcast");
    describe_counter!(
        "codecrafter_chat_refused_total",
        "Chat messages refused, by reason (not_saved: broadcast but could not be made durable)"
    );
    describe_gauge!(
        "codecrafter_execution_available",
        "1 while runs can start (the runners /ready names under execution are reachable), else 0"
    );
    describe_counter!(
        "codecrafter_executions_submitted_total",
        "Runs accepted, recorded and queued (socket and HTTP together)"
    );
    describe_counter!(
        "codecrafter_executions_refused_total",
        "Runs refused before they were queued, by the refusal's code"
    );
}

/// The codes a run can be refused with after it was read, as labelled in
/// `codecrafter_executions_refused_total` (see `crate::exec::SubmitRefusal::code`).
const EXECUTION_REFUSALS: [&str; 6] = [
    "unknown_language",
    "execution_unavailable",
    "code_too_long",
    "stdin_too_long",
    "too_many_runs",
    "run_not_queued",
];

/// Why a chat message was refused, as labelled in `codecrafter_chat_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRefusal {
    Anonymous,
    Malformed,
    Empty,
    TooLong,
    RateLimited,
    /// Its room's lane was full.
    Busy,
    /// Accepted and broadcast, but the queue could not make it durable.
    NotSaved,
    /// Refused up front: the broker is away and this server's outbox is full.
    Unavailable,
}

impl ChatRefusal {
    const ALL: [ChatRefusal; 8] = [
        ChatRefusal::Anonymous,
        ChatRefusal::Malformed,
        ChatRefusal::Empty,
        ChatRefusal::TooLong,
        ChatRefusal::RateLimited,
        ChatRefusal::Busy,
        ChatRefusal::NotSaved,
        ChatRefusal::Unavailable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ChatRefusal::Anonymous => "anonymous",
            ChatRefusal::Malformed => "malformed",
            ChatRefusal::Empty => "empty",
            ChatRefusal::TooLong => "too_long",
            ChatRefusal::RateLimited => "rate_limited",
            ChatRefusal::Busy => "busy",
            ChatRefusal::NotSaved => "not_saved",
            ChatRefusal::Unavailable => "unavailable",
        }
    }
}

/// Why a connection was refused at accept, as labelled in
/// `codecrafter_http_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRefusal {
    /// `--max-http-connections` plain HTTP connections are open.
    Total,
    /// `--max-http-connections-per-ip` are open from this IP.
    PerIp,
}

impl HttpRefusal {
    pub fn label(self) -> &'static str {
        match self {
            HttpRefusal::Total => "total",
            HttpRefusal::PerIp => "per_ip",
        }
    }
}

/// The HTTP timeouts, as labelled in `codecrafter_http_timeouts_total`.
#[derive(Debug, Clone, Copy)]
pub enum HttpTimeout {
    Header,
    Request,
    Write,
}

impl HttpTimeout {
    pub fn label(self) -> &'static str {
        match self {
            HttpTimeout::Header => "header",
            HttpTimeout::Request => "request",
            HttpTimeout::Write => "write",
        }
    }
}

/// Handles resolved once; cloning a handle is an `Arc` clone, incrementing one is an atomic add.
pub struct Metrics {
    pub connections: Gauge,
    pub rooms: Gauge,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub fanout_rounds: Counter,
    fanout_merged: [Counter; 2],
    pub fanout: Histogram,
    pub evictions: Counter,
    pub persist_errors: Counter,
    pub slow_consumers: Counter,
    pub rate_limited: Counter,
    pub permission_denied: Counter,
    pub http_connections: Gauge,
    http_refused: [Counter; 2],
    http_timeouts: [Counter; 3],
    /// Held so the series is never dropped by an idle-timeout of the recorder.
    #[allow(dead_code)]
    build_info: Gauge,
    pub room_failures: Counter,
    pub rooms_quarantined: Gauge,
    pub awareness_refused: Counter,
    pub journal_batches: Counter,
    pub journal_updates: Counter,
    pub journal_errors: Counter,
    pub journal_latency: Histogram,
    /// Failed writes of this node's user-socket records (`codecrafter_presence_write_errors_total`).
    pub user_socket_write_errors: Counter,
    messages_in: [Counter; MessageKind::COUNT],
    messages_out: [Counter; MessageKind::COUNT],
    pub chat_messages: Counter,
    chat_refused: [Counter; ChatRefusal::ALL.len()],
    pub executions_submitted: Counter,
    /// Runs waiting to start (`code_execution_queue_depth`, described by the workers), read at
    /// each scrape.
    pub execution_queue_depth: Gauge,
    /// 1 while runs can start (runners reachable: Docker here, or a worker's), read at each scrape
    /// as `/ready` reads it, so an alert does not wait for someone to press Run.
    pub execution_available: Gauge,
    executions_refused: [Counter; EXECUTION_REFUSALS.len()],
}

impl Metrics {
    pub fn get() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(|| {
            prometheus();
            // The relay crate's handles bind to the recorder installed when first resolved: now,
            // before any relay exists.
            relay::metrics::get();
            let by_kind = |name: &'static str| {
                MessageKind::ALL.map(|kind| metrics::counter!(name, "type" => kind.as_str()))
            };
            Metrics {
                connections: metrics::gauge!("codecrafter_connections"),
                rooms: metrics::gauge!("codecrafter_rooms"),
                bytes_in: metrics::counter!("codecrafter_bytes_in_total"),
                bytes_out: metrics::counter!("codecrafter_bytes_out_total"),
                fanout_rounds: metrics::counter!("codecrafter_fanout_rounds_total"),
                fanout_merged: ["update", "awareness"]
                    .map(|kind| metrics::counter!("codecrafter_fanout_merged_total", "kind" => kind)),
                fanout: metrics::histogram!("codecrafter_fanout_seconds"),
                evictions: metrics::counter!("codecrafter_room_evictions_total"),
                persist_errors: metrics::counter!("codecrafter_persist_errors_total", "kind" => "write"),
                slow_consumers: metrics::counter!("codecrafter_slow_consumers_closed_total"),
                rate_limited: metrics::counter!("codecrafter_rate_limited_total"),
                permission_denied: metrics::counter!("codecrafter_permission_denied_total"),
                http_connections: metrics::gauge!("codecrafter_http_connections"),
                http_refused: [HttpRefusal::Total, HttpRefusal::PerIp].map(|why| {
                    metrics::counter!("codecrafter_http_connections_refused_total", "reason" => why.label())
                }),
                http_timeouts: [HttpTimeout::Header, HttpTimeout::Request, HttpTimeout::Write]
                    .map(|kind| metrics::counter!("codecrafter_http_timeouts_total", "kind" => kind.label())),
                build_info: {
                    let gauge = metrics::gauge!(
                        "codecrafter_build_info",
                        "version" => env!("CARGO_PKG_VERSION"),
                        "profile" => if cfg!(debug_assertions) { "debug" } else { "release" },
                        "arch" => std::env::consts::ARCH,
                        "os" => std::env::consts::OS,
                    );
                    gauge.set(1.0);
                    gauge
                },
                room_failures: metrics::counter!("codecrafter_room_failures_total"),
                rooms_quarantined: metrics::gauge!("codecrafter_rooms_quarantined"),
                awareness_refused: metrics::counter!("codecrafter_awareness_refused_total"),
                journal_batches: metrics::counter!("codecrafter_journal_batches_total"),
                journal_updates: metrics::counter!("codecrafter_journal_updates_total"),
                journal_errors: metrics::counter!("codecrafter_journal_errors_total"),
                journal_latency: metrics::histogram!("codecrafter_journal_seconds"),
                user_socket_write_errors: metrics::counter!("codecrafter_presence_write_errors_total"),
                messages_in: by_kind("codecrafter_messages_in_total"),
                messages_out: by_kind("codecrafter_messages_out_total"),
                chat_messages: metrics::counter!("codecrafter_chat_messages_total"),
                chat_refused: ChatRefusal::ALL
                    .map(|why| metrics::counter!("codecrafter_chat_refused_total", "reason" => why.label())),
                executions_submitted: metrics::counter!("codecrafter_executions_submitted_total"),
                execution_queue_depth: metrics::gauge!("code_execution_queue_depth"),
                execution_available: metrics::gauge!("codecrafter_execution_available"),
                executions_refused: EXECUTION_REFUSALS
                    .map(|code| metrics::counter!("codecrafter_executions_refused_total", "code" => code)),
            }
        })
    }

    pub fn chat_refused(&self, why: ChatRefusal) {
        self.chat_refused[why as usize].increment(1);
    }

    /// A run refused with `code` (one of [`EXECUTION_REFUSALS`]; another code is not counted).
    pub fn execution_refused(&self, code: &str) {
        if let Some(at) = EXECUTION_REFUSALS.iter().position(|known| *known == code) {
            self.executions_refused[at].increment(1);
        }
    }

    pub fn message_in(&self, kind: MessageKind) {
        self.messages_in[kind as usize].increment(1);
    }

    /// `n` updates of `kind` (a document update or awareness) went out merged into one frame.
    pub fn round_merged(&self, kind: MessageKind, n: u64) {
        let index = usize::from(kind != MessageKind::SyncUpdate);
        self.fanout_merged[index].increment(n);
    }

    pub fn messages_out(&self, kind: MessageKind, n: u64) {
        self.messages_out[kind as usize].increment(n);
    }

    pub fn http_refused(&self, why: HttpRefusal) {
        self.http_refused[why as usize].increment(1);
    }

    pub fn http_timeout(&self, kind: HttpTimeout) {
        self.http_timeouts[kind as usize].increment(1);
    }
}
