//! The content messages a writer sent that the server has not yet said are durable, and the
//! latency of each once a `saved` covers it.
//!
//! The server counts a connection's content messages (sync step 2 and sync update) together from 1
//! and acknowledges a prefix: `{"type":"saved","seq":N}` covers every message up to N. So the
//! writer numbers what it sends the same way, keeps the send instants of its updates in order, and
//! on each `saved` pops the covered prefix.

use std::collections::VecDeque;

use tokio::time::Instant;

/// One writer's unacknowledged updates.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Content messages sent on this connection so far (the last one's seq).
    sent_seq: u64,
    /// Updates sent and not yet covered, oldest first: (seq, sent at, timed).
    pending: VecDeque<(u64, Instant, bool)>,
}

/// An acknowledged update, as `on_saved` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub latency: std::time::Duration,
    /// Sent inside the measured window: its latency belongs in the histogram.
    pub timed: bool,
}

impl InFlight {
    /// Counts a content message that is not an update of ours to time (the handshake's step 2, or
    /// the answer to a later step 1): it still takes a seq.
    pub fn other_content(&mut self) {
        self.sent_seq += 1;
    }

    /// Counts an update sent at `at`; returns its seq.
    pub fn sent(&mut self, at: Instant, timed: bool) -> u64 {
        self.sent_seq += 1;
        self.pending.push_back((self.sent_seq, at, timed));
        self.sent_seq
    }

    /// A `saved` with `seq` arrived at `now`: every pending update up to it is acknowledged. A seq
    /// beyond what we sent is the server's error, reported as `Err`.
    pub fn on_saved(&mut self, seq: u64, now: Instant, mut each: impl FnMut(Acked)) -> Result<(), String> {
        if seq > self.sent_seq {
            return Err(format!("saved seq {seq} but only {} content messages were sent", self.sent_seq));
        }
        while let Some(&(s, at, timed)) = self.pending.front() {
            if s > seq {
                break;
            }
            self.pending.pop_front();
            each(Acked { latency: now.saturating_duration_since(at), timed });
        }
        Ok(())
    }

    /// Updates sent and not acknowledged yet.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_saved_covers_the_prefix_it_names() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut f = InFlight::default();
        f.other_content(); // the handshake's step 2 is seq 1
        assert_eq!(f.sent(t0, false), 2);
        assert_eq!(f.sent(t0 + ms(1), true), 3);
        assert_eq!(f.sent(t0 + ms(2), true), 4);
        let mut acked = Vec::new();
        f.on_saved(1, t0 + ms(5), |a| acked.push(a)).expect("valid");
        assert!(acked.is_empty(), "seq 1 is the step 2, no update");
        f.on_saved(3, t0 + ms(10), |a| acked.push(a)).expect("valid");
        assert_eq!(acked, [Acked { latency: ms(10), timed: false }, Acked { latency: ms(9), timed: true }]);
        assert_eq!(f.len(), 1);
        // A step 2 answering a later step 1 takes seq 5; a saved for it covers update 4 too.
        f.other_content();
        f.on_saved(5, t0 + ms(12), |a| acked.push(a)).expect("valid");
        assert_eq!(acked.last(), Some(&Acked { latency: ms(10), timed: true }));
        assert!(f.is_empty());
        // An old saved arriving late changes nothing.
        f.on_saved(2, t0 + ms(13), |_| panic!("nothing pending")).expect("valid");
    }

    #[test]
    fn a_saved_beyond_what_was_sent_is_an_error() {
        let mut f = InFlight::default();
        f.other_content();
        f.sent(Instant::now(), true);
        let err = f.on_saved(3, Instant::now(), |_| {}).expect_err("only 2 sent");
        assert!(err.contains("saved seq 3"), "{err}");
        assert_eq!(f.len(), 1);
    }
}
