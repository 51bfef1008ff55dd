//! The worker's one waiting rule: what follows a task that could not finish
//! now, decided in one place for every cause (DESIGN invariants 5 and 6).
//!
//! - A [`Wait`] is not the object's fault: the tenant is throttled (429, or
//!   503 with Retry-After), another worker holds the object's lock, or
//!   PostgreSQL, RabbitMQ or authentik cannot be reached. It never counts as
//!   an attempt. The delivery is held in this process for at most
//!   [`WaitingRule::hold`] (a few seconds, far below RabbitMQ's
//!   `consumer_timeout`); past that the task is republished to a delay tier
//!   with its attempt count unchanged.
//! - An object-level transient failure is an attempt: it goes to a delay tier
//!   with its attempt count raised, and to the dead-letter queue once it
//!   reaches `max_attempts`.
//!
//! Nothing here nack-requeues: every requeue raises a quorum queue's delivery
//! count, and the delivery limit would dead-letter tasks during an outage.

use entra_sync_core::backoff::Backoff;
use std::time::Duration;

/// What a task waits for; none of these is the object's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Graph throttles the tenant (429, or 503 with Retry-After).
    Throttled,
    /// Another worker holds the object's lock.
    Locked,
    /// PostgreSQL cannot be reached.
    Database,
    /// RabbitMQ cannot be reached.
    Broker,
    /// authentik cannot be reached.
    Authentik,
}

impl Wait {
    /// The name recorded with the `waiting` outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Locked => "locked",
            Self::Database => "postgresql_unreachable",
            Self::Broker => "rabbitmq_unreachable",
            Self::Authentik => "authentik_unreachable",
        }
    }
}

/// What to do with a task that did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep the delivery and try again in this process after this pause.
    TryAgainHere(Duration),
    /// Republish the task to the delay tier that waits at least `delay`, as
    /// attempt `attempt`, then ack the delivery.
    Defer {
        /// How long it should wait.
        delay: Duration,
        /// The attempt count it carries.
        attempt: u32,
    },
    /// Out of attempts: dead-letter it.
    GiveUp {
        /// Attempts made.
        attempts: u32,
    },
}

/// The rule, with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingRule {
    /// Longest a delivery is held in this process waiting.
    pub hold: Duration,
    /// The pause between tries here when nothing says how long to wait.
    pub pause: Duration,
    /// Attempts of a task before it is dead-lettered; only object-level
    /// transient failures count.
    pub max_attempts: u32,
    /// The delay of a failed attempt's retry, by attempt.
    pub backoff: Backoff,
}

impl WaitingRule {
    /// Hold up to 5 s, pausing 1 s between tries here.
    pub fn new(max_attempts: u32, backoff: Backoff) -> Self {
        Self {
            hold: Duration::from_secs(5),
            pause: Duration::from_secs(1),
            max_attempts,
            backoff,
        }
    }

    /// After a [`Wait`] of a task at `attempt`, held here for `held` so far,
    /// with Graph's Retry-After if any: tried again here if that fits within
    /// [`WaitingRule::hold`], otherwise deferred with the same attempt count.
    pub fn after_wait(&self, attempt: u32, retry_after: Option<Duration>, held: Duration) -> Next {
        let wait = retry_after.unwrap_or(self.pause);
        if held.saturating_add(wait) <= self.hold {
            Next::TryAgainHere(wait)
        } else {
            Next::Defer {
                delay: wait.max(self.pause),
                attempt,
            }
        }
    }

    /// After an object-level transient failure of a task at `attempt`: one
    /// attempt more, retried after the backoff (or Retry-After, if longer),
    /// or given up at `max_attempts`.
    pub fn after_failure(&self, attempt: u32, retry_after: Option<Duration>) -> Next {
        let attempt = attempt + 1;
        if attempt >= self.max_attempts {
            return Next::GiveUp { attempts: attempt };
        }
        Next::Defer {
            delay: retry_after
                .unwrap_or_default()
                .max(self.backoff.delay(attempt)),
            attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> WaitingRule {
        WaitingRule::new(
            3,
            Backoff {
                base: Duration::from_secs(5),
                max: Duration::from_secs(3600),
            },
        )
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_short_wait_is_taken_here() {
        assert_eq!(rule().after_wait(0, None, S(0)), Next::TryAgainHere(S(1)));
        assert_eq!(
            rule().after_wait(2, Some(S(3)), S(2)),
            Next::TryAgainHere(S(3))
        );
    }

    #[test]
    fn a_wait_past_the_hold_is_deferred_with_the_attempt_count_unchanged() {
        assert_eq!(
            rule().after_wait(2, None, S(5)),
            Next::Defer {
                delay: S(1),
                attempt: 2
            }
        );
        assert_eq!(
            rule().after_wait(0, Some(S(30)), S(0)),
            Next::Defer {
                delay: S(30),
                attempt: 0
            }
        );
    }

    #[test]
    fn waits_never_use_up_attempts() {
        let rule = rule();
        let mut attempt = 0;
        for _ in 0..100 {
            match rule.after_wait(attempt, Some(S(60)), S(0)) {
                Next::Defer { attempt: a, .. } => attempt = a,
                other => panic!("a throttled task must be deferred, not {other:?}"),
            }
        }
        assert_eq!(attempt, 0);
    }

    #[test]
    fn failures_count_and_give_up_at_max_attempts() {
        let rule = rule();
        match rule.after_failure(0, None) {
            Next::Defer { delay, attempt: 1 } => assert!(delay >= S(2) && delay <= S(5)),
            other => panic!("{other:?}"),
        }
        match rule.after_failure(1, Some(S(100))) {
            Next::Defer { delay, attempt: 2 } => assert_eq!(delay, S(100)),
            other => panic!("{other:?}"),
        }
        assert_eq!(rule.after_failure(2, None), Next::GiveUp { attempts: 3 });
    }
}
