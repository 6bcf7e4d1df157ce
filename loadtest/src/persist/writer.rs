//! One writer: an app client (`?app=1`) that connects and syncs, then appends to the room's text
//! (paced, or as fast as its window of unacknowledged updates allows) and times each update until
//! the `saved` that covers it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use protocol::{AppMessage, Message, SyncMessage, decode_frame};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yrs::{Doc, Text as _, TextRef, Transact as _};

use super::acks::InFlight;
use crate::client::{self, Endpoint, Event, Local, Ws};
use crate::marker::{self, Marker};
use crate::report::{new_histogram, record_latency};

/// What every writer shares with the orchestrator.
pub struct Shared {
    /// Updates sent so far, all writers.
    pub sent: AtomicU64,
    /// Updates acknowledged so far, all writers.
    pub acked: AtomicU64,
    pub connect: Semaphore,
    pub cancel: CancellationToken,
    pub pace: Pace,
    pub warmup: Duration,
    pub duration: Duration,
}

/// How a writer sends.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// One update every `period`.
    Every(Duration),
    /// Whenever fewer than this many are unacknowledged.
    Window(usize),
}

/// Everything one writer task needs.
pub struct WriterSpec {
    pub room: usize,
    pub writer: u32,
    pub endpoint: Endpoint,
    /// This writer's start offset within one period, so paced writers do not all fire at once.
    pub offset: Duration,
    pub shared: Arc<Shared>,
    pub ready: mpsc::Sender<Result<(), String>>,
    pub go: watch::Receiver<Option<Instant>>,
}

/// How a writer ended.
pub struct WriterOutcome {
    pub room: usize,
    pub writer: u32,
    /// Acknowledgement latency (µs) of updates sent in the measured window.
    pub hist: Histogram<u64>,
    pub sent: u64,
    /// Updates covered by a `saved`: always the first `acked` (markers 0..acked).
    pub acked: u64,
    pub unacked: u64,
    /// Why the connection ended early, if it did.
    pub error: Option<String>,
}

/// A writer's document, schedule and unacknowledged updates.
struct Writer {
    doc: Doc,
    text: TextRef,
    index: u32,
    /// Time zero of the run, once the go signal came.
    t0: Option<Instant>,
    next: u32,
    in_flight: InFlight,
    hist: Histogram<u64>,
    acked: u64,
}

impl Writer {
    /// When the next update may go, if one still may: paced writers follow their schedule,
    /// windowed ones go at once while their window has room; nobody sends past the window's end.
    fn due(&self, spec: &WriterSpec) -> Option<Instant> {
        let t0 = self.t0?;
        let s = &spec.shared;
        let due = match s.pace {
            Pace::Every(period) => t0 + spec.offset + period * self.next,
            Pace::Window(k) if self.in_flight.len() < k => Instant::now(),
            Pace::Window(_) => return None,
        };
        (due < t0 + s.warmup + s.duration).then_some(due)
    }

    /// Done sending (the window is over) and every update acknowledged.
    fn finished(&self, s: &Shared) -> bool {
        self.t0.is_some_and(|t0| Instant::now() >= t0 + s.warmup + s.duration) && self.in_flight.is_empty()
    }

    /// When a writer with nothing to send looks at `finished` again.
    fn next_check(&self, s: &Shared) -> Instant {
        let now = Instant::now();
        let soon = now + Duration::from_millis(100);
        match self.t0.map(|t0| t0 + s.warmup + s.duration) {
            // Past the end, the end would wake it at once, again and again: a busy loop.
            Some(end) if end > now => end.min(soon),
            _ => soon,
        }
    }

    /// Appends the next token in one transaction; returns the framed sync update.
    fn make_update(&mut self, s: &Shared) -> Bytes {
        let token = Marker { sent_us: marker::now_us(), writer: self.index, seq: self.next }.text();
        let mut txn = self.doc.transact_mut();
        self.text.push(&mut txn, &token);
        let update = txn.encode_update_v1();
        drop(txn);
        self.next += 1;
        let now = Instant::now();
        let timed = self.t0.is_some_and(|t0| now >= t0 + s.warmup);
        self.in_flight.sent(now, timed);
        s.sent.fetch_add(1, Ordering::Relaxed);
        Message::Sync(SyncMessage::Update(&update)).encode_to_vec().into()
    }
}

