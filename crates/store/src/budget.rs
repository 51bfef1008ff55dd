//! The shared per-(app, tenant) Graph budget: one token bucket in PostgreSQL
//! that every worker draws from, so adding workers never breaks the quota, and
//! a pause that a 429 sets for everyone (DESIGN invariant 5).

use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A bucket's shape: `capacity` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketShape {
    /// Most tokens the bucket holds (the burst).
    pub capacity: f64,
    /// Tokens added per second.
    pub per_second: f64,
}

impl BucketShape {
    /// A quota of `requests` per `window`, e.g. Graph's 3,000 writes per 150 s.
    pub fn quota(requests: u32, window: Duration) -> Self {
        Self {
            capacity: f64::from(requests),
            per_second: f64::from(requests) / window.as_secs_f64().max(0.001),
        }
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reservation {
    /// Reserved: send after waiting this long (zero when tokens were available).
    Granted(Duration),
    /// The tenant is paused by a 429 until then; nothing was reserved.
    Paused(DateTime<Utc>),
    /// The wait would be longer than allowed; nothing was reserved. Roughly how long.
    TooLong(Duration),
}

impl Store {
    /// Reserves `cost` tokens of the bucket `key`, if the wait for them is at
    /// most `max_wait` and the bucket is not paused.
    pub async fn reserve(
        &self,
        key: &str,
        shape: BucketShape,
        cost: f64,
        max_wait: Duration,
    ) -> Result<Reservation, StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO rate_budgets (budget_key, tokens) VALUES ($1, $2) ON CONFLICT (budget_key) DO NOTHING",
            &[&key, &shape.capacity],
        )
        .await
        .map_err(query_error("creating a rate budget"))?;
        let floor = -shape.per_second * max_wait.as_secs_f64();
        let row = conn
            .query_one(
                "WITH b AS (
                     SELECT budget_key, throttled_until,
                            LEAST($2::float8, tokens + EXTRACT(EPOCH FROM clock_timestamp() - refilled_at)::float8 * $3::float8) - $4::float8 AS after
                     FROM rate_budgets WHERE budget_key = $1 FOR UPDATE),
                 u AS (
                     UPDATE rate_budgets r SET tokens = b.after, refilled_at = clock_timestamp()
                     FROM b WHERE r.budget_key = b.budget_key
                       AND (b.throttled_until IS NULL OR b.throttled_until <= clock_timestamp())
                       AND b.after >= $5::float8
                     RETURNING b.after)
                 SELECT (SELECT after FROM u),
                        (SELECT after FROM b),
                        (SELECT throttled_until FROM b WHERE throttled_until > clock_timestamp())",
                &[&key, &shape.capacity, &shape.per_second, &cost, &floor],
            )
            .await
            .map_err(query_error("reserving from a rate budget"))?;
        let granted: Option<f64> = row.get(0);
        let after: Option<f64> = row.get(1);
        let paused: Option<DateTime<Utc>> = row.get(2);
        let wait = |tokens: f64| Duration::from_secs_f64((-tokens / shape.per_second).max(0.0));
        Ok(match (granted, paused) {
            (Some(tokens), _) => Reservation::Granted(wait(tokens)),
            (None, Some(until)) => Reservation::Paused(until),
            (None, None) => Reservation::TooLong(wait(after.unwrap_or(0.0))),
        })
    }

    /// Pauses a bucket for everyone until `for_how_long` from now (a 429's
    /// Retry-After); a longer pause already set is kept.
    pub async fn pause(
        &self,
        key: &str,
        shape: BucketShape,
        for_how_long: Duration,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO rate_budgets (budget_key, tokens, throttled_until)
             VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3::float8))
             ON CONFLICT (budget_key) DO UPDATE SET throttled_until =
                 GREATEST(COALESCE(rate_budgets.throttled_until, EXCLUDED.throttled_until), EXCLUDED.throttled_until)",
            &[&key, &shape.capacity, &for_how_long.as_secs_f64()],
        )
        .await
        .map_err(query_error("pausing a rate budget"))?;
        Ok(())
    }
}
