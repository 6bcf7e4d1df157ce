//! The saturation search's rule, without I/O: given which per-writer rates held, which to try
//! next. Double from the start while steps hold, halve while they fail, then bisect between the
//! highest rate that held and the lowest that failed until they are within 10%.

/// The search's state; feed it each step's verdict with [`Search::record`].
#[derive(Debug, Clone)]
pub struct Search {
    /// The highest rate that held so far.
    held: Option<u32>,
    /// The lowest rate that failed so far.
    failed: Option<u32>,
    next: Option<u32>,
    steps: usize,
    max_steps: usize,
    max_rate: u32,
}

impl Search {
    /// Starts at `start` (clamped to 1..=`max_rate`); at most `max_steps` steps.
    pub fn new(start: u32, max_rate: u32, max_steps: usize) -> Self {
        let max_rate = max_rate.max(1);
        Self {
            held: None,
            failed: None,
            next: (max_steps > 0).then_some(start.clamp(1, max_rate)),
            steps: 0,
            max_steps,
            max_rate,
        }
    }

    /// The rate to try next, or None when the search is over.
    pub fn next_rate(&self) -> Option<u32> {
        self.next
    }

    /// The outcome of the step at `rate`.
    pub fn record(&mut self, rate: u32, held: bool) {
        self.steps += 1;
        if held {
            self.held = Some(self.held.map_or(rate, |h| h.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
        self.next = self.choose();
    }

    /// The knee: the highest rate that held.
    pub fn knee(&self) -> Option<u32> {
        self.held
    }

    /// True when the search stopped at `max_rate` without any step failing: the knee is above it.
    pub fn hit_the_cap(&self) -> bool {
        self.failed.is_none() && self.held == Some(self.max_rate)
    }

    fn choose(&self) -> Option<u32> {
        if self.steps >= self.max_steps {
            return None;
        }
        match (self.held, self.failed) {
            (Some(h), None) => (h < self.max_rate).then(|| h.saturating_mul(2).min(self.max_rate)),
            (None, Some(f)) => (f > 1).then_some(f / 2),
            // Noisy steps can leave a held rate above a failed one; the bracket is then empty.
            (Some(h), Some(f)) if f <= h + 1 || f - h <= h / 10 => None,
            (Some(h), Some(f)) => Some(h + (f - h) / 2),
            (None, None) => self.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a fake server that holds any rate up to `capacity`; returns the knee
    /// and the rates tried, in order.
    fn search(capacity: u32, start: u32, max_rate: u32, max_steps: usize) -> (Option<u32>, Vec<u32>) {
        let mut s = Search::new(start, max_rate, max_steps);
        let mut tried = Vec::new();
        while let Some(rate) = s.next_rate() {
            tried.push(rate);
            s.record(rate, rate <= capacity);
        }
        (s.knee(), tried)
    }

    #[test]
    fn doubles_then_bisects_to_within_ten_percent() {
        let (knee, tried) = search(100, 10, 10_000, 20);
        assert_eq!(tried, [10, 20, 40, 80, 160, 120, 100, 110]);
        assert_eq!(knee, Some(100));
        let (knee, tried) = search(1234, 10, 10_000, 20);
        let knee = knee.expect("held");
        assert!(knee <= 1234 && knee * 11 / 10 >= 1234, "{knee} within 10% below the capacity: {tried:?}");
    }

    #[test]
    fn halves_when_the_start_fails_and_gives_up_at_one() {
        let (knee, tried) = search(30, 100, 10_000, 20);
        assert_eq!(tried[..3], [100, 50, 25]);
        assert!(knee.is_some_and(|k| (27..=30).contains(&k)), "{knee:?} {tried:?}");
        let (knee, tried) = search(0, 4, 10_000, 20);
        assert_eq!((knee, tried), (None, vec![4, 2, 1]));
    }

    #[test]
    fn stops_at_the_cap_and_the_step_budget() {
        let mut s = Search::new(3000, 10_000, 20);
        while let Some(rate) = s.next_rate() {
            s.record(rate, true);
        }
        assert_eq!(s.knee(), Some(10_000));
        assert!(s.hit_the_cap());
        let (knee, tried) = search(1_000_000, 1, 10_000, 4);
        assert_eq!((knee, tried), (Some(8), vec![1, 2, 4, 8]));
        assert_eq!(Search::new(5, 10, 0).next_rate(), None);
    }

    #[test]
    fn a_noisy_step_ends_the_bracket() {
        let mut s = Search::new(10, 10_000, 20);
        s.record(10, true);
        s.record(20, false);
        assert_eq!(s.next_rate(), Some(15));
        // 15 fails, yet 12 held before it fails again at 13: the bracket closes.
        s.record(15, false);
        s.record(12, true);
        assert_eq!(s.next_rate(), Some(13));
        s.record(13, false);
        assert_eq!((s.next_rate(), s.knee()), (None, Some(12)));
    }
}
