//! Duplicate suppression: one delivery per event key per `--rate-limit-interval` (Flux: 5m).
//!
//! Flux keeps a token bucket of one token per key, refilled once per interval: the first event of
//! a key passes, repeats within the interval are answered 429 and dropped, and the key passes again
//! once the interval has gone by since it last passed. Keys not seen for two intervals are swept.
//! A map of last-pass instants gives exactly that; no crate needed for a dozen lines.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Remembers when each key last passed.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    passed: HashMap<String, Instant>,
    next_sweep: Instant,
}

impl RateLimiter {
    /// A limiter letting each key through once per `interval` (zero: everything passes).
    pub fn new(interval: Duration) -> Self {
        RateLimiter {
            interval,
            passed: HashMap::new(),
            next_sweep: Instant::now() + interval,
        }
    }

    /// Whether an event with `key` may pass at `now` (and if so, counts it).
    pub fn allow(&mut self, key: &str, now: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        if now >= self.next_sweep {
            let keep = self.interval * 2;
            self.passed
                .retain(|_, t| now.saturating_duration_since(*t) < keep);
            self.next_sweep = now + self.interval;
        }
        match self.passed.get_mut(key) {
            Some(t) if now.saturating_duration_since(*t) < self.interval => false,
            Some(t) => {
                *t = now;
                true
            }
            None => {
                self.passed.insert(key.to_owned(), now);
                true
            }
        }
    }

    /// Keys remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.passed.len()
    }

    /// No key remembered.
    pub fn is_empty(&self) -> bool {
        self.passed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_interval_are_dropped_and_pass_again_after_it() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(Duration::from_secs(300));
        assert!(l.allow("a", t0));
        assert!(!l.allow("a", t0 + Duration::from_secs(1)));
        assert!(l.allow("b", t0 + Duration::from_secs(1)), "keys are independent");
        assert!(!l.allow("a", t0 + Duration::from_secs(299)));
        assert!(l.allow("a", t0 + Duration::from_secs(300)));
        assert!(!l.allow("a", t0 + Duration::from_secs(301)));
    }

    #[test]
    fn old_keys_are_swept() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(Duration::from_secs(10));
        for i in 0..100 {
            assert!(l.allow(&format!("k{i}"), t0));
        }
        assert_eq!(l.len(), 100);
        assert!(l.allow("late", t0 + Duration::from_secs(25)));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn zero_interval_disables_dedup() {
        let mut l = RateLimiter::new(Duration::ZERO);
        let t = Instant::now();
        assert!(l.allow("a", t) && l.allow("a", t));
        assert!(l.is_empty());
    }
}
