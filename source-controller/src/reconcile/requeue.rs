//! When an object runs next: the jittered `spec.interval` after a success, exponential backoff
//! after a failure, nothing (until the spec changes) after a stall.

use super::Context;
use kube::runtime::controller::Action;
use std::time::Duration;

/// When the object runs next, as the status function decides it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Success: after the jittered interval; the failure count is cleared.
    Interval,
    /// Retryable failure: after the backoff for one more failure.
    Backoff,
    /// Stall: only when the spec changes or a reconcile is requested.
    AwaitChange,
}

impl Context {
    /// Registers a failure of `key` and returns the backoff before the next attempt.
    pub fn backoff(&self, key: &str) -> Duration {
        let n = self.failures.lock().map_or(0, |mut m| {
            let n = m.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        });
        backoff_delay(n, self.settings.min_retry_delay, self.settings.max_retry_delay)
    }

    /// Clears the failure count of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(key);
        }
    }

    /// `interval` plus up to `--interval-jitter-percentage` percent of random spread.
    pub fn jittered(&self, interval: Duration) -> Duration {
        jitter(interval, self.settings.jitter_percent, rand_fraction())
    }

    /// The controller action for `next` and the delay the handled-run guard waits for (`None`:
    /// only on change).
    pub(crate) fn next_run(&self, key: &str, next: Next, interval: Duration) -> (Action, Option<Duration>) {
        let after = match next {
            Next::Interval => {
                self.succeeded(key);
                self.jittered(interval)
            }
            Next::Backoff => self.backoff(key),
            Next::AwaitChange => return (Action::await_change(), None),
        };
        (Action::requeue(after), Some(after))
    }
}

/// `min * 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
    min.saturating_mul(factor).min(max)
}

/// `interval ± percent%`, with `fraction` in `[0, 1)` choosing the point in that range.
pub fn jitter(interval: Duration, percent: u8, fraction: f64) -> Duration {
    let spread = interval.as_secs_f64() * f64::from(percent) / 100.0;
    let offset = spread * (2.0 * fraction - 1.0);
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(0.0))
}

fn rand_fraction() -> f64 {
    // Good enough spread for requeue jitter without a random-number crate.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_to_max() {
        let (min, max) = (Duration::from_millis(750), Duration::from_secs(900));
        assert_eq!(backoff_delay(1, min, max), Duration::from_millis(750));
        assert_eq!(backoff_delay(2, min, max), Duration::from_millis(1500));
        assert_eq!(backoff_delay(5, min, max), Duration::from_secs(12));
        assert_eq!(backoff_delay(40, min, max), max);
    }

    #[test]
    fn jitter_stays_within_the_percentage() {
        let i = Duration::from_secs(100);
        assert_eq!(jitter(i, 5, 0.0), Duration::from_secs(95));
        assert_eq!(jitter(i, 5, 0.5), Duration::from_secs(100));
        assert!(jitter(i, 5, 0.999) <= Duration::from_secs(105));
        assert_eq!(jitter(i, 0, 0.9), i);
    }
}
