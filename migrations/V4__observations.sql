-- Drift (issue 10): what a full sync's listing observed of each linked object
-- in Entra, and when the listing began. `observed` holds the selected
-- properties as listed (null values included); NULL with an `observed_at`
-- means the object was missing from the listing. A worker trusts the
-- observation only while it is newer than the link's last write (`updated_at`).
ALTER TABLE user_links ADD COLUMN observed jsonb, ADD COLUMN observed_at timestamptz;
ALTER TABLE group_links ADD COLUMN observed jsonb, ADD COLUMN observed_at timestamptz;
