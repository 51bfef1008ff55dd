//! The shared per-(app, tenant) Graph write budget: one adaptive pace
//! ([`entra_sync_core::pace`]) per budget key in PostgreSQL, which every
//! worker of every replica reads and updates under a row lock, so adding
//! workers never breaks the budget and a 429 pauses everyone (DESIGN invariant 5).

use crate::{Store, StoreError, query_error};
use entra_sync_core::pace::{Ceiling, Pace};

impl Store {
    /// Runs `step` on the pace of the budget `key` (created full at `ceiling`
    /// if new) with its row locked, and stores the result. `step` gets the
    /// database's clock in seconds, so every process shares one clock.
    pub async fn with_pace<R>(
        &self,
        key: &str,
        ceiling: Ceiling,
        step: impl FnOnce(&mut Pace, f64) -> R,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("pacing a rate budget"))?;
        let select = "SELECT tokens, rate, capacity, EXTRACT(EPOCH FROM refilled_at)::float8,
                             EXTRACT(EPOCH FROM throttled_until)::float8,
                             EXTRACT(EPOCH FROM cut_at)::float8,
                             EXTRACT(EPOCH FROM clock_timestamp())::float8
                      FROM rate_budgets WHERE budget_key = $1 FOR UPDATE";
        let row = match tx
            .query_opt(select, &[&key])
            .await
            .map_err(query_error("reading a rate budget"))?
        {
            Some(row) => row,
            None => {
                tx.execute(
                    "INSERT INTO rate_budgets (budget_key, tokens, refilled_at) VALUES ($1, $2, clock_timestamp())
                     ON CONFLICT (budget_key) DO NOTHING",
                    &[&key, &ceiling.capacity],
                )
                .await
                .map_err(query_error("creating a rate budget"))?;
                tx.query_one(select, &[&key])
                    .await
                    .map_err(query_error("reading a rate budget"))?
            }
        };
        let mut pace = Pace {
            tokens: row.get(0),
            rate: row.get::<_, Option<f64>>(1).unwrap_or(ceiling.per_second),
            capacity: row.get::<_, Option<f64>>(2).unwrap_or(ceiling.capacity),
            refilled_at: row.get(3),
            paused_until: row.get(4),
            cut_at: row.get(5),
        };
        let answer = step(&mut pace, row.get(6));
        tx.execute(
            "UPDATE rate_budgets SET tokens = $2, rate = $3, capacity = $4,
                 refilled_at = to_timestamp($5), throttled_until = to_timestamp($6),
                 cut_at = to_timestamp($7)
             WHERE budget_key = $1",
            &[
                &key,
                &pace.tokens,
                &pace.rate,
                &pace.capacity,
                &pace.refilled_at,
                &pace.paused_until,
                &pace.cut_at,
            ],
        )
        .await
        .map_err(query_error("updating a rate budget"))?;
        tx.commit()
            .await
            .map_err(query_error("pacing a rate budget"))?;
        Ok(answer)
    }
}
