-- viewer.left events that came before any join they could close (the join
-- arrives late, or never): the sink pairs a later join of the same user and
-- stream dated at or before the leave with it, and gives a leave up (counted
-- as unpaired) once the event-time watermark passes it by the stream expiry.
CREATE TABLE pending_leaves (
    event_id     text PRIMARY KEY,
    user_id      bigint NOT NULL,
    stream_id    bigint NOT NULL,
    streamer_id  bigint NOT NULL,
    left_at      timestamptz NOT NULL
);
CREATE INDEX pending_leaves_user_stream ON pending_leaves (user_id, stream_id, left_at);
CREATE INDEX pending_leaves_left ON pending_leaves (left_at);
