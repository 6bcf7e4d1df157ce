//! A token bucket per connection: `rate` messages per second sustained, `burst` above it.

use std::time::Instant;

pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self { tokens: burst, rate: f64::from(rate), burst, last: now }
    }

    /// Take one token; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
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
        let mut bucket = TokenBucket::new(10, 5, start);
        assert_eq!((0..5).filter(|_| bucket.take(start)).count(), 5, "the whole burst is available");
        assert!(!bucket.take(start), "the burst is the edge");
        assert!(!bucket.take(start + Duration::from_millis(99)), "less than one token refilled");
        assert!(bucket.take(start + Duration::from_millis(100)), "one token per 1/rate seconds");
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 5, "refill is capped at the burst");
    }
}
