//! A token bucket per connection: `rate` messages per second sustained, `burst` above it. The
//! rate and burst are the server's settings, passed in rather than kept: every idle connection
//! holds a bucket.

use std::time::Instant;

pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

/// A bucket's rate and burst.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    per_sec: f64,
    burst: f64,
}

impl Rate {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self { per_sec: f64::from(per_sec), burst: f64::from(burst.max(1)) }
    }
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self { tokens: rate.burst, last: now }
    }

    /// Take one token; false when the bucket is empty.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill_at_rate() {
        let start = Instant::now();
        let rate = Rate::new(10, 5);
        let mut bucket = TokenBucket::new(rate, start);
        assert_eq!((0..5).filter(|_| bucket.take(rate, start)).count(), 5, "the whole burst is available");
        assert!(!bucket.take(rate, start), "the burst is the edge");
        assert!(!bucket.take(rate, start + Duration::from_millis(99)), "less than one token refilled");
        assert!(bucket.take(rate, start + Duration::from_millis(100)), "one token per 1/rate seconds");
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take(rate, later)).count(), 5, "refill is capped at the burst");
    }
}
