-- entra-sync state. Every table is keyed by provider name, as configured.

-- Providers, with a hash of their settings so a change triggers a full sync.
CREATE TABLE providers (
    name            text PRIMARY KEY,
    settings_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A halted provider does no work until an operator runs `resume`.
CREATE TABLE provider_halts (
    provider        text PRIMARY KEY REFERENCES providers (name) ON DELETE CASCADE,
    reason          text NOT NULL,
    halted_at       timestamptz NOT NULL DEFAULT now()
);

-- Links between authentik users and Entra users, with the attributes we last wrote.
CREATE TABLE user_links (
    provider        text NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    ak_user_pk      bigint NOT NULL,
    entra_id        text NOT NULL,
    attributes      jsonb NOT NULL DEFAULT '{}',
    -- active: synced; suspended: accountEnabled set false after a delete or scope exit.
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended')),
    -- how the link came to be: created, discovered or adopted (after a conflict).
    origin          text NOT NULL CHECK (origin IN ('created', 'discovered', 'adopted')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, ak_user_pk),
    UNIQUE (provider, entra_id)
);

-- Links between authentik groups and Entra groups.
CREATE TABLE group_links (
    provider        text NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    ak_group_pk     uuid NOT NULL,
    entra_id        text NOT NULL,
    attributes      jsonb NOT NULL DEFAULT '{}',
    origin          text NOT NULL CHECK (origin IN ('created', 'discovered', 'adopted')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, ak_group_pk),
    UNIQUE (provider, entra_id)
);

-- The memberships we last wrote to Entra: (group, user) pairs by authentik id.
CREATE TABLE membership_links (
    provider        text NOT NULL,
    ak_group_pk     uuid NOT NULL,
    ak_user_pk      bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, ak_group_pk, ak_user_pk),
    FOREIGN KEY (provider, ak_group_pk) REFERENCES group_links (provider, ak_group_pk) ON DELETE CASCADE,
    FOREIGN KEY (provider, ak_user_pk) REFERENCES user_links (provider, ak_user_pk) ON DELETE CASCADE
);
CREATE INDEX membership_links_by_user ON membership_links (provider, ak_user_pk);

-- Full-sync runs and their counts.
CREATE TABLE sync_runs (
    id              uuid PRIMARY KEY,
    provider        text NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    state           text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    -- where a running sync is: queued, discovery, users, groups, memberships, finished
    phase           text NOT NULL DEFAULT 'queued',
    trigger         text NOT NULL,
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    objects_total   integer NOT NULL DEFAULT 0,
    objects_done    integer NOT NULL DEFAULT 0,
    objects_failed  integer NOT NULL DEFAULT 0
);
-- One full sync per provider at a time.
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (provider) WHERE state = 'running';
CREATE INDEX sync_runs_by_provider ON sync_runs (provider, started_at DESC);

-- Every object a run planned, so a repeated task is counted once.
CREATE TABLE sync_run_objects (
    run_id          uuid NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('user', 'group', 'membership')),
    object_id       text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    PRIMARY KEY (run_id, kind, object_id)
);
CREATE INDEX sync_run_objects_pending ON sync_run_objects (run_id, kind) WHERE status = 'pending';

-- The provisioning log: one row per attempt at an object.
CREATE TABLE object_outcomes (
    id              bigserial PRIMARY KEY,
    provider        text NOT NULL,
    run_id          uuid,
    kind            text NOT NULL,
    object_id       text NOT NULL,
    -- what was done: created, updated, unchanged, deleted, suspended, adopted, skipped, dry_run, …
    action          text NOT NULL,
    -- ok, failed (permanent), retrying, dead (retries exhausted), halted
    result          text NOT NULL,
    detail          jsonb,
    attempt         integer NOT NULL DEFAULT 0,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX object_outcomes_by_object ON object_outcomes (provider, kind, object_id, at DESC);
CREATE INDEX object_outcomes_by_run ON object_outcomes (run_id) WHERE run_id IS NOT NULL;

-- Tasks that exhausted their retries or could not be read.
CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    provider        text,
    kind            text,
    object_id       text,
    task            jsonb,
    reason          text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_by_provider ON dead_letters (provider);

-- Cursors into authentik's change sources: the events feed and the last_updated watermark.
CREATE TABLE source_cursors (
    name            text PRIMARY KEY,
    -- the timestamp reached
    position        timestamptz NOT NULL,
    -- ids already handled at exactly that timestamp (events sharing it across a page boundary)
    seen_ids        text[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The shared per-(app, tenant) Graph budget: a token bucket every worker draws from.
CREATE TABLE rate_budgets (
    budget_key      text PRIMARY KEY,
    tokens          double precision NOT NULL,
    refilled_at     timestamptz NOT NULL DEFAULT now(),
    throttled_until timestamptz
);
