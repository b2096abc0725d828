-- Event time of the newest event the sink saw for each stream, so that a
-- stream with no event for the expiry time is ended with end_reason
-- 'expired' (and revived if a later event shows it was still live).
ALTER TABLE streams ADD COLUMN last_event_at timestamptz;
UPDATE streams SET last_event_at = coalesce(ended_at, started_at);
CREATE INDEX streams_open_last_event ON streams (last_event_at) WHERE ended_at IS NULL;
