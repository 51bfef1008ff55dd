//! The adaptive write pace of one (app, tenant) budget (DESIGN invariant 5):
//! a token bucket whose rate and burst start at the configured budget, the
//! ceiling, and adapt to what Graph answers, like Vector's adaptive request
//! concurrency (AIMD) applied to a rate:
//!
//! - a 429 cuts the rate and the burst (multiplicative decrease, once per
//!   throttling episode) and pauses everyone until its Retry-After;
//! - an accepted write with `x-ms-throttle-limit-percentage` at or above
//!   [`SLOW_DOWN_AT`] trims the rate a little and ends any burst, so the pace
//!   settles just under the tenant's real budget before a 429 comes;
//! - an accepted write below [`HOLD_AT`] (or without the header, sent only
//!   above 0.8) raises the rate and the burst slowly back toward the ceiling
//!   (additive increase).
//!
//! Direct writes come first: a bulk write is granted only while the bucket's
//! debt (tokens already promised to waiting writes) is under [`BULK_AHEAD`] of
//! pacing, a direct one up to the caller's longest wait. So a direct write
//! waits at most [`BULK_AHEAD`] behind bulk writes already granted, and bulk
//! writes yield to it.
//!
//! Everything is pure: the state is kept in PostgreSQL so every worker shares
//! it, and times are seconds on the database's clock.

use std::time::Duration;

/// Share of a limit at or above which the pace is trimmed and bursts end.
pub const SLOW_DOWN_AT: f64 = 0.95;
/// Share of a limit at or above which the pace holds (neither rises nor falls).
pub const HOLD_AT: f64 = 0.9;
/// Factor applied to the rate by a 429.
pub const CUT: f64 = 0.8;
/// Factor applied to the rate per accepted write at or above [`SLOW_DOWN_AT`].
pub const TRIM: f64 = 0.99;
/// Share of the ceiling's rate regained per accepted write below [`HOLD_AT`].
pub const STEP: f64 = 1.0 / 400.0;
/// The pace never falls below this share of the ceiling's rate.
pub const FLOOR: f64 = 0.02;
/// How far ahead of the pace bulk writes may be granted.
pub const BULK_AHEAD: Duration = Duration::from_millis(250);
/// After a cut, further 429s within this long (beyond their Retry-After)
/// belong to the same episode: requests already in flight when the first
/// came back.
pub const EPISODE: Duration = Duration::from_secs(1);

/// The configured budget: the most the pace ever grants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    /// The burst: most tokens the bucket holds.
    pub capacity: f64,
    /// Tokens added per second.
    pub per_second: f64,
}

impl Ceiling {
    /// A quota of `requests` per `window`, e.g. Graph's 3,000 writes per 150 s.
    pub fn quota(requests: u32, window: Duration) -> Self {
        Self {
            capacity: f64::from(requests.max(1)),
            per_second: f64::from(requests.max(1)) / window.as_secs_f64().max(0.001),
        }
    }
}

/// Which lane a write serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    /// A direct change: granted ahead of bulk writes.
    Direct,
    /// Full-sync and other background work: yields to direct writes.
    Bulk,
}

/// The shared state of one budget. Times are seconds on one clock (the database's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Tokens now; negative while writes are granted ahead of the pace.
    pub tokens: f64,
    /// The current rate, tokens per second.
    pub rate: f64,
    /// The current burst.
    pub capacity: f64,
    /// When `tokens` was last brought up to date.
    pub refilled_at: f64,
    /// No write is granted before this (a 429's Retry-After).
    pub paused_until: Option<f64>,
    /// The last cut, so one throttling episode cuts once.
    pub cut_at: Option<f64>,
}

/// The answer to a request for tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grant {
    /// Granted: send after waiting this long (zero when tokens were there).
    Now(Duration),
    /// The budget is paused by a 429 for this long; nothing was granted.
    Paused(Duration),
    /// Not granted: ask again in about this long.
    Later(Duration),
}

/// What Graph said about writes since the state was last updated.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Feedback {
    /// Writes accepted (answered other than 429).
    pub accepted: f64,
    /// The highest `x-ms-throttle-limit-percentage` among them.
    pub limit_percentage: Option<f64>,
}

impl Feedback {
    /// Adds one answer of a write costing `writes`.
    pub fn add(&mut self, writes: f64, limit_percentage: Option<f64>) {
        self.accepted += writes;
        self.limit_percentage = match (self.limit_percentage, limit_percentage) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.accepted == 0.0
    }
}

