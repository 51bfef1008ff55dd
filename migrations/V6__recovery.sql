-- Dead letters the broker made on its own (its delivery limit) are recorded by
-- whichever worker takes them from the dead-letter queue: once per message.
ALTER TABLE dead_letters ADD COLUMN message_id text;
CREATE UNIQUE INDEX dead_letters_once_per_message ON dead_letters (message_id)
    WHERE message_id IS NOT NULL;

-- Stall recovery: the phase a run last republished, when, and how often.
ALTER TABLE sync_runs
    ADD COLUMN stall_phase text,
    ADD COLUMN stall_republished_at timestamptz,
    ADD COLUMN stall_republish_count integer NOT NULL DEFAULT 0;
