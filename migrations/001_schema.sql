-- liverecall schema, version 1.
-- Identifiers are the product's own (bigint); event ids are text and make
-- every sink write idempotent.

CREATE TABLE users (
    id          bigint PRIMARY KEY,
    language    text NOT NULL DEFAULT '',
    country     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE streamers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    category    text NOT NULL DEFAULT '',
    language    text NOT NULL DEFAULT '',
    banned      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streamers_banned ON streamers (id) WHERE banned;
CREATE INDEX streamers_created_at ON streamers (created_at);

-- One row per live session.
CREATE TABLE streams (
    id           bigint PRIMARY KEY,
    streamer_id  bigint NOT NULL,
    category     text NOT NULL DEFAULT '',
    title        text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    end_reason   text,            -- 'ended' (event) or 'expired' (no event for too long)
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX streams_streamer_started ON streams (streamer_id, started_at DESC);
CREATE INDEX streams_started ON streams (started_at);
CREATE INDEX streams_open ON streams (streamer_id) WHERE ended_at IS NULL;

-- A user watching a stream: viewer.joined and viewer.left paired.
CREATE TABLE watch_sessions (
    event_id     text PRIMARY KEY,  -- id of the event that closed the session
    user_id      bigint NOT NULL,
    stream_id    bigint NOT NULL,
    streamer_id  bigint NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz NOT NULL,
    seconds      integer NOT NULL CHECK (seconds >= 0)
);
CREATE INDEX watch_sessions_user_started ON watch_sessions (user_id, started_at);
CREATE INDEX watch_sessions_started ON watch_sessions (started_at);
CREATE INDEX watch_sessions_streamer ON watch_sessions (streamer_id, started_at);

CREATE TABLE gifts (
    event_id     text PRIMARY KEY,
    user_id      bigint NOT NULL,
    streamer_id  bigint NOT NULL,
    stream_id    bigint NOT NULL,
    amount       double precision NOT NULL CHECK (amount > 0),
    sent_at      timestamptz NOT NULL
);
CREATE INDEX gifts_user_sent ON gifts (user_id, sent_at);
CREATE INDEX gifts_sent ON gifts (sent_at);

-- Current follow state; updated_at (event time) decides which event wins.
CREATE TABLE follows (
    user_id      bigint NOT NULL,
    streamer_id  bigint NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, streamer_id)
);
CREATE INDEX follows_streamer ON follows (streamer_id) WHERE active;

CREATE TABLE user_blocks (
    user_id      bigint NOT NULL,
    streamer_id  bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, streamer_id)
);

-- Embedding model versions: staged -> active -> retired.
CREATE TABLE embedding_models (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('mf', 'ncf')),
    version       text NOT NULL,
    dim           integer NOT NULL CHECK (dim > 0 AND dim <= 4096),
    status        text NOT NULL DEFAULT 'staged' CHECK (status IN ('staged', 'active', 'retired')),
    metrics       jsonb NOT NULL DEFAULT '{}',
    params        jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz,
    retired_at    timestamptz,
    UNIQUE (kind, version),
    CHECK (status = 'staged' OR activated_at IS NOT NULL)
);
-- The rule "one active version per kind" lives here, not in application code.
CREATE UNIQUE INDEX embedding_models_one_active ON embedding_models (kind) WHERE status = 'active';

-- Vectors are float4[] so that COPY in binary is exact and operators can
-- inspect them in SQL; every vector of a version has the version's dim.
CREATE TABLE user_embeddings (
    model_id  bigint NOT NULL REFERENCES embedding_models (id) ON DELETE CASCADE,
    user_id   bigint NOT NULL,
    vec       real[] NOT NULL,
    PRIMARY KEY (model_id, user_id)
);

CREATE TABLE streamer_embeddings (
    model_id     bigint NOT NULL REFERENCES embedding_models (id) ON DELETE CASCADE,
    streamer_id  bigint NOT NULL,
    vec          real[] NOT NULL,
    PRIMARY KEY (model_id, streamer_id)
);

-- Reranker weights by version; same lifecycle and rule as embeddings.
CREATE TABLE rerank_models (
    id            bigserial PRIMARY KEY,
    version       text NOT NULL UNIQUE,
    status        text NOT NULL DEFAULT 'staged' CHECK (status IN ('staged', 'active', 'retired')),
    weights       jsonb NOT NULL,
    metrics       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz,
    retired_at    timestamptz
);
CREATE UNIQUE INDEX rerank_models_one_active ON rerank_models ((true)) WHERE status = 'active';

-- Impressions: high write volume, partitioned by day. A default partition
-- catches rows for days whose partition was not created ahead of time, so an
-- insert never fails for want of a partition.
CREATE TABLE impressions (
    shown_at        timestamptz NOT NULL,
    request_id      text NOT NULL,
    position        smallint NOT NULL CHECK (position >= 0),
    user_id         bigint NOT NULL,
    streamer_id     bigint NOT NULL,
    stream_id       bigint NOT NULL DEFAULT 0,
    score           real NOT NULL,
    channels        text[] NOT NULL DEFAULT '{}',
    model_versions  text NOT NULL DEFAULT '',
    PRIMARY KEY (shown_at, request_id, position)
) PARTITION BY RANGE (shown_at);
CREATE INDEX impressions_user_shown ON impressions (user_id, shown_at);
CREATE TABLE impressions_default PARTITION OF impressions DEFAULT;

-- create_impression_partitions makes daily partitions from day `from_day`
-- for `days` days; it is idempotent and called by the service at start and daily.
CREATE FUNCTION create_impression_partitions(from_day date, days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    made integer := 0;
    name text;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        name := 'impressions_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF impressions FOR VALUES FROM (%L) TO (%L)',
                           name, d::timestamptz, (d + 1)::timestamptz);
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END $$;
