-- Group links get the same state column as user links, so both kinds share one
-- code path. Groups are never suspended: the check allows only 'active'.
ALTER TABLE group_links
    ADD COLUMN state text NOT NULL DEFAULT 'active' CHECK (state = 'active');
