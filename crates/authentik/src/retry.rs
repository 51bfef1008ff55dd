//! When the client retries a transient failure, and after how long.

use entra_sync_core::backoff::{Backoff, parse_retry_after};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, SystemTime};

/// Bounded retries with [`Backoff`], honouring `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (at least 1).
    pub max_attempts: u32,
    /// The wait between attempts; its `max` also caps `Retry-After`.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// 5 attempts, 250 ms doubling, at most 30 s apart.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff: Backoff {
                base: Duration::from_millis(250),
                max: Duration::from_secs(30),
            },
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: `Retry-After` if given, at most
    /// the backoff's `max`; else the backoff's delay for `attempt`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(after) => after.min(self.backoff.max),
            None => self.backoff.delay(attempt),
        }
    }
}

/// The response's `Retry-After`, if it has a readable one.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_over_the_backoff_up_to_its_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
        };
        assert_eq!(
            p.delay(3, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(90))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn reads_retry_after_from_the_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}
