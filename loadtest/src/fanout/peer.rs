//! One fan-out client task: connect and sync, then receive (and, for writers, send on a paced
//! schedule) until the run is cancelled. Receiving is allocation-free apart from tungstenite's frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use protocol::{Message, SyncMessage, decode_frame};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yrs::{Doc, Map as _, MapRef, Text as _, TextRef, Transact as _};

use super::converge::{Fingerprint, fingerprints};
use crate::cli::{Op, Workload};
use crate::client::{self, Endpoint, Event, Local, Ws};
use crate::marker::{self, Marker};
use crate::report::{new_histogram, record_latency};

/// Counters every client task adds to; read by the orchestrator while the run goes on.
pub struct Shared {
    /// Unix µs of the run's time zero (set before writers start).
    pub start_us: AtomicU64,
    /// Deliveries per second since time zero, by receive time.
    pub per_second: Vec<AtomicU64>,
    /// All deliveries so far.
    pub delivered: AtomicU64,
    pub workload: Workload,
    pub connect: Semaphore,
    pub cancel: CancellationToken,
}

/// What a client saw; merged over all clients at the end.
pub struct RecvStats {
    /// Latency (µs) of updates sent in the measured window.
    pub hist: Histogram<u64>,
    pub delivered: u64,
    /// Updates without a readable marker (someone else wrote to the room?).
    pub unmarked: u64,
    /// Empty updates (`[0, 0]`): not deliveries; a server relaying clients' empty sync step2.
    pub empty: u64,
    /// A writer's own updates sent back to it (y-websocket-server and Hocuspocus do this; not
    /// deliveries).
    pub echoes: u64,
    /// This client's writer index, if it writes.
    own_writer: Option<u32>,
    /// Updates whose sequence number was not the previous one + 1 (lost, duplicated or reordered).
    pub gaps: u64,
    /// Frames the protocol decoder refused.
    pub malformed: u64,
    /// The first update without a marker, kept to show what it was.
    pub first_unmarked: Option<Vec<u8>>,
    last_seq: Vec<Option<u32>>,
}

impl RecvStats {
    pub fn new(writers: usize, own_writer: Option<u32>) -> Self {
        Self {
            hist: new_histogram(),
            delivered: 0,
            unmarked: 0,
            empty: 0,
            echoes: 0,
            own_writer,
            gaps: 0,
            malformed: 0,
            first_unmarked: None,
            last_seq: vec![None; writers],
        }
    }

    fn on_update(&mut self, update: &[u8], now_us: u64, shared: &Shared) {
        // No structs, empty delete set: carries nothing, so it is no delivery. Servers that relay
        // every client's sync step2 (even a fresh client's empty one) send these.
        if update == [0, 0] {
            self.empty += 1;
            return;
        }
        // Every token counts, not just the first: a server may merge several writers' updates
        // into one message (Hocuspocus merges what arrives within one flush window).
        let (mut at, mut tokens) = (0, 0);
        while let Some((m, range)) = marker::find_from(update, at) {
            at = range.end;
            tokens += 1;
            self.on_token(m, now_us, shared);
        }
        if tokens == 0 {
            self.count_delivery(now_us, shared);
            self.unmarked += 1;
            if self.first_unmarked.is_none() {
                self.first_unmarked = Some(update.iter().take(64).copied().collect());
            }
        }
    }

    /// One writer's update, found in what the server relayed.
    fn on_token(&mut self, m: Marker, now_us: u64, shared: &Shared) {
        if self.own_writer == Some(m.writer) {
            self.echoes += 1;
            return;
        }
        self.count_delivery(now_us, shared);
        if m.seq >= shared.workload.warmup_updates() {
            record_latency(&mut self.hist, now_us.saturating_sub(m.sent_us));
        }
        match self.last_seq.get_mut(m.writer as usize) {
            Some(slot) => {
                if m.seq != slot.map_or(0, |s| s + 1) {
                    self.gaps += 1;
                }
                *slot = Some(m.seq);
            }
            None => self.unmarked += 1,
        }
    }

