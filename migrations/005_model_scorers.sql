-- The full scorer of a model version (for NCF: every NeuMF weight and the id
-- maps, embed's IDScorer.MarshalBinary, about 0.5 KB per user) in a table of
-- its own instead of base64 in embedding_models.params: a jsonb value stops
-- at 255 MB and a bytea at 1 GB, so the blob is kept in chunks (the writer
-- uses a few MB each) with its total size and SHA-256, which the reader
-- checks. Deleting a version deletes its scorer.
CREATE TABLE model_scorers (
    model_id    bigint PRIMARY KEY REFERENCES embedding_models (id) ON DELETE CASCADE,
    format      text NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_scorer_chunks (
    model_id  bigint NOT NULL REFERENCES model_scorers (model_id) ON DELETE CASCADE,
    seq       integer NOT NULL CHECK (seq >= 0),
    data      bytea NOT NULL,
    PRIMARY KEY (model_id, seq)
);

-- Versions trained before this migration kept their scorer under
-- params.neumf_scorer (base64 of the same bytes): move it here, in one chunk.
INSERT INTO model_scorers (model_id, format, size, sha256)
SELECT id, 'neumf-v1', length(b), sha256(b)
FROM (SELECT id, decode(params->>'neumf_scorer', 'base64') AS b
      FROM embedding_models WHERE params ? 'neumf_scorer') AS old;

INSERT INTO model_scorer_chunks (model_id, seq, data)
SELECT id, 0, decode(params->>'neumf_scorer', 'base64')
FROM embedding_models WHERE params ? 'neumf_scorer';

UPDATE embedding_models SET params = params - 'neumf_scorer' WHERE params ? 'neumf_scorer';
