-- The simulated world whose history the history tables hold, recorded by
-- `liverecall simulate --to-postgres` (and so by `liverecall dev`): one row.
-- Later runs that go on with that world (the live phase of `simulate`, a
-- second `dev`) read its start from here, so every run simulates the same
-- world from the same day whenever it runs.
CREATE TABLE sim_world (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    seed       bigint NOT NULL,
    start      timestamptz NOT NULL,
    days       integer NOT NULL,
    streamers  integer NOT NULL,
    users      integer NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now()
);