impl Pace {
    /// A full bucket at the ceiling, as of `now`.
    pub fn new(ceiling: Ceiling, now: f64) -> Self {
        Self {
            tokens: ceiling.capacity,
            rate: ceiling.per_second,
            capacity: ceiling.capacity,
            refilled_at: now,
            paused_until: None,
            cut_at: None,
        }
    }

    /// Keeps the state inside a (possibly changed) ceiling and refills it up to `now`.
    fn refill(&mut self, ceiling: Ceiling, now: f64) {
        self.rate = self
            .rate
            .clamp(ceiling.per_second * FLOOR, ceiling.per_second);
        self.capacity = self.capacity.clamp(1.0, ceiling.capacity);
        let elapsed = (now - self.refilled_at).max(0.0);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled_at = now;
    }

    /// Takes `cost` tokens for a write of this urgency if it can be sent
    /// within `max_wait` (bulk: within [`BULK_AHEAD`]) and the budget is not paused.
    pub fn reserve(
        &mut self,
        ceiling: Ceiling,
        cost: f64,
        urgency: Urgency,
        max_wait: Duration,
        now: f64,
    ) -> Grant {
        self.refill(ceiling, now);
        if let Some(until) = self.paused_until {
            if until > now {
                return Grant::Paused(Duration::from_secs_f64(until - now));
            }
            self.paused_until = None;
        }
        let ahead = match urgency {
            Urgency::Direct => max_wait,
            Urgency::Bulk => BULK_AHEAD.min(max_wait),
        };
        // At least one write may wait, however slow the pace.
        let floor = -(self.rate * ahead.as_secs_f64()).max(1.0);
        let after = self.tokens - cost;
        if after >= floor {
            self.tokens = after;
            Grant::Now(Duration::from_secs_f64((-after / self.rate).max(0.0)))
        } else {
            Grant::Later(Duration::from_secs_f64((floor - after) / self.rate))
        }
    }

    /// Folds in accepted writes: trims above [`SLOW_DOWN_AT`], rises below [`HOLD_AT`].
    pub fn accepted(&mut self, ceiling: Ceiling, feedback: Feedback, now: f64) {
        self.refill(ceiling, now);
        let share = feedback.limit_percentage.unwrap_or(0.0);
        if share >= SLOW_DOWN_AT {
            let writes = feedback.accepted.clamp(1.0, 50.0) as i32;
            self.rate = (self.rate * TRIM.powi(writes)).max(ceiling.per_second * FLOOR);
            self.tokens = self.tokens.min(0.0);
            self.capacity = (self.capacity * TRIM.powi(writes)).max(self.rate.max(1.0));
        } else if share < HOLD_AT {
            let gain = STEP * feedback.accepted;
            self.rate = (self.rate + gain * ceiling.per_second).min(ceiling.per_second);
            self.capacity = (self.capacity + gain * ceiling.capacity).min(ceiling.capacity);
        }
    }