    fn count_delivery(&mut self, now_us: u64, shared: &Shared) {
        self.delivered += 1;
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        let second = now_us.saturating_sub(shared.start_us.load(Ordering::Relaxed)) / 1_000_000;
        let last = shared.per_second.len() - 1;
        shared.per_second[(second as usize).min(last)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Sent once by each writer after its last update.
pub struct WriterDone {
    pub room: usize,
    pub writer: u32,
    pub sent: u32,
    pub measured_sent: u32,
    pub max_lag: Duration,
    pub lag_sum: Duration,
    pub content: Fingerprint,
}

/// A writer's document and paced schedule: update k is due at `first + k * period`.
struct Writer {
    doc: Doc,
    text: TextRef,
    map: MapRef,
    op: Op,
    index: u32,
    first: Option<Instant>,
    period: Duration,
    next: u32,
    total: u32,
    warmup: u32,
    max_lag: Duration,
    lag_sum: Duration,
}

impl Writer {
    fn new(index: u32, w: &Workload) -> Self {
        let doc = Doc::new();
        Self {
            text: doc.get_or_insert_text("text"),
            map: doc.get_or_insert_map("map"),
            doc,
            op: w.op,
            index,
            first: None,
            period: Duration::from_secs_f64(1.0 / f64::from(w.rate)),
            next: 0,
            total: w.total_updates(),
            warmup: w.warmup_updates(),
            max_lag: Duration::ZERO,
            lag_sum: Duration::ZERO,
        }
    }

    fn due(&self) -> Option<Instant> {
        let first = self.first?;
        (self.next < self.total).then(|| first + self.period * self.next)
    }

    /// Makes update number `next` as one transaction; returns the framed sync-update message.
    fn make_update(&mut self, due: Instant) -> Bytes {
        let lag = Instant::now().saturating_duration_since(due);
        self.max_lag = self.max_lag.max(lag);
        self.lag_sum += lag;
        let token = Marker { sent_us: marker::now_us(), writer: self.index, seq: self.next }.text();
        let mut txn = self.doc.transact_mut();
        match self.op {
            Op::Text => self.text.push(&mut txn, &token),
            Op::Map => {
                self.map.insert(&mut txn, format!("{}:{}", self.index, self.next), token);
            }
        }
        let update = txn.encode_update_v1();
        drop(txn);
        self.next += 1;
        Message::Sync(SyncMessage::Update(&update)).encode_to_vec().into()
    }

    fn done(&self, room: usize, writers: usize) -> WriterDone {
        let content = fingerprints(&self.doc, self.op, writers).0.swap_remove(self.index as usize);
        WriterDone {
            room,
            writer: self.index,
            sent: self.next,
            measured_sent: self.next.saturating_sub(self.warmup),
            max_lag: self.max_lag,
            lag_sum: self.lag_sum,
            content,
        }
    }
}

/// Everything one client task needs.
pub struct ClientSpec {
    pub room: usize,
    /// Position in the room; the first `writers` clients write.
    pub index: usize,
    pub endpoint: Endpoint,
    /// This writer's start offset within one period, so writers do not all fire at once.
    pub offset: Duration,
    pub shared: Arc<Shared>,
    pub ready: mpsc::Sender<Result<(), String>>,
    pub go: watch::Receiver<Option<Instant>>,
    pub done: mpsc::UnboundedSender<WriterDone>,
}

/// How a client ended.
pub struct ClientOutcome {
    pub stats: RecvStats,
    /// Why the connection ended early, if it did.
    pub error: Option<String>,
}

pub async fn run_client(mut spec: ClientSpec) -> ClientOutcome {
    let w = spec.shared.workload.clone();
    let is_writer = spec.index < w.writers;
    let mut stats = RecvStats::new(w.writers, is_writer.then_some(spec.index as u32));
    let mut writer = is_writer.then(|| Writer::new(spec.index as u32, &w));
    let connected = {
        let _permit = spec.shared.connect.acquire().await;
        let local = writer.as_ref().map_or(Local::Empty, |wr| Local::Doc(&wr.doc));
        client::connect_synced(&spec.endpoint, local).await
    };
    let mut ws = match connected {
        Ok((ws, _)) => ws,
        Err(e) => {
            let _ = spec.ready.send(Err(format!("{e:#}"))).await;
            return ClientOutcome { stats, error: Some(format!("{e:#}")) };
        }
    };
    let _ = spec.ready.send(Ok(())).await;
    let error = drive(&mut ws, &mut spec, writer.as_mut(), &mut stats).await.err();
    if error.is_none() {
        client::close(ws).await;
    }
    if let Some(wr) = writer.as_ref().filter(|wr| wr.next < wr.total) {
        // A writer cut short still reports, so expected deliveries count what it really sent.
        let _ = spec.done.send(wr.done(spec.room, w.writers));
    }
    ClientOutcome { stats, error }
}

/// The steady state: receive, answer step1s, send when an update is due, until cancelled.
async fn drive(
    ws: &mut Ws,
    spec: &mut ClientSpec,
    mut writer: Option<&mut Writer>,
    stats: &mut RecvStats,
) -> Result<(), String> {
    let shared = Arc::clone(&spec.shared);
    // Created once: a fresh `cancelled()` per received frame would lock the token's waiter list,
    // which every client task shares, twice per delivery.
    let cancelled = shared.cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let due = writer.as_deref().and_then(Writer::due);
        tokio::select! {
            biased;
            () = &mut cancelled => return Ok(()),
            // Only a writer that has not started yet listens for the go signal.
            changed = spec.go.changed(), if writer.as_ref().is_some_and(|wr| wr.first.is_none()) => {
                if changed.is_err() {
                    return Err("run ended before writers started".into());
                }
                if let (Some(wr), Some(t0)) = (writer.as_deref_mut(), *spec.go.borrow()) {
                    wr.first = Some(t0 + spec.offset);
                }
            }
            () = sleep_until(due) => {
                let Some(wr) = writer.as_deref_mut() else { continue };
                let frame = wr.make_update(due.unwrap_or_else(Instant::now));
                ws.send(frame).await.map_err(|e| format!("sending an update: {e}"))?;
                if wr.next == wr.total {
                    let _ = spec.done.send(wr.done(spec.room, shared.workload.writers));
                }
            }
            event = client::next_event(ws) => {
                let frame = match event {
                    Event::Frame(frame) => frame,
                    Event::Closed(why) => return Err(why),
                };
                let now_us = marker::now_us();
                let mut reply = None;
                for item in decode_frame(&frame) {
                    match item {
                        Ok((Message::Sync(SyncMessage::Update(update)), _)) => stats.on_update(update, now_us, &shared),
                        Ok((Message::Sync(SyncMessage::Step1(sv)), _)) => {
                            let local = writer.as_deref().map_or(Local::Empty, |wr| Local::Doc(&wr.doc));
                            reply = Some(local.step2(sv).map_err(|e| format!("{e:#}"))?);
                        }
                        Ok(_) => {}
                        Err(_) => stats.malformed += 1,
                    }
                }
                if let Some(reply) = reply {
                    ws.send(reply).await.map_err(|e| format!("sending step2: {e}"))?;
                }
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn shared() -> Shared {
        let cli = crate::cli::Cli::parse_from(["loadtest", "fanout", "--rooms", "1", "--writers", "3"]);
        let crate::cli::Command::Fanout(args) = cli.command else { unreachable!("fanout parsed") };
        Shared {
            start_us: AtomicU64::new(0),
            per_second: (0..2).map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicU64::new(0),
            workload: args.workload().expect("valid"),
            connect: Semaphore::new(1),
            cancel: CancellationToken::new(),
        }
    }

    /// A writer's update as the server relays it: one v1 update inserting `tokens` of writer w.
    fn update(tokens: &[(u32, u32)]) -> Vec<u8> {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("text");
        let mut txn = doc.transact_mut();
        for &(writer, seq) in tokens {
            text.push(&mut txn, &Marker { sent_us: 1, writer, seq }.text());
        }
        txn.encode_update_v1()
    }

    #[test]
    fn every_token_of_a_merged_update_is_a_delivery_and_own_tokens_are_echoes() {
        let shared = shared();
        // Writer 0 receives: writer 1's seq 0, then one merged update with its own seq 0 and
        // writers 1 and 2 (as Hocuspocus sends what arrived within one flush window).
        let mut stats = RecvStats::new(3, Some(0));
        stats.on_update(&update(&[(1, 0)]), 10, &shared);
        stats.on_update(&update(&[(0, 0), (1, 1), (2, 0)]), 20, &shared);
        stats.on_update(&[0, 0], 30, &shared);
        assert_eq!((stats.delivered, stats.echoes, stats.gaps, stats.empty), (3, 1, 0, 1));
        assert_eq!(shared.delivered.load(Ordering::Relaxed), 3);
        // A token skipped inside a merged update is a gap.
        stats.on_update(&update(&[(1, 3), (2, 1)]), 40, &shared);
        assert_eq!((stats.delivered, stats.gaps, stats.unmarked), (5, 1, 0));
        stats.on_update(b"no token", 50, &shared);
        assert_eq!((stats.delivered, stats.unmarked), (6, 1));
    }
}
