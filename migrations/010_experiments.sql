-- Online experiments (issue 18): a named, salted split of traffic into
-- arms, each a serving configuration (lr.Experiment; arms as their JSON).
-- Lifecycle: draft -> running <-> paused -> stopped (final); a draft may
-- be stopped too. started_at is the first start, stopped_at the stop.
-- Every change is announced on the liverecall_experiments channel.
CREATE TABLE experiments (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    salt        text NOT NULL CHECK (salt <> ''),
    layer       text NOT NULL DEFAULT 'default' CHECK (layer <> ''),
    mode        text NOT NULL CHECK (mode IN ('ab', 'interleave')),
    status      text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'paused', 'stopped')),
    start_at    timestamptz NOT NULL,
    end_at      timestamptz,
    arms        jsonb NOT NULL CHECK (jsonb_typeof(arms) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    stopped_at  timestamptz,
    CHECK (end_at IS NULL OR end_at > start_at),
    CHECK (status = 'draft' OR status = 'stopped' OR started_at IS NOT NULL),
    CHECK ((status = 'stopped') = (stopped_at IS NOT NULL))
);
-- What replicas load: the experiments running or paused.
CREATE INDEX experiments_serving ON experiments (status) WHERE status IN ('running', 'paused');

-- The experiment and arm that served each impression, and in an
-- interleaving experiment the arm (team) whose ranking contributed the
-- position; NULL for the default configuration. Nullable columns without
-- a default rewrite nothing. The index serves "the impressions of
-- experiment X between two times" (reports, dashboards) and leaves the
-- default traffic out. Building it reads every partition once, inside the
-- migration's transaction (a partitioned table has no CONCURRENTLY).
ALTER TABLE impressions
    ADD COLUMN experiment text,
    ADD COLUMN arm        text,
    ADD COLUMN team       text;
CREATE INDEX impressions_experiment_shown ON impressions (experiment, shown_at) WHERE experiment IS NOT NULL;
