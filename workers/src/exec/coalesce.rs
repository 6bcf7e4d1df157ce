//! Turns a run's raw output chunks into `run_output` messages: consecutive bytes of one stream are
//! merged (so a program printing one byte at a time does not become one WebSocket frame per byte),
//! decoded to text without ever splitting a character, and numbered with one `seq` across both
//! streams. Pure: no I/O and no clock; the caller passes the time in and drives the flush timer
//! from [`Coalescer::deadline`].

use std::time::{Duration, Instant};

use protocol::run::{OutputStream, RunOutput};

use crate::exec::Chunk;

/// When pending output is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalesceConfig {
    /// Pending text of at least this many bytes is sent at once, in pieces of at most this size.
    pub max_bytes: usize,
    /// Pending text is sent at the latest this long after its first byte arrived.
    pub max_delay: Duration,
    /// Output after a quiet spell of at least `max_delay` is sent at once (the leading edge): the
    /// first line a program prints, or a line after a pause, costs no delay; only a stream of
    /// output is gathered.
    pub leading_edge: bool,
}

impl Default for CoalesceConfig {
    /// 4 KiB or 20 ms: a viewer sees output within a frame of a 50 Hz display, and a program that
    /// floods its output costs one message per 4 KiB.
    fn default() -> Self {
        Self { max_bytes: 4096, max_delay: Duration::from_millis(20), leading_edge: true }
    }
}

/// Text decoded but not sent yet: always of one stream.
#[derive(Debug)]
struct Pending {
    stream: OutputStream,
    text: String,
    /// When it must be sent: its first byte's arrival plus the delay, or that arrival itself after
    /// a quiet spell.
    due: Instant,
}

/// One run's coalescer. Feed it with [`push`](Self::push), wake it at [`deadline`](Self::deadline)
/// with [`flush_due`](Self::flush_due), end it with [`finish`](Self::finish).
#[derive(Debug)]
pub struct Coalescer {
    job: String,
    config: CoalesceConfig,
    next_seq: u64,
    pending: Option<Pending>,
    /// When output was last sent (by `push` or `flush_due`, which know the time).
    last_sent: Option<Instant>,
    /// Per stream (stdout, stderr): the start of a character whose other bytes are still to come
    /// (at most 3 bytes, as a UTF-8 character is at most 4).
    partial: [Vec<u8>; 2],
}

impl Coalescer {
    pub fn new(job: impl Into<String>, config: CoalesceConfig) -> Self {
        // A zero size would send nothing but empty pieces; one byte still makes progress.
        let config = CoalesceConfig { max_bytes: config.max_bytes.max(1), ..config };
        Self {
            job: job.into(),
            config,
            next_seq: 0,
            pending: None,
            last_sent: None,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Takes `chunk`, which arrived at `now`, and returns what must be sent now, in order: what was
    /// due by `now`, what a change of stream ends, and whole pieces of `max_bytes`.
    pub fn push(&mut self, chunk: &Chunk, now: Instant) -> Vec<RunOutput> {
        let mut out = self.flush_due(now);
        if chunk.bytes.is_empty() {
            return out;
        }
        if self.pending.as_ref().is_some_and(|pending| pending.stream != chunk.stream) {
            // Order across streams is the program's: what the other stream wrote goes first.
            self.flush_into(&mut out);
        }
        let text = self.decode(chunk.stream, &chunk.bytes);
        if text.is_empty() {
            // Only the start of a character: nothing to send until the rest comes.
            return out;
        }
        let quiet = self.config.leading_edge
            && self.last_sent.is_none_or(|sent| now.saturating_duration_since(sent) >= self.config.max_delay);
        let due = if quiet { now } else { now + self.config.max_delay };
        let pending =
            self.pending.get_or_insert_with(|| Pending { stream: chunk.stream, text: String::new(), due });
        pending.text.push_str(&text);
        self.send_full_pieces(now, &mut out);
        out.extend(self.flush_due(now));
        if !out.is_empty() {
            self.last_sent = Some(now);
        }
        out
    }

    /// When the pending text must be sent, if there is any: the caller sleeps until then and calls
    /// [`flush_due`](Self::flush_due).
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|pending| pending.due)
    }

