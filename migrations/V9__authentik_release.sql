-- authentik releases (issue 14): what the producer learnt about authentik,
-- for `status`, and the silent scan's memory of each user.

-- The release authentik reported (`GET /api/v3/admin/version/`), the
-- behaviour entra-sync uses with it, and the filters authentik was seen to
-- ignore. One row: an installation follows one authentik.
CREATE TABLE authentik_server (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version         text,
    behaves_as      text NOT NULL,
    warning         text,
    ignored_filters jsonb NOT NULL DEFAULT '[]',
    checked_at      timestamptz NOT NULL DEFAULT now()
);

-- The silent scan (authentik before 2025.8, which has no `last_updated`):
-- a hash of each user's state as last seen, so a scan publishes only the
-- users that changed without an event.
CREATE TABLE silent_scan_users (
    user_pk     bigint PRIMARY KEY,
    state_hash  bytea NOT NULL
);
