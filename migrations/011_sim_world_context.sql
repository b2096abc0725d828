-- Whether the simulated world of the history has request context
-- (`liverecall simulate --context`, `liverecall dev --context`): a world with
-- it is another world, so a run goes on with the recorded one only when
-- this matches too.
ALTER TABLE sim_world ADD COLUMN context boolean NOT NULL DEFAULT false;
