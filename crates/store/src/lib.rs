//! PostgreSQL state of entra-sync: migrations, links, runs, outcomes, cursors, halts and rate budgets.