    /// The pending text, if its deadline has passed at `now`.
    pub fn flush_due(&mut self, now: Instant) -> Vec<RunOutput> {
        let mut out = Vec::new();
        if self.deadline().is_some_and(|deadline| now >= deadline) {
            self.flush_into(&mut out);
            self.last_sent = Some(now);
        }
        out
    }

    /// The run is over: everything still pending; a character left incomplete at the end of a
    /// stream becomes U+FFFD, sent last.
    pub fn finish(&mut self) -> Vec<RunOutput> {
        let mut out = Vec::new();
        if let Some(pending) = &mut self.pending {
            let partial = &mut self.partial[slot(pending.stream)];
            if !partial.is_empty() {
                partial.clear();
                pending.text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        self.flush_into(&mut out);
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let partial = &mut self.partial[slot(stream)];
            if !partial.is_empty() {
                partial.clear();
                let message = self.message(stream, char::REPLACEMENT_CHARACTER.to_string());
                out.push(message);
            }
        }
        out
    }

    /// The `seq` the next message will have (so: how many were produced).
    pub fn sent(&self) -> u64 {
        self.next_seq
    }

    /// `bytes` of `stream` as text, after the partial character that stream left last time;
    /// invalid bytes become U+FFFD and an incomplete character at the end is kept for next time.
    fn decode(&mut self, stream: OutputStream, bytes: &[u8]) -> String {
        let partial = &mut self.partial[slot(stream)];
        let joined;
        let mut input: &[u8] = if partial.is_empty() {
            bytes
        } else {
            joined = [partial.as_slice(), bytes].concat();
            partial.clear();
            &joined
        };
        let mut text = String::with_capacity(input.len());
        loop {
            match std::str::from_utf8(input) {
                Ok(valid) => {
                    text.push_str(valid);
                    return text;
                }
                Err(error) => {
                    let (valid, rest) = input.split_at(error.valid_up_to());
                    // `valid_up_to` bytes are UTF-8 by the error's own contract.
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match error.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            input = &rest[bad..];
                        }
                        None => {
                            // The input ends inside a character: at most 3 bytes.
                            partial.extend_from_slice(rest);
                            return text;
                        }
                    }
                }
            }
        }
    }

    /// Sends pieces of exactly (at most, to stay on a character boundary) `max_bytes` while the
    /// pending text holds that much; the rest stays pending, from `now`.
    fn send_full_pieces(&mut self, now: Instant, out: &mut Vec<RunOutput>) {
        let max = self.config.max_bytes;
        while let Some(pending) = self.pending.as_mut().filter(|pending| pending.text.len() >= max) {
            let cut = char_boundary_at_most(&pending.text, max);
            let rest = pending.text.split_off(cut);
            let piece = std::mem::replace(&mut pending.text, rest);
            // Just sent: the rest waits the delay.
            pending.due = now + self.config.max_delay;
            let stream = pending.stream;
            if pending.text.is_empty() {
                self.pending = None;
            }
            out.push(self.message(stream, piece));
        }
    }

    fn flush_into(&mut self, out: &mut Vec<RunOutput>) {
        if let Some(pending) = self.pending.take() {
            out.push(self.message(pending.stream, pending.text));
        }
    }

    fn message(&mut self, stream: OutputStream, data: String) -> RunOutput {
        let seq = self.next_seq;
        self.next_seq += 1;
        RunOutput { job: self.job.clone(), seq, stream, data }
    }
}

fn slot(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

/// The largest character boundary of `text` at or below `max`, but past the first character, so a
/// piece is never empty even when one character is wider than `max`.
fn char_boundary_at_most(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    match (0..=max).rev().find(|&at| text.is_char_boundary(at)) {
        Some(0) | None => text.chars().next().map_or(text.len(), char::len_utf8),
        Some(at) => at,
    }
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;
