-- Sink state (liverecall sink). sink_events remembers every event id the
-- sink wrote, so a batch replayed after a crash between the database commit
-- and the Kafka offset commit changes nothing. Rows can be pruned by
-- written_at once older than the topic's retention.
CREATE TABLE sink_events (
    event_id    text PRIMARY KEY,
    ts          timestamptz NOT NULL,            -- event time
    written_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sink_events_written ON sink_events (written_at);

-- viewer.joined events still waiting for their viewer.left.
CREATE TABLE pending_joins (
    event_id     text PRIMARY KEY,
    user_id      bigint NOT NULL,
    stream_id    bigint NOT NULL,
    streamer_id  bigint NOT NULL,
    joined_at    timestamptz NOT NULL
);
CREATE INDEX pending_joins_user_stream ON pending_joins (user_id, stream_id, joined_at);