pub async fn run_writer(mut spec: WriterSpec) -> WriterOutcome {
    let doc = Doc::new();
    let mut w = Writer {
        text: doc.get_or_insert_text("text"),
        doc,
        index: spec.writer,
        t0: None,
        next: 0,
        in_flight: InFlight::default(),
        hist: new_histogram(),
        acked: 0,
    };
    let connected = {
        let _permit = spec.shared.connect.acquire().await;
        client::connect_synced(&spec.endpoint, Local::Doc(&w.doc)).await
    };
    let error = match connected {
        Ok((mut ws, _)) => {
            // The handshake answered the server's step 1: that step 2 is content message 1.
            w.in_flight.other_content();
            let _ = spec.ready.send(Ok(())).await;
            let result = drive(&mut ws, &mut spec, &mut w).await;
            client::close(ws).await;
            result.err()
        }
        Err(e) => {
            let _ = spec.ready.send(Err(format!("{e:#}"))).await;
            Some(format!("{e:#}"))
        }
    };
    WriterOutcome {
        room: spec.room,
        writer: spec.writer,
        hist: w.hist,
        sent: u64::from(w.next),
        acked: w.acked,
        unacked: w.in_flight.len() as u64,
        error,
    }
}

/// Sends when due, reads `saved`s and answers step 1s, until done or cancelled.
async fn drive(ws: &mut Ws, spec: &mut WriterSpec, w: &mut Writer) -> Result<(), String> {
    let shared = Arc::clone(&spec.shared);
    let cancelled = shared.cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        if w.finished(&shared) {
            return Ok(());
        }
        let due = w.due(spec);
        tokio::select! {
            biased;
            () = &mut cancelled => return Ok(()),
            changed = spec.go.changed(), if w.t0.is_none() => {
                if changed.is_err() {
                    return Err("run ended before writers started".into());
                }
                w.t0 = *spec.go.borrow();
            }
            event = client::next_event(ws) => {
                let frame = match event {
                    Event::Frame(frame) => frame,
                    Event::Closed(why) => return Err(why),
                };
                on_frame(ws, w, &shared, &frame).await?;
            }
            () = sleep_until(due) => {
                let frame = w.make_update(&shared);
                ws.send(frame).await.map_err(|e| format!("sending an update: {e}"))?;
            }
            // Nothing to send: wake at the window's end (then every 100 ms) to check `finished`
            // even if nothing arrives; the drain timeout cancels a writer whose acks never come.
            () = tokio::time::sleep_until(w.next_check(&shared)), if due.is_none() => {}
        }
    }
}

/// Handles one frame from the server: `saved` acknowledges, a step 1 is answered (which takes a
/// content seq), an app error ends the writer (the server refused something it should not have).
async fn on_frame(ws: &mut Ws, w: &mut Writer, shared: &Shared, frame: &[u8]) -> Result<(), String> {
    let now = Instant::now();
    let mut reply = None;
    for item in decode_frame(frame) {
        match item.map_err(|e| format!("server sent a malformed frame: {e}"))?.0 {
            Message::App(json) => {
                let app = AppMessage::from_json(json)
                    .map_err(|e| format!("unreadable app message {json:?}: {e}"))?;
                // `if let`, not `match`: app kinds added later (chat, run) are not ours to handle.
                if let AppMessage::Saved { seq } = app {
                    let (hist, acked) = (&mut w.hist, &mut w.acked);
                    w.in_flight.on_saved(seq, now, |a| {
                        *acked += 1;
                        shared.acked.fetch_add(1, Ordering::Relaxed);
                        if a.timed {
                            record_latency(hist, a.latency.as_micros() as u64);
                        }
                    })?;
                } else if let AppMessage::Error { code, message, .. } = app {
                    return Err(format!("server sent an app error {code}: {message}"));
                }
            }
            Message::Sync(SyncMessage::Step1(sv)) => {
                reply = Some(Local::Doc(&w.doc).step2(sv).map_err(|e| format!("{e:#}"))?);
            }
            _ => {}
        }
    }
    if let Some(reply) = reply {
        w.in_flight.other_content();
        ws.send(reply).await.map_err(|e| format!("sending step2: {e}"))?;
    }
    Ok(())
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
