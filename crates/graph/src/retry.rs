//! The inline retry policy: one small component, like Vector's adaptive concurrency
//! controller, instead of retry logic sprinkled through call sites.
//!
//! Only short waits happen inline. A longer Retry-After, or a transient failure that
//! outlives the attempts, goes back to the caller with its `retry_after`, so the task
//! can be requeued through a delay queue without holding a consumer.

use entra_sync_core::backoff::Backoff;
use entra_sync_core::failure::FailureClass;
use std::time::Duration;

/// When and how long to retry inside one client call.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The longest wait done inline; a longer Retry-After is returned to the caller.
    pub max_inline_wait: Duration,
    /// The wait after failures without Retry-After (5xx, network, replication delay).
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_inline_wait: Duration::from_secs(10),
            backoff: Backoff {
                base: Duration::from_millis(500),
                max: Duration::from_secs(8),
            },
        }
    }
}

impl RetryPolicy {
    /// No inline retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before the next attempt, or `None` to give the failure back.
    ///
    /// `attempts_made` counts the attempts so far (1 after the first); `jitter` is a
    /// number in `[0, 1]` that spreads backoffs over `[d/2, d]` ([`Backoff::delay_with_jitter`]).
    pub fn decide(
        &self,
        attempts_made: u32,
        class: FailureClass,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if class != FailureClass::Transient || attempts_made >= self.max_attempts {
            return None;
        }
        let wait =
            retry_after.unwrap_or_else(|| self.backoff.delay_with_jitter(attempts_made, jitter));
        (wait <= self.max_inline_wait).then_some(wait)
    }

    /// [`RetryPolicy::decide`] with a random jitter.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        class: FailureClass,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        self.decide(attempts_made, class, retry_after, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::*;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let p = RetryPolicy::default();
        for class in FailureClass::ALL {
            let d = p.decide(1, class, secs(1), 0.5);
            assert_eq!(d.is_some(), class == Transient, "{class:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_inline_limit() {
        let p = RetryPolicy::default();
        assert_eq!(p.decide(1, Transient, secs(10), 0.0), secs(10));
        assert_eq!(p.decide(1, Transient, secs(11), 0.0), None);
        assert_eq!(
            p.decide(1, Transient, Some(Duration::from_millis(2128)), 0.9),
            Some(Duration::from_millis(2128))
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.decide(2, Transient, secs(1), 0.0).is_some());
        assert_eq!(p.decide(3, Transient, secs(1), 0.0), None);
        assert_eq!(RetryPolicy::none().decide(1, Transient, secs(1), 0.0), None);
    }

    #[test]
    fn without_retry_after_the_backoff_decides_within_the_inline_limit() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(2, Transient, None, 1.0),
            Some(p.backoff.ceiling(2))
        );
        let tight = RetryPolicy {
            max_inline_wait: Duration::from_millis(100),
            ..p
        };
        assert_eq!(
            tight.decide(1, Transient, None, 1.0),
            None,
            "backoff above the inline limit"
        );
    }
}
