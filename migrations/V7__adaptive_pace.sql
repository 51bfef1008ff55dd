-- The shared write budget adapts to Graph's answers (DESIGN invariant 5):
-- its current rate and burst (NULL: the configured ceiling) and when a 429
-- last cut them, so one throttling episode cuts once.
ALTER TABLE rate_budgets
    ADD COLUMN rate     double precision,
    ADD COLUMN capacity double precision,
    ADD COLUMN cut_at   timestamptz;

-- A run's done and failed counts are derived from its objects' statuses, so
-- no task updates one shared row (no hot row).
ALTER TABLE sync_runs
    DROP COLUMN objects_done,
    DROP COLUMN objects_failed;
