//! The room's fan-out writer: whoever queued into a room that had no writer writes its rounds
//! (`round.rs`), outside the room's lock, until nothing is queued. A busy round (several items
//! merged) for many clients is split into parts written by several worker threads at once
//! (`--fanout-split-peers`); the next round starts only once every part of this one is written,
//! so each client still gets its rounds in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::round::{self, Out};
use super::{ConnId, Peer, Room, panic_text};
use crate::telemetry::Metrics;

/// Rounds one writer writes before handing a busy room's fan-out to a task of its own, so that
/// the connection that happened to become the writer goes back to its own client.
const ROUNDS_PER_TURN: usize = 8;

impl Room {
    /// Write the fan-out's rounds until nothing is queued. Called, outside the lock, by whoever
    /// queued into a room that had no writer.
    ///
    /// A client cut as too slow is closed with 1013 (its connection drains what it has, then
    /// closes) and the room forgets it: it resyncs on reconnect instead of silently missing an
    /// update. A panic while writing fails the room, as one under its lock does.
    pub(super) fn write_rounds(self: &Arc<Self>) {
        loop {
            if !self.write_turn() {
                return;
            }
            // Still busy after a turn: the rest goes to a task of its own (outside a runtime,
            // nobody else can take it, so this thread goes on).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let room = self.clone();
                runtime.spawn(async move { room.write_rounds() });
                return;
            }
        }
    }

    /// Up to [`ROUNDS_PER_TURN`] rounds; true when this writer is still the writer after them.
    fn write_turn(self: &Arc<Self>) -> bool {
        for _ in 0..ROUNDS_PER_TURN {
            let Some((items, peers)) = self.take_round() else {
                return false;
            };
            let busy = items.len() > 1;
            let outs = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| round::build(items))) {
                Ok(outs) => outs,
                Err(panic) => {
                    self.fail(&panic_text(&*panic));
                    return false;
                }
            };
            Metrics::get().fanout_rounds.increment(1);
            // Only a round that merged several items is split: one item means nothing queued behind
            // the last round, and then a single thread writes it sooner than tasks would start.
            let runtime = tokio::runtime::Handle::try_current().ok().filter(|_| busy);
            let threads = runtime.as_ref().map_or(1, |runtime| runtime.metrics().num_workers());
            let parts = parts(peers.len(), self.fanout_split_peers, threads);
            if parts > 1
                && let Some(runtime) = runtime
            {
                // Every part is a task, none written here: the task a worker spawns last waits in
                // that worker's LIFO slot, which no other worker may steal, so with two parts the
                // writer's own would run on this thread right after the spawned one, one after the
                // other. Spawned, all but the last are in the queue any idle worker steals from.
                let split = Arc::new(SplitRound::new(self.clone(), outs, peers, parts));
                for part in 0..parts {
                    let split = split.clone();
                    runtime.spawn(async move {
                        if split.write_part(part) {
                            split.room.write_rounds(); // the part written last goes on
                        }
                    });
                }
                return false;
            }
            if !self.write_part(&outs, &peers) {
                return false;
            }
        }
        true
    }

    /// The next round's items and the clients to write it to, or `None` (and the writer leaves)
    /// when nothing is queued. Wakes the senders waiting on a backlog once it is gone.
    fn take_round(&self) -> Option<(Vec<round::Item>, Vec<Peer>)> {
        let mut state = self.state.lock();
        let round = state.rounds.take().map(|items| (items, state.peers.clone()));
        if self.round_backlogged.load(Ordering::Relaxed) && !state.rounds.backlogged() {
            self.round_backlogged.store(false, Ordering::Relaxed);
            self.round_drained.notify_waiters();
        }
        round
    }

    /// Write `outs` to `peers` and forget the clients it cut. False if the room failed.
    fn write_part(self: &Arc<Self>, outs: &[Out], peers: &[Peer]) -> bool {
        self.write_contained(outs, peers).map(|forget| self.forget(&forget)).is_some()
    }

    /// [`round::write`], a panic in it failing the room (`None`) instead of the thread's task.
    fn write_contained(self: &Arc<Self>, outs: &[Out], peers: &[Peer]) -> Option<Vec<ConnId>> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| round::write(outs, peers)))
            .map_err(|panic| self.fail(&panic_text(&*panic)))
            .ok()
    }

    fn forget(&self, conns: &[ConnId]) {
        if !conns.is_empty() {
            self.state.lock().peers.retain(|peer| !conns.contains(&peer.id));
        }
    }

    /// Completes once less than a round's worth waits for the fan-out. A client's connection
    /// awaits it after each frame it sends, so that clients sending faster than the room can
    /// write are slowed down (their TCP windows fill) instead of queueing in memory without bound.
    pub async fn round_backlog(&self) {
        let backlogged = || self.round_backlogged.load(Ordering::Relaxed) && !self.is_failed();
        while backlogged() {
            let drained = self.round_drained.notified();
            tokio::pin!(drained);
            // Registered before the second look, so a notification in between is not missed.
            drained.as_mut().enable();
            if !backlogged() {
                return;
            }
            drained.await;
        }
    }
}

/// How many parts a round for `peers` clients is split into: one per `split_peers` clients (at
/// least that many in each), at most one per worker thread (more would only wait for a thread, each
/// costing a task wake-up), one when splitting is off (0) or the round is small.
fn parts(peers: usize, split_peers: usize, threads: usize) -> usize {
    peers.checked_div(split_peers).map_or(1, |parts| parts.clamp(1, threads.max(1)))
}

/// One round written in parts by several threads; whoever finishes the last part goes on.
struct SplitRound {
    room: Arc<Room>,
    outs: Vec<Out>,
    peers: Vec<Peer>,
    parts: usize,
    left: AtomicUsize,
    forget: Mutex<Vec<ConnId>>,
}

impl SplitRound {
    fn new(room: Arc<Room>, outs: Vec<Out>, peers: Vec<Peer>, parts: usize) -> Self {
        Self { room, outs, peers, parts, left: AtomicUsize::new(parts), forget: Mutex::new(Vec::new()) }
    }

    /// Write part `part` (of `parts` nearly equal runs of clients). True for the part finished
    /// last, once the room has forgotten every client the round cut: its writer writes the next
    /// round. A part that panics fails the room; the others still finish.
    fn write_part(&self, part: usize) -> bool {
        let size = self.peers.len().div_ceil(self.parts);
        let peers = self.peers.get(part * size..((part + 1) * size).min(self.peers.len())).unwrap_or(&[]);
        if let Some(forget) = self.room.write_contained(&self.outs, peers) {
            self.forget.lock().extend(forget);
        }
        if self.left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        self.room.forget(&std::mem::take(&mut *self.forget.lock()));
        !self.room.is_failed()
    }
}

#[cfg(test)]
mod tests {
    use super::parts;

    #[test]
    fn a_round_is_split_into_parts_of_at_least_the_configured_size_one_per_thread_at_most() {
        assert_eq!(parts(1000, 0, 8), 1, "off");
        assert_eq!(parts(99, 100, 8), 1);
        assert_eq!(parts(199, 100, 8), 1);
        assert_eq!(parts(200, 100, 8), 2);
        assert_eq!(parts(1000, 100, 8), 8, "one part per worker thread");
        assert_eq!(parts(1000, 100, 2), 2);
        assert_eq!(parts(1000, 100, 0), 1);
    }
}
