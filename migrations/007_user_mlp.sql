-- The NeuMF user MLP embedding of an NCF version, beside the user's
-- retrieval vector, so a replica reads one user's whole model state in one
-- row instead of holding every user's NeuMF weights in memory. NULL for MF
-- versions and for NCF versions trained before this column (their scorer in
-- model_scorers still holds it). Adding a nullable column without a default
-- rewrites nothing.
ALTER TABLE user_embeddings ADD COLUMN mlp real[];
