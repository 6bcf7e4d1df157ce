//! Where the in-process queue puts dead letters: the most recent ones kept in memory for
//! inspection (tests, a future ops endpoint), all of them counted. The dispatcher has already logged
//! each at error level and counted it in `codecrafter_jobs_dead_lettered_total`; a RabbitMQ backend
//! routes them to its dead-letter exchange instead.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::delivery::DeadLetter;

pub struct DeadLetters {
    recent: Mutex<VecDeque<DeadLetter>>,
    /// How many letters `recent` keeps: a dead snapshot job may hold a whole document.
    kept: usize,
    total: AtomicU64,
}

impl DeadLetters {
    /// A sink keeping the `kept` most recent letters.
    pub fn new(kept: usize) -> Self {
        Self { recent: Mutex::new(VecDeque::new()), kept, total: AtomicU64::new(0) }
    }

    pub(crate) fn push(&self, letter: DeadLetter) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if self.kept == 0 {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() == self.kept {
            recent.pop_front();
        }
        recent.push_back(letter);
    }

    /// The letters kept, oldest first.
    pub fn recent(&self) -> Vec<DeadLetter> {
        self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect()
    }

    /// Every letter received, kept or not.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use protocol::job::{Job, SnapshotJob};

    use super::*;

    fn letter(n: u64) -> DeadLetter {
        let job =
            Job::Snapshot(SnapshotJob { room: "r".into(), update: vec![], changes: n, dirty_since_ms: 0 });
        DeadLetter { job, reason: format!("#{n}"), delivery_count: 1 }
    }

    #[test]
    fn keeps_the_most_recent_and_counts_all() {
        let sink = DeadLetters::new(2);
        for n in 0..5 {
            sink.push(letter(n));
        }
        let reasons: Vec<_> = sink.recent().into_iter().map(|l| l.reason).collect();
        assert_eq!(reasons, ["#3", "#4"]);
        assert_eq!(sink.total(), 5);

        let counting_only = DeadLetters::new(0);
        counting_only.push(letter(0));
        assert!(counting_only.recent().is_empty());
        assert_eq!(counting_only.total(), 1);
    }
}
