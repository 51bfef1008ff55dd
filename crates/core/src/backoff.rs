//! How long to wait before trying again: exponential backoff with jitter, and
//! the `Retry-After` header. The Graph and authentik clients and the worker's
//! delayed retries all use these two, so the policy lives in one place.

use std::time::{Duration, SystemTime};

/// Exponential backoff: `base` doubled per attempt and capped at `max`, with
/// jitter so that clients failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry, before jitter.
    pub base: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry `attempt` (1-based): a random point in
    /// `[full/2, full]`, where `full` is [`Backoff::ceiling`].
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with_jitter(attempt, rand::random::<f64>())
    }

    /// [`Backoff::delay`] with the jitter given: `fraction` 0 gives `full/2`,
    /// 1 gives `full`; values outside `[0, 1]` are clamped, NaN counts as 0.
    pub fn delay_with_jitter(&self, attempt: u32, fraction: f64) -> Duration {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        let full = self.ceiling(attempt);
        let half = full / 2;
        // In whole nanoseconds, truncated, so the result never leaves [half, full].
        let jitter = (full - half).as_nanos() as f64 * fraction;
        half.saturating_add(Duration::from_nanos(jitter as u64))
    }

    /// The delay before retry `attempt` (1-based) without jitter:
    /// `base · 2^(attempt-1)`, at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Parses a `Retry-After` value: seconds, whole (`10`) or decimal (`2.5`, as
/// Graph sends them), or an HTTP date, which gives the time left until then
/// (zero once it has passed). Negative, non-finite or unreadable values give `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_sign_negative() {
            return None;
        }
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: Backoff = Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(8),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_delay_doubles_per_attempt_up_to_the_cap() {
        let full: Vec<Duration> = (1..=6).map(|a| POLICY.ceiling(a)).collect();
        assert_eq!(
            full,
            [ms(500), ms(1000), ms(2000), ms(4000), ms(8000), ms(8000)]
        );
        assert_eq!(POLICY.ceiling(0), ms(500), "attempt 0 counts as the first");
        assert_eq!(POLICY.ceiling(u32::MAX), ms(8000));
    }

    #[test]
    fn jitter_spreads_the_delay_over_its_upper_half() {
        assert_eq!(POLICY.delay_with_jitter(2, 0.0), ms(500));
        assert_eq!(POLICY.delay_with_jitter(2, 0.5), ms(750));
        assert_eq!(POLICY.delay_with_jitter(2, 1.0), ms(1000));
        assert_eq!(POLICY.delay_with_jitter(2, 7.0), ms(1000));
        assert_eq!(POLICY.delay_with_jitter(2, -1.0), ms(500));
        assert_eq!(POLICY.delay_with_jitter(2, f64::NAN), ms(500));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 2.5 ", now), Some(ms(2500)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_refuses_negative_and_garbage() {
        let now = SystemTime::now();
        for value in [
            "-1", "-0.5", "-0", "soon", "", "NaN", "inf", "1e400", "10 s",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }

    proptest! {
        #[test]
        fn every_delay_lies_in_the_upper_half_of_its_capped_value(
            base_ms in 1u64..10_000,
            max_ms in 1u64..1_000_000,
            attempt in 0u32..200,
            fraction in any::<f64>(),
        ) {
            let policy = Backoff { base: ms(base_ms), max: ms(max_ms) };
            let full = policy.ceiling(attempt);
            prop_assert!(full <= policy.max);
            prop_assert!(full >= policy.base.min(policy.max));
            prop_assert!(policy.ceiling(attempt + 1) >= full);
            let delay = policy.delay_with_jitter(attempt, fraction);
            prop_assert!(delay >= full / 2 && delay <= full, "{delay:?} outside [{:?}, {full:?}]", full / 2);
        }

        #[test]
        fn decimal_seconds_read_back_exactly(seconds in 0u32..1_000_000, millis in 0u32..1000) {
            let text = format!("{seconds}.{millis:03}");
            let expected = Duration::from_secs(seconds.into()) + ms(millis.into());
            let parsed = parse_retry_after(&text, SystemTime::now()).unwrap();
            prop_assert!(parsed.abs_diff(expected) < Duration::from_micros(1), "{text}: {parsed:?}");
        }

        #[test]
        fn a_future_date_gives_the_time_until_it(ahead in 0u64..10_000_000) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let date = httpdate::fmt_http_date(now + Duration::from_secs(ahead));
            prop_assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(ahead)));
        }

        #[test]
        fn negative_seconds_are_refused(seconds in -1e12f64..-1e-9) {
            prop_assert_eq!(parse_retry_after(&seconds.to_string(), SystemTime::now()), None);
        }

        #[test]
        fn words_are_refused(text in "[a-zA-Z ]*") {
            prop_assert_eq!(parse_retry_after(&text, SystemTime::now()), None);
        }
    }
}
