//! The relay's metrics: their descriptions, and handles resolved once so that publishing and
//! receiving never look a metric up by name.
//!
//! Handles bind to the recorder installed when they are resolved, so they are resolved on first
//! use, not at startup: a program that exports metrics installs its recorder before its first
//! relay call (the server resolves them right after installing its own, see [`get`]).

use std::sync::OnceLock;

use metrics::{Counter, Gauge};

/// The relay's counters. The connection gauge is apart ([`connected_gauge`]): only the Redis
/// relay has a connection to report, and a node on the in-process hub should not show one as down.
pub struct RelayMetrics {
    /// Messages taken from the Redis publish queue, before coalescing.
    pub queued: Counter,
    /// PUBLISH commands sent to Redis, after coalescing.
    pub published: Counter,
    /// Updates folded into an `Updates` envelope.
    pub coalesced: Counter,
    /// Updates and awareness not published because no other node holds the room.
    pub unheard: Counter,
    /// Messages dropped because a queue was full.
    pub dropped: Counter,
    /// Messages from other nodes that could not be decoded (here) or applied (by the receiver).
    pub rejected: Counter,
}

/// The handles, resolved against the global recorder on the first call.
pub fn get() -> &'static RelayMetrics {
    static METRICS: OnceLock<RelayMetrics> = OnceLock::new();
    METRICS.get_or_init(|| RelayMetrics {
        queued: metrics::counter!("codecrafter_relay_queued_total"),
        published: metrics::counter!("codecrafter_relay_published_total"),
        coalesced: metrics::counter!("codecrafter_relay_coalesced_total"),
        unheard: metrics::counter!("codecrafter_relay_unheard_total"),
        dropped: metrics::counter!("codecrafter_relay_dropped_total"),
        rejected: metrics::counter!("codecrafter_relay_rejected_total"),
    })
}

/// `codecrafter_relay_connected`, resolved once per Redis relay when it starts.
pub fn connected_gauge() -> Gauge {
    metrics::gauge!("codecrafter_relay_connected")
}

/// Describe every relay metric to the global recorder (HELP text). Call once, after installing it.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!("codecrafter_relay_connected", "1 while the Redis relay is connected, 0 while it is not");
    describe_counter!(
        "codecrafter_relay_queued_total",
        "Relay messages taken from the publish queue and sent to Redis (before coalescing)"
    );
    describe_counter!(
        "codecrafter_relay_published_total",
        "PUBLISH commands sent to Redis (after coalescing)"
    );
    describe_counter!(
        "codecrafter_relay_coalesced_total",
        "Room updates folded into another publish instead of being published alone"
    );
    describe_counter!(
        "codecrafter_relay_unheard_total",
        "Room updates and awareness not published because no other node holds the room"
    );
    describe_counter!(
        "codecrafter_relay_dropped_total",
        "Relay messages dropped because a queue was full (a resync of the rooms follows)"
    );
    describe_counter!(
        "codecrafter_relay_rejected_total",
        "Relay messages from other nodes that could not be decoded or applied"
    );
}
