-- Safety (issue 9): the deletion guard's rolling window, halt kinds, the
-- scope shared by the producer and every worker, and 403 refusals.

-- Every delete or suspend entra-sync sent (or was about to send), per provider,
-- for the deletion guard's rolling window. `waived`: allowed by a run started
-- with `resume --allow-deletions`, so it does not fill the window.
CREATE TABLE deprovisionings (
    id              bigserial PRIMARY KEY,
    provider        text NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('user', 'group')),
    object_id       text NOT NULL,
    action          text NOT NULL CHECK (action IN ('delete', 'suspend')),
    run_id          uuid,
    waived          boolean NOT NULL DEFAULT false,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deprovisionings_window ON deprovisionings (provider, at) WHERE NOT waived;

-- Why a provider halted, so each kind can be cleared the right way:
-- configuration (fixed by the operator, then `resume`), deletion_guard
-- (`resume --allow-deletions` lets the held-back deletions through) and
-- filter_group_missing (clears itself once the group exists again).
ALTER TABLE provider_halts
    ADD COLUMN kind text NOT NULL DEFAULT 'configuration'
        CHECK (kind IN ('configuration', 'deletion_guard', 'filter_group_missing'));

-- A run started by `resume --allow-deletions`: the deletion guard is waived for it alone.
ALTER TABLE sync_runs ADD COLUMN deletions_allowed boolean NOT NULL DEFAULT false;

-- The provider's scope as last resolved in authentik, shared by the producer
-- and every worker: the filter group's pk (NULL with a name: no such group).
CREATE TABLE provider_scopes (
    provider            text PRIMARY KEY REFERENCES providers (name) ON DELETE CASCADE,
    filter_group_name   text,
    filter_group_pk     uuid,
    resolved_at         timestamptz NOT NULL DEFAULT now()
);

-- Objects whose writes Graph refused with 403 since the provider's last
-- successful write: many distinct ones in a short time mean the app lost a
-- permission, one means a privileged object.
CREATE TABLE forbidden_writes (
    provider        text NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    kind            text NOT NULL,
    object_id       text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, kind, object_id)
);