    /// A 429: pauses everyone until `retry_after` from now and, once per
    /// episode, cuts the rate by [`CUT`] and halves the burst.
    pub fn throttled(&mut self, ceiling: Ceiling, retry_after: Duration, now: f64) {
        self.refill(ceiling, now);
        let until = now + retry_after.as_secs_f64();
        self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
        self.tokens = self.tokens.min(0.0);
        let same_episode = self.cut_at.is_some_and(|at| now < at);
        if !same_episode {
            self.rate = (self.rate * CUT).max(ceiling.per_second * FLOOR);
            self.capacity = (self.capacity / 2.0).max(self.rate.max(1.0));
            self.cut_at = Some(until + EPISODE.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Graph's published budget, 3,000 writes per 150 s.
    fn graph() -> Ceiling {
        Ceiling::quota(3_000, Duration::from_secs(150))
    }

    fn granted(g: Grant) -> bool {
        matches!(g, Grant::Now(_))
    }

    #[test]
    fn a_new_pace_grants_the_burst_then_paces_at_the_rate() {
        let c = Ceiling::quota(10, Duration::from_secs(10));
        let mut p = Pace::new(c, 0.0);
        let long = Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(
                p.reserve(c, 1.0, Urgency::Direct, long, 0.0),
                Grant::Now(Duration::ZERO)
            );
        }
        assert_eq!(
            p.reserve(c, 1.0, Urgency::Direct, long, 0.0),
            Grant::Now(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_rate_drops_after_429s_and_recovers_while_writes_succeed() {
        let c = graph();
        let mut p = Pace::new(c, 0.0);
        p.throttled(c, Duration::from_secs(2), 10.0);
        let after_one = p.rate;
        assert!(after_one < c.per_second, "{after_one}");
        assert_eq!(p.paused_until, Some(12.0));
        // In-flight requests of the same episode do not cut again.
        p.throttled(c, Duration::from_secs(2), 10.5);
        assert_eq!(p.rate, after_one);
        // A later episode cuts again.
        p.throttled(c, Duration::from_secs(2), 20.0);
        assert!(p.rate < after_one);
        let low = p.rate;
        // Accepted writes raise it step by step, up to the ceiling and no further.
        let mut last = low;
        for i in 0..2_000 {
            p.accepted(
                c,
                Feedback {
                    accepted: 1.0,
                    limit_percentage: None,
                },
                30.0 + f64::from(i),
            );
            assert!(p.rate >= last);
            last = p.rate;
        }
        assert_eq!(p.rate, c.per_second);
        assert_eq!(p.capacity, c.capacity);
    }

    #[test]
    fn a_pause_holds_every_write_until_retry_after() {
        let c = graph();
        let mut p = Pace::new(c, 0.0);
        p.throttled(c, Duration::from_secs(3), 1.0);
        let long = Duration::from_secs(60);
        assert_eq!(
            p.reserve(c, 1.0, Urgency::Direct, long, 2.0),
            Grant::Paused(Duration::from_secs(2))
        );
        assert!(matches!(
            p.reserve(c, 1.0, Urgency::Bulk, long, 3.9),
            Grant::Paused(_)
        ));
        assert!(granted(p.reserve(c, 1.0, Urgency::Direct, long, 4.5)));
    }

    #[test]
    fn a_high_limit_percentage_slows_down_and_ends_the_burst() {
        let c = graph();
        let mut p = Pace::new(c, 0.0);
        let high = Feedback {
            accepted: 1.0,
            limit_percentage: Some(0.97),
        };
        p.accepted(c, high, 1.0);
        assert!(p.rate < c.per_second);
        assert!(p.tokens <= 0.0, "no burst left: {}", p.tokens);
        // Between HOLD_AT and SLOW_DOWN_AT the pace holds.
        let held = p.rate;
        p.accepted(
            c,
            Feedback {
                accepted: 5.0,
                limit_percentage: Some(0.92),
            },
            2.0,
        );
        assert_eq!(p.rate, held);
        // Below it, it rises again.
        p.accepted(
            c,
            Feedback {
                accepted: 5.0,
                limit_percentage: Some(0.85),
            },
            3.0,
        );
        assert!(p.rate > held);
    }

    #[test]
    fn direct_writes_are_granted_while_bulk_writes_wait() {
        let c = Ceiling::quota(20, Duration::from_secs(10));
        let mut p = Pace::new(c, 0.0);
        let long = Duration::from_secs(5);
        let mut bulk = 0;
        while granted(p.reserve(c, 1.0, Urgency::Bulk, long, 0.0)) {
            bulk += 1;
        }
        assert_eq!(bulk, 21, "the burst and one write ahead of the pace");
        let Grant::Later(retry) = p.reserve(c, 1.0, Urgency::Bulk, long, 0.0) else {
            panic!("bulk must wait")
        };
        assert!(retry > Duration::ZERO);
        // A direct write still gets a grant, and several do, ahead of every waiting bulk write.
        for _ in 0..5 {
            assert!(granted(p.reserve(c, 1.0, Urgency::Direct, long, 0.0)));
        }
        assert!(!granted(p.reserve(c, 1.0, Urgency::Bulk, long, 0.0)));
    }

    #[test]
    fn a_lower_ceiling_applies_at_once() {
        let mut p = Pace::new(graph(), 0.0);
        let lower = Ceiling::quota(200, Duration::from_secs(10));
        p.accepted(
            lower,
            Feedback {
                accepted: 1.0,
                limit_percentage: None,
            },
            1.0,
        );
        assert_eq!((p.rate, p.capacity), (lower.per_second, lower.capacity));
        assert!(p.tokens <= lower.capacity);
    }

    #[test]
    fn feedback_keeps_the_highest_share() {
        let mut f = Feedback::default();
        assert!(f.is_empty());
        f.add(1.0, None);
        f.add(7.0, Some(0.91));
        f.add(1.0, Some(0.85));
        assert_eq!(
            f,
            Feedback {
                accepted: 9.0,
                limit_percentage: Some(0.91)
            }
        );
    }
}
